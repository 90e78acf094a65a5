"""train/train.py's recipe options together in one run, stopped and resumed, its int8 ONNX file written, then
pushed (checked at HfApi); the int8 calibration faces; the default ImageNet init offline."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from huggingface_hub import ModelCard
from PIL import Image as PILImage
from safetensors.torch import load_file

from fer_model import EmotionRecognizer, FerConfig
from fer_model.__main__ import calibration_batch
from fer_model.data import load_fer2013, split_to_tensors
from fer_model.evaluation import evaluate_folder
from fer_model.image_processing import gray_to_pixel_values
from fer_model.onnx_runtime import CALIBRATION_SAMPLES, OnnxClassifier, check_belongs, int8_calibration_faces
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.tiny_fer import write_hub_folder
from tests.helpers.train_runs import QUICK
from train import train as train_script


@pytest.fixture
def in_process():
    """Run train.main in this process; reset accelerate's process-wide state afterwards."""
    yield train_script.main
    AcceleratorState._reset_state(True)


def test_recipe_options_end_to_end_and_push(tmp_path: Path, in_process, monkeypatch) -> None:
    """vgg16_bn, a wider head, dropout, the plateau schedule, gradient clamping, label smoothing, MixUp, the
    resized crop, random-area erasing, drop_last and EMA in one run, stopped after epoch 1 and resumed; then
    --export_int8 and the push, checked at the HfApi boundary (one upload, no checkpoints/logs)."""
    dataset = write_hub_folder(tmp_path / "data", {"train": 30, "validation": 14, "test": 13})
    calls = record_hub_calls(monkeypatch)
    output_dir = tmp_path / "out"
    options = ["--backbone", "vgg16_bn", "--image_size", "48", "--hidden_size", "64", "--head_dropout", "0.3",
               "--scheduler", "plateau", "--plateau_patience", "0", "--plateau_factor", "0.5",
               "--grad_clip_value", "0.5", "--label_smoothing", "0.1", "--augment", "--mixup_alpha", "1.0",
               "--resized_crop_scale", "0.8", "1.2", "--erasing_scale", "0.02", "0.33", "--drop_last",
               "--ema_decay", "0.9", "--epochs", "2", "--batch_size", "12", "--checkpoints_total_limit", "2"]
    command = [*QUICK, *options, "--dataset", str(dataset), "--output_dir", str(output_dir), "--report_to",
               "tensorboard", "--push_to_hub", "--hub_model_id", "someone/fer-vgg16-test", "--hub_private",
               "--export_int8"]
    stopped = in_process([*command, "--stop_after_epoch", "1"])  # as a run split over two GPU-box calls
    assert stopped["stopped_after_epoch"] == 1 and not (output_dir / "metrics.json").exists() and not calls
    AcceleratorState._reset_state(True)
    metrics = in_process([*command, "--resume_from_checkpoint", "latest"])

    config = json.loads((output_dir / "config.json").read_text())
    assert (config["backbone"], config["image_size"], config["hidden_size"], config["head_dropout"]) == (
        "vgg16_bn", 48, 64, 0.3)
    published = load_file(output_dir / "model.safetensors")
    assert published["head.fc1.weight"].shape == (64, 512) and "features.1.running_mean" in published
    history = metrics["validation"]["history"]
    assert [h["lr"] for h in history] == [1e-3, 1e-3]  # plateau: stepped after each epoch, never within one
    # the plateau state saved after epoch 2 (and restored for it by the resume) replays from the kept accuracies
    replay = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3),
                                                        mode="max", factor=0.5, patience=0)
    for h in history:
        replay.step(h["val_accuracy"])
    saved = torch.load(output_dir / "checkpoints" / "checkpoint_2" / "scheduler.bin", weights_only=False)["plateau"]
    assert (saved["best"], saved["num_bad_epochs"], saved["_last_lr"]) == (
        replay.best, replay.num_bad_epochs, replay.get_last_lr())
    checkpoints = output_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_1", "checkpoint_2"]  # total_limit 2
    raw = load_file(checkpoints / "checkpoint_2" / "model.safetensors")
    ema = torch.load(checkpoints / "checkpoint_2" / "custom_checkpoint_1.pkl", weights_only=True)
    assert int(ema["n_averaged"]) == 2 * 2  # epochs x steps: 30 faces, drop_last, batches of 12
    name = "features.0.weight"
    assert not torch.equal(ema[f"module.{name}"], raw[name])
    best_epoch, kept = metrics["validation"]["best_epoch"], metrics["validation"]["best_model"]
    assert kept == history[best_epoch - 1]["candidate"], "the published weights are the candidate kept that epoch"
    at_best = checkpoints / f"checkpoint_{best_epoch}"
    candidate = (load_file(at_best / "model.safetensors")[name] if kept == "model"
                 else torch.load(at_best / "custom_checkpoint_1.pkl", weights_only=True)[f"module.{name}"])
    torch.testing.assert_close(published[name], candidate)

    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1:] == ("someone/fer-vgg16-test", True, True)
    _, repo_id, uploaded, card_accuracy = calls[1]
    assert repo_id == "someone/fer-vgg16-test"
    assert set(uploaded) == {"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                             "configuration.py", "modeling.py", "image_processing.py", "metrics.json",
                             "confusion_matrix.png", "reliability_diagram.png", "model_int8.onnx", "train_config.yaml"}
    assert card_accuracy == metrics["accuracy"]
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.model_name == "someone/fer-vgg16-test" and 'model="someone/fer-vgg16-test"' in card.text
    assert_int8_served(output_dir, metrics, dataset)


