"""train/augment.py: batched augmentation keeps shapes and ranges, is seeded, and does what it says; its random
boxes (resized crop, erasing) follow torchvision's RandomResizedCrop / RandomErasing draw for draw.

MixUp is torchvision's; its use on the device batches is tested in test_train_recipe.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import RandomErasing, RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from train.augment import (
    RESIZED_CROP_RATIO,
    BatchAugment,
    crop_matrix,
    random_affine,
    random_erasing,
    random_hflip,
    resample,
    resized_crop_boxes,
)

SQUARE_16 = ((16 / 48) ** 2, (16 / 48) ** 2)  # a 16x16 square of 48x48
DRAWS = 4000


@pytest.fixture
def gray() -> torch.Tensor:
    return torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(0))


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_full_augmentation_keeps_shape_dtype_and_range(gray: torch.Tensor) -> None:
    out = BatchAugment()(gray, seeded())
    assert out.shape == gray.shape and out.dtype == gray.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert not torch.equal(out, gray)


def test_same_seed_same_batch_other_seed_other_batch(gray: torch.Tensor) -> None:
    augment = BatchAugment()
    assert torch.equal(augment(gray, seeded(1)), augment(gray, seeded(1)))
    assert not torch.equal(augment(gray, seeded(1)), augment(gray, seeded(2)))


def test_affine_without_motion_is_the_identity(gray: torch.Tensor) -> None:
    torch.testing.assert_close(random_affine(gray, 0.0, 0.0, 0.0, seeded()), gray, atol=1e-5, rtol=0)


def test_affine_shift_moves_content() -> None:
    """A bright pixel moves by at most translate x side (+ rotation/zoom of its offset from the centre)."""
    image = torch.zeros(64, 1, 48, 48)
    image[:, :, 24, 24] = 1.0
    out = random_affine(image, degrees=0.0, scale=0.0, translate=0.1, generator=seeded())
    peaks = torch.stack([torch.tensor(divmod(int(o.argmax()), 48)) for o in out])
    shift = (peaks - 24).abs()
    assert int(shift.max()) <= 5 and int(shift.max()) >= 2


def test_flip_with_probability_one_mirrors_every_image(gray: torch.Tensor) -> None:
    assert torch.equal(random_hflip(gray, 1.0, seeded()), gray.flip(-1))
    assert torch.equal(random_hflip(gray, 0.0, seeded()), gray)


def test_erasing_replaces_exactly_one_square_per_image() -> None:
    zeros = torch.zeros(8, 1, 48, 48)
    out = random_erasing(zeros, p=1.0, scale=SQUARE_16, ratio=(1.0, 1.0), generator=seeded())
    changed = out != 0
    assert all(int(c.sum()) > 200 for c in changed)  # 256 noise pixels, a few may draw exactly 0
    for c in changed:
        rows, cols = torch.nonzero(c[0], as_tuple=True)
        assert int(rows.max() - rows.min()) < 16 and int(cols.max() - cols.min()) < 16
    assert torch.equal(random_erasing(zeros, p=0.0, generator=seeded()), zeros)


def test_erasing_areas_and_shapes_follow_torchvision() -> None:
    """Random area (2-33 %) and aspect (0.3-3.3): the same distribution as RandomErasing.get_params."""
    erased = random_erasing(torch.zeros(DRAWS, 1, 48, 48), p=1.0, generator=seeded()) != 0
    rows, cols = erased.any(-1).sum((1, 2)).float(), erased.any(-2).sum((1, 2)).float()  # box height, width
    torch.manual_seed(0)
    reference = torch.tensor([RandomErasing.get_params(torch.zeros(1, 48, 48), (0.02, 0.33), (0.3, 3.3), [0.0])[2:4]
                              for _ in range(DRAWS)], dtype=torch.float)
    for ours, theirs in ((rows, reference[:, 0]), (cols, reference[:, 1]), (rows * cols, reference.prod(1))):
        assert abs(float(ours.mean() - theirs.mean())) < 0.04 * float(theirs.mean())
    area = rows * cols / 48**2
    assert float(area.min()) > 0.015 and float(area.max()) < 0.4 and float((rows / cols).max()) > 2.5
    assert bool((rows < 48).all() and (cols < 48).all())  # strictly inside, as torchvision


def test_resized_crop_boxes_follow_torchvision() -> None:
    """usef-kh's RandomResizedCrop(48, scale=(0.8, 1.2)): boxes larger than the face are redrawn."""
    top, left, height, width = resized_crop_boxes(DRAWS, 48, 48, (0.8, 1.2), generator=seeded())
    torch.manual_seed(0)
    reference = torch.tensor([RandomResizedCrop.get_params(torch.zeros(1, 48, 48), [0.8, 1.2], list(RESIZED_CROP_RATIO))
                              for _ in range(DRAWS)], dtype=torch.float)
    for ours, theirs in ((top, reference[:, 0]), (height, reference[:, 2]), (width, reference[:, 3])):
        assert abs(float(ours.mean() - theirs.mean())) < 0.3  # pixels
    full = float(((height == 48) & (width == 48)).float().mean())
    assert abs(full - float(((reference[:, 2] == 48) & (reference[:, 3] == 48)).float().mean())) < 0.03
    assert bool((top + height <= 48).all() and (left + width <= 48).all() and (height * width >= 0.78 * 48**2).all())


