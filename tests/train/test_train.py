"""train/train.py on tiny synthetic data (CPU, offline): the model folder, metrics, calibration, card, a SIGKILL
and resume.

The recipe options end to end and the push are in test_train_options.py, the 2-process run in test_train_ddp.py;
batched augmentation in test_train_augment.py; each option's effect on small tensors in test_train_recipe.py
and test_train_loop.py; presets and shards in test_train_presets.py; checkpoint files in test_train_checkpoints.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from huggingface_hub import ModelCard
from PIL import Image as PILImage
from safetensors.torch import load_file

from fer_model import FER2013_LABELS, FerForImageClassification, FerImageProcessor
from fer_model.calibration import fit_temperature, negative_log_likelihood
from fer_model.data import load_fer2013
from fer_model.evaluation import split_logits
from fer_model.loading import DEFAULT_MODEL_ID
from tests.helpers.tiny_fer import SIZES, write_hub_folder
from tests.helpers.train_runs import cli_command, run_until_killed, without_timings
from train import train as train_script
from train.checkpoints import BEST_MODEL_DIR, CheckpointError, verify_checkpoint


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_hub_folder(tmp_path_factory.mktemp("fer-tiny")))


@pytest.fixture(scope="module")
def cli_run(dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The command a user runs (2 epochs, TensorBoard, flip TTA, EMA, MixUp), uninterrupted.

    Run in this process to save an interpreter start; `python train/train.py` itself runs as a subprocess
    in the SIGKILL test (the same command) and in test_train_ddp.py.
    """
    output_dir = tmp_path_factory.mktemp("run") / "fer-tiny-model"
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            train_script.main(cli_command(dataset_dir, output_dir)[2:])
    finally:
        AcceleratorState._reset_state(True)
    return output_dir, stdout.getvalue()