def record_hub_calls(monkeypatch) -> list[tuple]:
    """HfApi's create_repo and upload_folder replaced by recorders (what would be uploaded, the card's accuracy)."""
    from huggingface_hub import HfApi, RepoUrl
    from huggingface_hub.utils import filter_repo_objects

    calls = []

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **kwargs):
        calls.append(("create_repo", repo_id, private, exist_ok))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        root = Path(folder_path)
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        uploaded = sorted(filter_repo_objects(files, ignore_patterns=ignore_patterns))
        card = ModelCard.load(root / "README.md")
        calls.append(("upload_folder", repo_id, uploaded, card.data.eval_results[0].metric_value))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def assert_int8_served(output_dir: Path, metrics: dict, dataset: Path) -> None:
    """The int8 file belongs to the published weights: served by default, without a fingerprint warning, and
    its test accuracy in metrics.json is what `evaluate --onnx auto` measures."""
    int8 = output_dir / "model_int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recognizer = EmotionRecognizer.from_pretrained(output_dir)
    assert isinstance(recognizer.runtime, OnnxClassifier) and recognizer.runtime.path == int8
    assert check_belongs(recognizer.runtime, recognizer.model) is True
    assert recognizer.runtime.temperature == metrics["calibration"]["temperature"]
    assert len(recognizer.recognize(PILImage.open(ASTRONAUT))["faces"]) == 1
    test = load_fer2013(str(dataset), splits=("test",))["test"]
    assert metrics["int8"]["test_accuracy"] == evaluate_folder(output_dir, test, onnx="auto")["accuracy"]
    assert (metrics["int8"]["file"], metrics["int8"]["calibration_samples"], metrics["int8"]["test_samples"]) == (
        "model_int8.onnx", 30, 13)


def test_int8_calibration_faces_are_those_of_the_export_command(tmp_path: Path) -> None:
    """train.py's --export_int8 calibrates on the faces `python -m fer_model export-onnx --int8 --calibration`
    takes from the same dataset (a seeded sample of the train split), made into pixels the same way."""
    dataset = str(write_hub_folder(tmp_path / "data", {"train": 40, "validation": 7, "test": 7}))
    config = FerConfig(image_size=40)
    for samples in (CALIBRATION_SAMPLES, 9):
        faces = int8_calibration_faces(load_fer2013(dataset)["train"], samples)
        assert len(faces) == min(samples, 40)
        expected = calibration_batch(dataset, config, samples)
        assert np.array_equal(gray_to_pixel_values(faces, config).numpy(), expected)
    in_order, _ = split_to_tensors(load_fer2013(dataset)["train"])
    assert not torch.equal(faces, in_order[:9])  # a seeded shuffle, not the first rows (splits may be sorted)


def test_default_imagenet_init_offline_says_how_to_train_without_it(tmp_path: Path, in_process) -> None:
    dataset = str(write_hub_folder(tmp_path / "data"))
    with pytest.raises(RuntimeError, match="--no-pretrained.*--pretrained_weights PATH"):
        in_process(["--cpu", "--dataset", dataset, "--epochs", "1", "--output_dir", str(tmp_path / "o")])