def test_impossible_resized_crops_fall_back_to_the_whole_face() -> None:
    top, left, height, width = resized_crop_boxes(16, 48, 48, (1.5, 2.0), generator=seeded())  # never fits
    assert [t.tolist() for t in (top, left, height, width)] == [[0.0] * 16, [0.0] * 16, [48.0] * 16, [48.0] * 16]


@pytest.mark.parametrize("size", [48, 40])
def test_a_resized_crop_alone_is_torchvision_resized_crop(gray: torch.Tensor, size: int) -> None:
    boxes = tuple(torch.tensor(v, dtype=torch.float) for v in ([0, 5, 3, 10], [0, 2, 7, 0], [48, 40, 41, 30],
                                                               [48, 44, 37, 45]))
    ours = resample(gray[:4], crop_matrix(*boxes, 48, 48), boxes, output_size=size)
    for k in range(4):
        box = [int(b[k]) for b in boxes]
        torch.testing.assert_close(ours[k], TF.resized_crop(gray[k], *box, [size, size], antialias=False),
                                   atol=1e-5, rtol=0)


def test_output_size_samples_the_face_at_that_size(gray: torch.Tensor) -> None:
    still = BatchAugment(degrees=0.0, scale=0.0, translate=0.0, hflip=False, erasing_p=0.0)
    resized = still(gray, seeded(), output_size=40)
    torch.testing.assert_close(resized, F.interpolate(gray, size=(40, 40), mode="bilinear", align_corners=False),
                               atol=1e-5, rtol=0)
    cropped = BatchAugment(resized_crop_scale=(0.8, 1.2))(gray, seeded(), output_size=40)
    assert cropped.shape == (16, 1, 40, 40) and 0.0 <= float(cropped.min()) and float(cropped.max()) <= 1.0
    torch.testing.assert_close(still(gray, seeded()), gray, atol=1e-5, rtol=0)  # no motion, no resize: unchanged


def test_resized_crop_zooms_into_the_face() -> None:
    """A bright frame around the face: every crop of >= 78 % of the area cuts some of it off, none adds any."""
    framed = torch.zeros(64, 1, 48, 48)
    framed[..., :2, :] = framed[..., -2:, :] = framed[..., :, :2] = framed[..., :, -2:] = 1.0
    out = random_affine(framed, 0.0, 0.0, 0.0, seeded(), resized_crop_scale=(0.8, 1.2))
    assert float(out.sum()) < float(framed.sum()) and bool((out <= 1.0).all())