@pytest.fixture(scope="module")
def killed_run(cli_run: tuple[Path, str], dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cli_run command again, SIGKILLed once epoch 1's checkpoint exists and epoch 2 has started."""
    return run_until_killed(cli_command(dataset_dir, tmp_path_factory.mktemp("killed") / "fer-tiny-model"))


@pytest.fixture(scope="module")
def resumed_run(killed_run: dict, dataset_dir: str) -> dict:
    """The killed run resumed (in this process) with --resume_from_checkpoint latest: its metrics and output."""
    command = cli_command(dataset_dir, killed_run["output_dir"])[2:]
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            metrics = train_script.main([*command, "--resume_from_checkpoint", "latest"])
    finally:
        AcceleratorState._reset_state(True)
    return {**metrics, "stdout": stdout.getvalue()}


def test_cli_run_prints_one_summary_line_per_epoch(cli_run: tuple[Path, str]) -> None:
    _, stdout = cli_run
    lines = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train_loss" in line and "val_accuracy" in line and "(model " in line and "images/s" in line
               for line in lines)
    assert "num_processes=1" in stdout and "test: accuracy" in stdout and "train=28 validation=14 test=13" in stdout


def test_cli_run_writes_a_loadable_model_folder(cli_run: tuple[Path, str]) -> None:
    output_dir, _ = cli_run
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json",
                 "confusion_matrix.png", "reliability_diagram.png", "train_config.yaml", "configuration.py",
                 "modeling.py", "image_processing.py"):
        assert (output_dir / name).is_file(), name
    assert not (output_dir / "model_int8.onnx").exists()  # --export_int8 is off by default
    assert not list(output_dir.glob(".*")), "a staging or temporary file was left behind"
    model = FerForImageClassification.from_pretrained(output_dir).eval()
    processor = FerImageProcessor.from_pretrained(output_dir)
    assert model.config.image_size == processor.image_size == 32
    assert list(model.config.id2label.values()) == list(FER2013_LABELS)  # from the dataset's ClassLabel
    assert "freeze_until" not in json.loads((output_dir / "config.json").read_text())  # a training option
    logits = model(**processor(PILImage.new("L", (48, 48), 128))).logits
    assert logits.shape == (1, 7)
    assert PILImage.open(output_dir / "confusion_matrix.png").size[0] > 300
    assert list((output_dir / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events"
    recipe = yaml.safe_load((output_dir / "train_config.yaml").read_text())
    assert (recipe["image_size"], recipe["mixup_alpha"], recipe["freeze_until"]) == (32, 0.4, None)  # from scratch


def test_cli_run_metrics_count_every_test_sample_once(cli_run: tuple[Path, str]) -> None:
    output_dir, _ = cli_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_samples"] == SIZES["test"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == SIZES["test"]
    assert sum(c["support"] for c in metrics["per_class"].values()) == SIZES["test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert set(metrics["tta"]) == {"flip"} and 0.0 <= metrics["tta"]["flip"]["accuracy"] <= 1.0
    assert 0.0 <= metrics["tta"]["flip"]["validation_accuracy"] <= 1.0
    validation = metrics["validation"]
    history = validation["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["val_samples"] == SIZES["validation"] for h in history)
    for h in history:  # both candidates validated each epoch, the better one kept (the raw weights on a tie)
        assert h["val_accuracy"] == max(h["val_accuracy_model"], h["val_accuracy_ema"])
        assert h["candidate"] == ("model" if h["val_accuracy_model"] >= h["val_accuracy_ema"] else "ema")
    best = max(history, key=lambda h: h["val_accuracy"])  # the first epoch reaching the maximum
    assert (validation["best_accuracy"], validation["best_epoch"]) == (best["val_accuracy"], best["epoch"])
    assert validation["best_model"] == best["candidate"]
    assert metrics["training"]["epochs_completed"] == 2 and metrics["training"]["images_per_second"] > 0
    assert metrics["training"]["wall_time_s"] > metrics["training"]["train_time_s"] > 0


def test_cli_run_card_holds_the_metrics(cli_run: tuple[Path, str]) -> None:
    output_dir, _ = cli_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    card = ModelCard.load(output_dir / "README.md")
    accuracy = card.data.eval_results[0]
    assert (accuracy.metric_type, accuracy.dataset_name, accuracy.dataset_split) == ("accuracy", "FER2013", "test")
    assert accuracy.task_type == "image-classification"
    assert accuracy.metric_value == metrics["accuracy"]
    assert card.data.eval_results[1].metric_value == metrics["macro_f1"]
    # no --hub_model_id: named as the project's model, never as the output folder ("fer-tiny-model")
    assert card.data.model_name == DEFAULT_MODEL_ID and card.data.pipeline_tag == "image-classification"
    text = card.text
    assert f"# {DEFAULT_MODEL_ID}\n" in text and f'model="{DEFAULT_MODEL_ID}"' in text
    assert 'model="fer-tiny-model"' not in text
    calibration = metrics["calibration"]
    assert "## Calibration" in text and "](reliability_diagram.png)" in text
    assert f"T = {calibration['temperature']:.3f}" in text
    assert (f"| {calibration['test']['ece_before']:.4f} | {calibration['test']['ece_after']:.4f} |" in text
            and f"| {calibration['test']['nll_before']:.4f} | {calibration['test']['nll_after']:.4f} |" in text)
    assert "](confusion_matrix.png)" in text
    assert "python train/train.py --cpu --no-pretrained" in text and "--tta flip" in text
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in text
    assert "surveillance" in text and "hiring" in text and "any decision about a person" in text
    assert "Dataset bias" in text


def test_cli_run_fits_the_temperature_on_validation_and_writes_it(cli_run: tuple[Path, str],
                                                                   dataset_dir: str) -> None:
    """The temperature in config.json is the one fitted on the published model's validation logits (recomputed
    here, in one process, from the folder); it lowers validation NLL; metrics.json and the diagram report it."""
    output_dir, stdout = cli_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    calibration = metrics["calibration"]
    temperature = json.loads((output_dir / "config.json").read_text())["temperature"]
    assert temperature == calibration["temperature"] != 1.0
    assert FerForImageClassification.from_pretrained(output_dir).config.temperature == temperature
    model = FerForImageClassification.from_pretrained(output_dir).eval()  # split_logits: its uncalibrated logits
    splits = load_fer2013(dataset_dir, splits=("validation", "test"))
    validation, test = (split_logits(model, splits[name]) for name in ("validation", "test"))
    assert fit_temperature(*validation) == pytest.approx(temperature, rel=1e-6)
    for name, (logits, labels) in (("validation", validation), ("test", test)):
        report = calibration[name]
        assert report["num_samples"] == SIZES[name]
        assert report["nll_before"] == pytest.approx(negative_log_likelihood(logits, labels), rel=1e-5)
        assert report["nll_after"] == pytest.approx(negative_log_likelihood(logits, labels, temperature), rel=1e-5)
    assert calibration["validation"]["nll_after"] < calibration["validation"]["nll_before"]
    assert calibration["bins"] == 15 and calibration["reliability_diagram"] == "reliability_diagram.png"
    assert PILImage.open(output_dir / "reliability_diagram.png").size[0] > 300
    assert f"calibration: temperature {temperature:.4f}" in stdout


def test_calibration_leaves_the_test_accuracy_as_it_was(cli_run: tuple[Path, str], dataset_dir: str) -> None:
    """Dividing the logits by T keeps every argmax: the uncalibrated logits' accuracy (calibration's "test"), the
    metrics.json figures and `python -m fer_model evaluate` of the calibrated folder are the same."""
    from fer_model.__main__ import main as cli

    output_dir, _ = cli_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["calibration"]["test"]["accuracy"] == metrics["accuracy"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli(["evaluate", "--model", str(output_dir), "--dataset", dataset_dir, "--split", "test"]) == 0
    result = json.loads(buffer.getvalue())
    assert (result["accuracy"], result["confusion_matrix"], result["per_class"]) == (
        metrics["accuracy"], metrics["confusion_matrix"], metrics["per_class"])


def test_evaluate_cli_reproduces_the_training_test_metrics(cli_run: tuple[Path, str], dataset_dir: str) -> None:
    """`python -m fer_model evaluate` (single process, processor-free path) agrees with train.py's test."""
    from fer_model.__main__ import main as cli

    output_dir, _ = cli_run
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli(["evaluate", "--model", str(output_dir), "--dataset", dataset_dir, "--split", "test",
                    "--tta", "flip", "--batch_size", "8"]) == 0
    result = json.loads(buffer.getvalue())
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert result["num_samples"] == SIZES["test"]
    assert result["accuracy"] == metrics["tta"]["flip"]["accuracy"]
    assert set(result["per_class"]) == set(FER2013_LABELS) and "macro_f1" in result


def test_sigkill_mid_epoch_left_only_the_complete_first_checkpoint(killed_run: dict) -> None:
    assert killed_run["returncode"] == -signal.SIGKILL, killed_run["stderr"][-2000:]
    assert "epoch 1/2:" in killed_run["stdout"] and "epoch 2/2:" not in killed_run["stdout"]
    assert killed_run["checkpoints"] == ["checkpoint_1"]  # no checkpoint_2, complete or half-written
    assert not (killed_run["output_dir"] / "metrics.json").exists()


def test_resumed_run_finishes_exactly_like_the_uninterrupted_one(cli_run: tuple[Path, str], killed_run: dict,
                                                                  resumed_run: dict) -> None:
    straight_dir, _ = cli_run
    resumed_dir = killed_run["output_dir"]
    straight = json.loads((straight_dir / "metrics.json").read_text())
    assert resumed_run["training"]["epochs_completed"] == 2
    # it did continue: epoch 1 restored from checkpoint_1 (model, optimizer, schedule, EMA, state), not retrained
    assert f"resumed from {resumed_dir / 'checkpoints' / 'checkpoint_1'} (epoch 1," in resumed_run["stdout"]
    assert [line.split(":")[0] for line in resumed_run["stdout"].splitlines() if line.startswith("epoch ")] == [
        "epoch 2/2"]
    assert without_timings(json.loads((resumed_dir / "metrics.json").read_text())) == without_timings(straight)
    last = "checkpoints/checkpoint_2"
    for name in ("model.safetensors", f"{last}/model.safetensors"):  # published model, last raw weights
        a, b = load_file(straight_dir / name), load_file(resumed_dir / name)
        assert all(torch.equal(a[key], b[key]) for key in a), f"{name} differs after the resume"
    a = torch.load(straight_dir / last / "custom_checkpoint_1.pkl", weights_only=True)  # the EMA (state is 0)
    b = torch.load(resumed_dir / last / "custom_checkpoint_1.pkl", weights_only=True)
    assert int(a["n_averaged"]) == 2 * 2 and all(torch.equal(a[key], b[key]) for key in a), "EMA differs"
    assert [p.name for p in (resumed_dir / "checkpoints").iterdir()] == ["checkpoint_2"]  # total_limit 1


def test_writing_the_temperature_keeps_the_checkpoints_valid(cli_run: tuple[Path, str], resumed_run: dict,
                                                            killed_run: dict) -> None:
    """config.json is replaced (os.replace) after the last checkpoint hard-linked it: the checkpoint keeps the
    content its manifest recorded (the uncalibrated config), and still verifies."""
    for output_dir in (cli_run[0], killed_run["output_dir"]):
        checkpoint = output_dir / "checkpoints" / "checkpoint_2"
        verify_checkpoint(checkpoint)  # raises CheckpointError naming a changed file
        saved = json.loads((checkpoint / BEST_MODEL_DIR / "config.json").read_text())
        published = json.loads((output_dir / "config.json").read_text())
        assert saved["temperature"] == 1.0 != published["temperature"]
        assert {k: v for k, v in saved.items() if k != "temperature"} == {
            k: v for k, v in published.items() if k != "temperature"}


def test_truncated_checkpoint_is_reported_by_name(resumed_run: dict, killed_run: dict, dataset_dir: str,
                                                  tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint_2"
    shutil.copytree(killed_run["output_dir"] / "checkpoints" / "checkpoint_2", checkpoint)
    optimizer = checkpoint / "optimizer.bin"
    size = optimizer.stat().st_size
    with optimizer.open("r+b") as file:
        file.truncate(size // 2)
    command = cli_command(dataset_dir, tmp_path / "out")[2:]
    with pytest.raises(CheckpointError, match=rf"checkpoint {checkpoint} is damaged: optimizer.bin has {size // 2} "
                                              rf"bytes, the manifest says {size} \(truncated\?\)"):
        train_script.main([*command, "--resume_from_checkpoint", str(checkpoint)])


def test_resume_refuses_a_changed_recipe(resumed_run: dict, killed_run: dict, dataset_dir: str) -> None:
    command = cli_command(dataset_dir, killed_run["output_dir"])[2:]
    with pytest.raises(ValueError, match=r"recipe differs from the checkpoint's in \['lr'\]"):
        train_script.main([*command, "--lr", "5e-4", "--resume_from_checkpoint", "latest"])
