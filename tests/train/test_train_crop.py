"""--crop_size: training sees random N-px crops of the faces (other ones every epoch), evaluation the centre crop
or the ten crops; a saved crop model gets from the processor, the pipeline, the recognizer, ONNX and
`python -m fer_model evaluate` exactly the pixel_values train.py's validation gave it; train.py end to end.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from transformers import AutoImageProcessor, pipeline

from fer_model import EmotionRecognizer, FerConfig, FerForImageClassification
from fer_model.__main__ import main as cli
from fer_model.data import load_fer2013, split_to_tensors
from fer_model.image_processing import gray_to_pixel_values
from fer_model.onnx_runtime import OnnxClassifier
from tests.helpers.models import save_random_model
from tests.helpers.tiny_fer import SIZES, write_hub_folder
from tests.helpers.train_runs import QUICK
from train import train as train_script
from train.augment import BatchAugment, build_augment
from train.batches import DeviceBatches, epoch_batches, training_batches
from train.evaluation import evaluate
from train.recipe import Recipe, parse_args


def crop_offsets(crops: torch.Tensor, faces: torch.Tensor, size: int) -> list[tuple[int, int]]:
    """For each crop, the (top, left) of the slice of its face it equals; fails if none does. Up to 1e-4: the
    crop is one bilinear resampling exactly at pixel centres, whose float32 grid is off by ~1e-6 px."""
    offsets = []
    for crop, face in zip(crops, faces, strict=True):
        found = [(top, left) for top in range(face.shape[-2] - size + 1) for left in range(face.shape[-1] - size + 1)
                 if (crop - face[..., top : top + size, left : left + size]).abs().max() < 1e-4]
        assert len(found) == 1, f"a crop that is no single slice of its face: {found}"
        offsets += found
    return offsets


def test_training_crops_are_random_slices_that_change_every_epoch() -> None:
    config = FerConfig(crop_size=40)
    images = torch.randint(0, 256, (24, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(24) % 7
    batches = DeviceBatches(images, labels, config, 8, seed=3, augment=build_augment(Recipe(crop_size=40)))
    whole = gray_to_pixel_values(images, config, do_center_crop=False)  # normalised 48-px faces
    offsets = {}
    for epoch in (1, 2):
        order = torch.cat(epoch_batches(24, 8, 3, epoch, 0, 1))
        pixel_values = torch.cat([batch for batch, _ in batches.epoch(epoch)])
        assert pixel_values.shape == (24, 3, 40, 40)
        offsets[epoch] = dict(zip(order.tolist(), crop_offsets(pixel_values, whole[order], 40), strict=True))
        again = torch.cat([batch for batch, _ in batches.epoch(epoch)])
        assert torch.equal(pixel_values, again)  # seeded by (seed, epoch): a resumed run crops the same
    assert len(set(offsets[1].values())) > 5 and set(offsets[1].values()) != {(4, 4)}  # not just the centre
    assert sum(offsets[1][i] != offsets[2][i] for i in range(24)) > 16  # other crops next epoch
    assert all(0 <= top <= 8 and 0 <= left <= 8 for top, left in offsets[1].values())


def test_full_augmentation_ends_in_the_crop() -> None:
    recipe = Recipe(augment=True, crop_size=40, resized_crop_scale=[0.8, 1.2], translate=0.2)
    augment = build_augment(recipe)
    assert augment.crop_size == 40 and augment.erasing_p == 0.5 and augment.hflip
    gray = torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    out = augment(gray, torch.Generator().manual_seed(1))
    assert out.shape == (16, 1, 40, 40) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert build_augment(Recipe()) is None  # no crop and no augment: nothing to do


def test_a_crop_model_without_a_cropping_augmentation_is_refused() -> None:
    images, labels = torch.zeros(4, 1, 48, 48, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    for augment in (None, BatchAugment(), BatchAugment(crop_size=44)):
        with pytest.raises(ValueError, match=r"crop_size=40: training needs an augmentation that cuts random 40-px"):
            list(training_batches(images, labels, [torch.arange(4)], FerConfig(crop_size=40), augment))
    with pytest.raises(ValueError, match="output_size=48 contradicts crop_size=40"):
        BatchAugment(crop_size=40)(images.float(), output_size=48)


def test_crop_size_flag_and_its_errors() -> None:
    recipe, _ = parse_args(["--crop_size", "40"])
    assert recipe.crop_size == 40 and recipe.model_arguments()["crop_size"] == 40
    assert parse_args([])[0].crop_size is None
    with pytest.raises(ValueError, match=r"crop_size=56 must be an integer in \[32, image_size=48\]"):
        parse_args(["--crop_size", "56"])


# --- a saved crop model: every path feeds what validation fed -----------------------------------------------


@contextlib.contextmanager
def inputs_reaching_the_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[torch.Tensor]]:
    """Every pixel_values any FerForImageClassification or OnnxClassifier is run on, while in the block."""
    seen: list[torch.Tensor] = []
    features, onnx_call = FerForImageClassification.forward_features, OnnxClassifier.__call__

    def record_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        seen.append(pixel_values.detach().float().clone())
        return features(self, pixel_values)

    def record_onnx(self, pixel_values: torch.Tensor) -> torch.Tensor:
        seen.append(pixel_values.detach().float().clone())
        return onnx_call(self, pixel_values)

    with monkeypatch.context() as patch:
        patch.setattr(FerForImageClassification, "forward_features", record_features)
        patch.setattr(OnnxClassifier, "__call__", record_onnx)
        yield seen


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_hub_folder(tmp_path_factory.mktemp("fer-tiny")))


def validation_inputs(folder: Path, images: torch.Tensor, labels: torch.Tensor, tta: str,
                      monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, float]:
    """train.py's validation (train/evaluation.py's evaluate) of the saved model: its inputs and accuracy."""
    accelerator = Accelerator(cpu=True)
    try:
        model = FerForImageClassification.from_pretrained(folder)
        loader = accelerator.prepare(DataLoader(TensorDataset(images, labels), batch_size=64))
        with inputs_reaching_the_model(monkeypatch) as seen:
            report, _ = evaluate(accelerator, model, loader, model.config, tta)
    finally:
        AcceleratorState._reset_state(True)
    return torch.cat(seen), report["accuracy"]


def cli_json(argv: list[str]) -> dict:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli(argv) == 0
    return json.loads(buffer.getvalue())


def test_every_inference_path_feeds_what_validation_fed(tmp_path: Path, dataset_dir: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_random_model(tmp_path / "crop40", seed=1, crop_size=40)
    images, labels = split_to_tensors(load_fer2013(dataset_dir)["validation"])
    expected, accuracy = validation_inputs(folder, images, labels, "none", monkeypatch)
    assert expected.shape == (SIZES["validation"], 3, 40, 40)
    pictures = [Image.fromarray(face[0].numpy()) for face in images]
    processor = AutoImageProcessor.from_pretrained(folder)
    torch.testing.assert_close(processor(pictures, return_tensors="pt")["pixel_values"], expected, atol=1e-5, rtol=0)
    onnx_path = cli_json(["export-onnx", "--model", str(folder), "--out", str(tmp_path / "crop40.onnx")])["onnx"]
    runs = {"pipeline": lambda: pipeline("image-classification", model=FerForImageClassification.from_pretrained(
                folder), image_processor=processor)(pictures),
            "recognizer": lambda: [EmotionRecognizer.from_pretrained(folder, whole_image=True).recognize(p)
                                   for p in pictures],  # FER2013's faces: no face found, each classified whole
            "onnx recognizer": lambda: [EmotionRecognizer.from_pretrained(folder, onnx=onnx_path, whole_image=True)
                                        .recognize(p) for p in pictures]}
    for name, run in runs.items():
        with inputs_reaching_the_model(monkeypatch) as seen:
            run()
        torch.testing.assert_close(torch.cat(seen), expected, atol=1e-5, rtol=0, msg=name)
    for onnx in ([], ["--onnx", onnx_path]):
        with inputs_reaching_the_model(monkeypatch) as seen:
            result = cli_json(["evaluate", "--model", str(folder), "--dataset", dataset_dir, "--split", "validation",
                               *onnx])
        torch.testing.assert_close(torch.cat(seen), expected, atol=1e-5, rtol=0)
        assert result["accuracy"] == accuracy


def test_ten_crop_evaluation_takes_the_ten_crops_as_validation_does(tmp_path: Path, dataset_dir: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_random_model(tmp_path / "crop40", seed=2, crop_size=40)
    images, labels = split_to_tensors(load_fer2013(dataset_dir)["validation"])
    expected, accuracy = validation_inputs(folder, images, labels, "10crop", monkeypatch)
    count = SIZES["validation"]
    assert expected.shape == (10 * count, 3, 40, 40)
    whole = gray_to_pixel_values(images, FerConfig(crop_size=40), do_center_crop=False)
    torch.testing.assert_close(expected[:count], whole[..., 0:40, 0:40], atol=0, rtol=0)  # top-left, not resized
    torch.testing.assert_close(expected[4 * count : 5 * count], whole[..., 4:44, 4:44], atol=0, rtol=0)  # centre
    with inputs_reaching_the_model(monkeypatch) as seen:
        result = cli_json(["evaluate", "--model", str(folder), "--dataset", dataset_dir, "--split", "validation",
                           "--tta", "10crop"])
    torch.testing.assert_close(torch.cat(seen), expected, atol=1e-5, rtol=0)
    assert result["accuracy"] == accuracy and result["tta"] == "10crop"
    recognizer = EmotionRecognizer.from_pretrained(folder, tta="10crop")
    with inputs_reaching_the_model(monkeypatch) as seen:
        results = [recognizer.recognize(Image.fromarray(face[0].numpy()), whole_image=True) for face in images]
    assert len(seen) == count and not any(result["face_found"] for result in results)  # each a whole face
    for index, views in enumerate(seen):  # one forward per face: its ten crops
        torch.testing.assert_close(views, expected[index::count], atol=1e-5, rtol=0)


def test_train_py_with_crop_size_end_to_end(tmp_path: Path, dataset_dir: str) -> None:
    """48-px faces resized to 40, random 32-px crops; the test's ten-crop figure reproduced by the CLI."""
    output_dir = tmp_path / "crop-run"
    argv = [*QUICK, "--image_size", "40", "--crop_size", "32", "--augment", "--epochs", "2", "--tta", "10crop",
            "--dataset", dataset_dir, "--output_dir", str(output_dir)]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = train_script.main(argv)
    finally:
        AcceleratorState._reset_state(True)
    config = json.loads((output_dir / "config.json").read_text())
    saved = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert (config["image_size"], config["crop_size"]) == (saved["image_size"], saved["crop_size"]) == (40, 32)
    assert FerForImageClassification.from_pretrained(output_dir).head.fc1.in_features == 512
    assert "resizes to 40×40, then\ntakes the centre 32×32 crop" in (output_dir / "README.md").read_text()
    result = cli_json(["evaluate", "--model", str(output_dir), "--dataset", dataset_dir, "--split", "test",
                       "--tta", "10crop"])
    assert result["num_samples"] == SIZES["test"] and result["accuracy"] == metrics["tta"]["10crop"]["accuracy"]
    plain = cli_json(["evaluate", "--model", str(output_dir), "--dataset", dataset_dir, "--split", "test"])
    assert plain["accuracy"] == metrics["accuracy"]
