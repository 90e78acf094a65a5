"""Models trained on crops (FerConfig.crop_size): the config's checks, the model's input side, the processor's
centre crop and both sizes saved, the TTA views at the crop size (the ten crops, not resized); models without a
crop, the released one included, are unchanged. The whole round trip against train.py is tests/train/test_train_crop.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from transformers import AutoImageProcessor

from fer_model import FerConfig, FerForImageClassification, FerImageProcessor, load_model
from fer_model.configuration import input_size
from fer_model.image_processing import crops_to_pixel_values, logits_with_tta, resize, tta_views
from tests.helpers.models import save_random_model
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model
from tests.helpers.tiny_fer import faces


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crop_size": 31}, "crop_size=31 must be an integer in [32, image_size=48]"),
    ({"crop_size": 49}, "crop_size=49 must be an integer in [32, image_size=48]"),
    ({"crop_size": 40, "image_size": 36}, "crop_size=40 must be an integer in [32, image_size=36]"),
    ({"crop_size": 40.0}, "crop_size=40.0 must be an integer"),
    ({"crop_size": "40"}, "crop_size='40' must be an integer"),
    ({"crop_size": True}, "crop_size=True must be an integer"),
])
def test_invalid_crop_sizes_are_named(kwargs: dict, message: str) -> None:
    for make in (FerConfig, FerImageProcessor):
        with pytest.raises(ValueError, match=re.escape(message)):
            make(**kwargs)


def test_centre_cropping_needs_a_crop_size_and_crops_must_have_it() -> None:
    with pytest.raises(ValueError, match="do_center_crop=True needs a crop_size"):
        FerImageProcessor(do_center_crop=True)
    config = FerConfig(crop_size=40)
    assert crops_to_pixel_values(torch.rand(2, 1, 40, 40), config).shape == (2, 3, 40, 40)
    with pytest.raises(ValueError, match=re.escape("crops of shape (2, 1, 48, 48) are not (N, 1, 40, 40)")):
        crops_to_pixel_values(torch.rand(2, 1, 48, 48), config)


@pytest.mark.parametrize(("image_size", "crop_size", "features"), [(48, 40, 512), (48, 44, 512), (48, 32, 512),
                                                                   (96, 64, 512 * 2 * 2)])
def test_the_model_takes_crop_size_inputs(image_size: int, crop_size: int, features: int) -> None:
    model = FerForImageClassification(FerConfig(image_size=image_size, crop_size=crop_size)).eval()
    assert input_size(model.config) == crop_size and model.head.fc1.in_features == features
    assert model(torch.randn(2, 3, crop_size, crop_size)).logits.shape == (2, 7)
    expected = re.escape(f"(batch, 3, {crop_size}, {crop_size}); got (2, 3, {image_size}, {image_size})")
    with pytest.raises(ValueError, match=expected):
        model(torch.randn(2, 3, image_size, image_size))


def test_processor_centre_crops_and_the_folder_records_both_sizes(tmp_path) -> None:
    folder = save_random_model(tmp_path / "crop40", crop_size=40)
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert (saved["image_size"], saved["crop_size"], saved["do_center_crop"]) == (48, 40, True)
    config = json.loads((folder / "config.json").read_text())
    assert (config["image_size"], config["crop_size"]) == (48, 40)
    model, processor = load_model(folder)
    auto = AutoImageProcessor.from_pretrained(folder)
    assert model.config.crop_size == processor.crop_size == auto.crop_size == 40 and type(auto) is FerImageProcessor
    face = Image.fromarray(faces(1, seed=3)[0][0])
    centre = processor(face, return_tensors="pt")["pixel_values"]
    whole = processor(face, return_tensors="pt", do_center_crop=False)["pixel_values"]
    assert centre.shape == (1, 3, 40, 40) and whole.shape == (1, 3, 48, 48)
    torch.testing.assert_close(centre, whole[..., 4:44, 4:44], atol=0, rtol=0)  # the centre 40 px, no resize
    photo = face.resize((120, 120), Image.Resampling.BICUBIC)  # resized to 48 first, then its centre 40 px
    whole = processor(photo, do_center_crop=False)["pixel_values"]
    torch.testing.assert_close(processor(photo)["pixel_values"], whole[..., 4:44, 4:44], atol=0, rtol=0)
    with torch.no_grad():
        assert model(auto(photo)["pixel_values"]).logits.shape == (1, 7)


@pytest.mark.parametrize("crop_size", [40, 44])  # usef-kh's ten 40-px crops, WuJie1010's 44
def test_ten_crop_views_at_the_crop_size_are_the_ten_crops_not_resized(crop_size: int) -> None:
    faces_ = torch.randn(3, 3, 48, 48)
    far, mid = 48 - crop_size, (48 - crop_size) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]  # top-left, top-right, bottom-l/r, centre
    crops = [faces_[..., y : y + crop_size, x : x + crop_size] for y, x in corners]
    views = tta_views(faces_, "10crop", crop_size)
    assert len(views) == 10 and all(view.shape == (3, 3, crop_size, crop_size) for view in views)
    for view, crop in zip(views, crops + [c.flip(-1) for c in crops], strict=True):
        assert torch.equal(view, crop)
    theirs = TF.ten_crop(faces_, [crop_size, crop_size])  # torchvision's TenCrop: the same ten, in its order
    assert all(any(torch.equal(view, their) for view in views) for their in theirs)
    (centre,) = tta_views(faces_, "none", crop_size)
    flip = tta_views(faces_, "flip", crop_size)
    assert torch.equal(centre, crops[4]) and len(flip) == 2 and torch.equal(flip[1], crops[4].flip(-1))


def test_tta_averages_the_ten_crops_in_one_forward() -> None:
    model = FerForImageClassification(FerConfig(crop_size=40)).eval()
    batches: list[tuple[int, ...]] = []

    def forward(pixel_values: torch.Tensor) -> torch.Tensor:
        batches.append(tuple(pixel_values.shape))
        return model(pixel_values).logits

    faces_ = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        averaged = logits_with_tta(forward, faces_, "10crop", 40)
        each = torch.stack([model(view).logits.softmax(-1) for view in tta_views(faces_, "10crop", 40)])
    assert batches == [(20, 3, 40, 40)]
    torch.testing.assert_close(averaged.exp(), each.mean(0), atol=1e-6, rtol=0)


def test_models_without_a_crop_keep_their_pixels_and_ten_crop(tmp_path) -> None:
    folder = save_random_model(tmp_path / "whole")
    assert "crop_size" not in json.loads((folder / "preprocessor_config.json").read_text())
    processor = FerImageProcessor.from_pretrained(folder)
    assert (processor.crop_size, processor.do_center_crop) == (None, False)
    image = faces(1)[0][0]
    assert processor(image)["pixel_values"].shape == (1, 3, 48, 48)
    faces_ = torch.randn(2, 3, 48, 48)
    views = tta_views(faces_, "10crop")  # as before crop_size: 44 px of 48 (4 corners, centre), resized back
    corners = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    expected = [resize(faces_[..., y : y + 44, x : x + 44], 48) for y, x in corners]
    assert len(views) == 10 and all(view.shape == (2, 3, 48, 48) for view in views)
    for view, crop in zip(views, expected + [c.flip(-1) for c in expected], strict=True):
        assert torch.equal(view, crop)
    assert [len(tta_views(faces_, mode)) for mode in ("none", "flip")] == [1, 2]
    assert torch.equal(tta_views(faces_, "none")[0], faces_)


@needs_released_model
def test_released_model_folder_loads_and_behaves_as_before() -> None:
    model, processor = load_model(RELEASED_MODEL_DIR)
    assert model.config.crop_size is None and (processor.crop_size, processor.do_center_crop) == (None, False)
    assert input_size(model.config) == processor.image_size == 48
    pixel_values = processor(np.full((48, 48), 128, np.uint8), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 48, 48)
    with torch.no_grad():
        assert model(pixel_values).logits.shape == (1, 7)
