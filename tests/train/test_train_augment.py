"""train/augment.py: batched augmentation keeps shapes and ranges, is seeded, and does what it says.

MixUp is torchvision's; its use on the device batches is tested in test_train_recipe.py.
"""

from __future__ import annotations

import pytest
import torch

from train.augment import BatchAugment, random_affine, random_erasing, random_hflip


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
    out = random_erasing(zeros, p=1.0, size=16, generator=seeded())
    changed = out != 0
    assert all(int(c.sum()) > 200 for c in changed)  # 256 noise pixels, a few may draw exactly 0
    for c in changed:
        rows, cols = torch.nonzero(c[0], as_tuple=True)
        assert int(rows.max() - rows.min()) < 16 and int(cols.max() - cols.min()) < 16
    assert torch.equal(random_erasing(zeros, p=0.0, size=16, generator=seeded()), zeros)
