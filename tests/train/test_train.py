"""train/train.py on tiny synthetic data (CPU, offline): the model folder, metrics, card, a SIGKILL and resume,
the recipe options end to end, push, presets.

The 2-process run is in test_train_ddp.py; batched augmentation in test_train_augment.py; each recipe option's
effect on small tensors, the input path and the checkpoint files in test_train_recipe.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
from fer_model.card import render_model_card
from fer_model.evaluation import classification_report
from tests.helpers.paths import REPO
from tests.helpers.tiny_fer import SIZES, write_hub_folder
from train import train as train_script
from train.batches import epoch_batches, steps_per_epoch
from train.checkpoints import CheckpointError
from train.recipe import Recipe, parse_args

# Small and quick: Adam learns the synthetic bands in a few steps; 32 px exercises the on-device resize;
# batches of 14 make 2 steps per epoch of the 28 training faces.
QUICK = ["--cpu", "--no-pretrained", "--optimizer", "adam", "--lr", "1e-3", "--batch_size", "14",
         "--eval_batch_size", "16", "--image_size", "32"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_hub_folder(tmp_path_factory.mktemp("fer-tiny")))


@pytest.fixture
def in_process():
    """Run train.main in this process; reset accelerate's process-wide state afterwards."""
    yield train_script.main
    AcceleratorState._reset_state(True)


# Every stateful part a resume must restore: schedule, augmentation and MixUp RNGs, dropout, EMA, the
# training state; one checkpoint kept (accelerate's total_limit).
STATEFUL = ["--epochs", "2", "--augment", "--scheduler", "onecycle", "--head_dropout", "0.2", "--mixup_alpha", "0.4",
            "--ema_decay", "0.6", "--checkpoints_total_limit", "1"]
TIMINGS = ("images_per_second", "images_per_second_median", "train_time_s", "wall_time_s")


def cli_command(dataset_dir: str, output_dir: Path) -> list[str]:
    return [sys.executable, "train/train.py", *QUICK, *STATEFUL, "--dataset", dataset_dir,
            "--output_dir", str(output_dir), "--report_to", "tensorboard", "--tta", "flip"]


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


def without_timings(metrics: dict) -> dict:
    metrics = json.loads(json.dumps(metrics))
    for record in [*metrics["validation"]["history"], metrics["training"]]:
        for key in TIMINGS:
            record.pop(key, None)
    return metrics


@pytest.fixture(scope="module")
def killed_run(cli_run: tuple[Path, str], dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cli_run command again, SIGKILLed once epoch 1's checkpoint exists and epoch 2 has started."""
    output_dir = tmp_path_factory.mktemp("killed") / "fer-tiny-model"
    logs = output_dir.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (logs / "stdout.txt").open("w") as stdout, (logs / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(cli_command(dataset_dir, output_dir), cwd=REPO, stdout=stdout, stderr=stderr,
                                   env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            first_done = "epoch 1/2:" in (logs / "stdout.txt").read_text()
            if first_done and "epoch 2:" in (logs / "stderr.txt").read_text():  # tqdm's bar of epoch 2
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    return {"output_dir": output_dir, "returncode": process.returncode,
            "checkpoints": sorted(p.name for p in (output_dir / "checkpoints").iterdir() if p.is_dir()),
            "stdout": (logs / "stdout.txt").read_text(), "stderr": (logs / "stderr.txt").read_text()}


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
                 "confusion_matrix.png", "train_config.yaml", "configuration.py", "modeling.py", "image_processing.py"):
        assert (output_dir / name).is_file(), name
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
    assert all("val_accuracy_model" in h for h in history)  # the raw model's figure beside the EMA's
    best = max(history, key=lambda h: h["val_accuracy"])  # the first epoch reaching the maximum
    assert (validation["best_accuracy"], validation["best_epoch"]) == (best["val_accuracy"], best["epoch"])
    assert validation["best_model"] == "ema"
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
    assert card.data.model_name == "fer-tiny-model" and card.data.pipeline_tag == "image-classification"
    text = card.text
    assert "](confusion_matrix.png)" in text
    assert "python train/train.py --cpu --no-pretrained" in text and "--tta flip" in text
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in text
    assert "surveillance" in text and "hiring" in text and "any decision about a person" in text
    assert "Dataset bias" in text


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


def test_recipe_options_end_to_end_and_push(tmp_path: Path, in_process, monkeypatch) -> None:
    """vgg16_bn, a wider head, dropout, a warm-up, label smoothing, MixUp and EMA in one run, stopped after
    epoch 1 and resumed; then the push, checked at the HfApi boundary (one upload, no checkpoints/logs)."""
    from huggingface_hub import HfApi, RepoUrl
    from huggingface_hub.utils import filter_repo_objects

    dataset = write_hub_folder(tmp_path / "data", {"train": 30, "validation": 14, "test": 13})
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
    output_dir = tmp_path / "out"
    options = ["--backbone", "vgg16_bn", "--image_size", "48", "--hidden_size", "64", "--head_dropout", "0.3",
               "--warmup_ratio", "0.75", "--label_smoothing", "0.1", "--augment", "--mixup_alpha", "1.0",
               "--ema_decay", "0.9", "--epochs", "2", "--batch_size", "16", "--checkpoints_total_limit", "2"]
    command = [*QUICK, *options, "--dataset", str(dataset), "--output_dir", str(output_dir), "--report_to",
               "tensorboard", "--push_to_hub", "--hub_model_id", "someone/fer-vgg16-test", "--hub_private"]
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
    # 2 steps an epoch (batches of 16 and 14), warm-up over 0.75 x 4 = 3 steps, then the constant lr
    assert [h["lr"] for h in history] == pytest.approx([2 / 3 * 1e-3, 1e-3])
    checkpoints = output_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_1", "checkpoint_2"]  # total_limit 2
    raw = load_file(checkpoints / "checkpoint_2" / "model.safetensors")
    ema = torch.load(checkpoints / "checkpoint_2" / "custom_checkpoint_1.pkl", weights_only=True)
    assert int(ema["n_averaged"]) == 2 * 2  # epochs x steps
    name = "features.0.weight"
    assert not torch.equal(ema[f"module.{name}"], raw[name])
    best_epoch = metrics["validation"]["best_epoch"]
    assert metrics["validation"]["best_model"] == "ema", "with EMA on, the EMA weights are the candidate"
    best_ema = torch.load(checkpoints / f"checkpoint_{best_epoch}" / "custom_checkpoint_1.pkl", weights_only=True)
    torch.testing.assert_close(published[name], best_ema[f"module.{name}"])

    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1:] == ("someone/fer-vgg16-test", True, True)
    _, repo_id, uploaded, card_accuracy = calls[1]
    assert repo_id == "someone/fer-vgg16-test"
    assert set(uploaded) == {"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                             "configuration.py", "modeling.py", "image_processing.py", "metrics.json",
                             "confusion_matrix.png", "train_config.yaml"}
    assert card_accuracy == metrics["accuracy"]
    assert ModelCard.load(output_dir / "README.md").data.model_name == "someone/fer-vgg16-test"


def test_default_imagenet_init_offline_says_how_to_train_without_it(dataset_dir: str, tmp_path: Path,
                                                                    in_process) -> None:
    with pytest.raises(RuntimeError, match="--no-pretrained.*--pretrained_weights PATH"):
        in_process(["--cpu", "--dataset", dataset_dir, "--epochs", "1", "--output_dir", str(tmp_path / "o")])


def test_card_of_an_imagenet_fine_tune_names_the_base_model_and_hub_dataset() -> None:
    confusion = [[5, 1], [2, 4]]
    metrics = {**classification_report(confusion, ["happy", "sad"]), "tta": {},
               "validation": {"best_accuracy": 0.7, "best_epoch": 3, "history": []},
               "training": {"epochs_completed": 20, "num_processes": 8, "device": "cuda", "mixed_precision": "bf16",
                            "train_samples": 28709, "validation_samples": 3589, "test_samples": 3589,
                            "images_per_second": 9000.0, "train_time_s": 300.0}}
    card = render_model_card(metrics, model_name="you/fer-vgg16", dataset="fer-vgg16/fer2013",
                             command="python train/train.py --config train/configs/seed.yaml",
                             recipe={**vars(Recipe())}, preset="train/configs/seed.yaml")
    assert card.data.base_model == "timm/vgg16.tv_in1k" and card.data.datasets == ["fer-vgg16/fer2013"]
    assert card.data.eval_results[0].dataset_type == "fer-vgg16/fer2013"
    assert card.data.eval_results[0].metric_value == metrics["accuracy"] == 9 / 12
    assert "ImageNet (`timm/vgg16.tv_in1k`), layers before `block4_conv1` frozen" in card.text
    assert "8 process(es)" in card.text and "preset `train/configs/seed.yaml`" in card.text


# --- recipe and sharding (no training) ---------------------------------------------------------------


def test_presets_hold_the_seed_measured_and_release_recipes() -> None:
    seed, _ = parse_args(["--config", "train/configs/seed.yaml"])
    assert (seed.optimizer, seed.lr, seed.batch_size, seed.epochs) == ("adam", 1e-4, 512, 20)
    assert (seed.freeze_until, seed.hidden_size, seed.augment, seed.pretrained) == ("block4_conv1", 32, False, True)
    assert seed == Recipe(), "the dataclass defaults are the seed's recipe"
    measured, _ = parse_args(["--config", "train/configs/onecycle60.yaml"])
    assert (measured.pretrained, measured.freeze_until, measured.optimizer, measured.nesterov, measured.momentum) == (
        False, None, "sgd", True, 0.9)
    assert (measured.lr, measured.scheduler, measured.weight_decay, measured.batch_size, measured.epochs) == (
        0.01, "onecycle", 5e-4, 128, 60)
    assert (measured.augment, measured.rotation, measured.scale, measured.translate, measured.hflip,
            measured.erasing_size) == (True, 10.0, 0.1, 0.1, True, 16)
    assert (measured.mixed_precision, measured.channels_last, measured.torch_compile, measured.tta) == (
        "bf16", True, True, "flip")
    best, _ = parse_args(["--config", "train/configs/best.yaml"])
    changed = {k for k, v in vars(best).items() if getattr(measured, k) != v}
    assert changed == {"epochs", "label_smoothing", "ema_decay", "tta"}, "best.yaml = onecycle60.yaml + the hypothesis"
    assert (best.epochs, best.label_smoothing, best.ema_decay, best.tta, best.hidden_size) == (
        100, 0.1, 0.999, "10crop", 32)


def test_flags_override_the_preset() -> None:
    recipe, options = parse_args(["--config", "train/configs/best.yaml", "--epochs", "3", "--no-augment",
                                  "--pretrained", "--freeze_until", "block3_conv1", "--output_dir", "x", "--cpu"])
    assert (recipe.epochs, recipe.augment, recipe.pretrained, recipe.freeze_until) == (3, False, True, "block3_conv1")
    assert recipe.lr == 0.01 and options.output_dir == "x" and options.cpu


@pytest.mark.parametrize(("text", "message"), [
    ("lr: 0.1\nlearning_rate: 3\n", r"unknown option\(s\) \['learning_rate'\]"),
    ("optimizer: rmsprop\n", "optimizer='rmsprop' is not one of"),
    ("ema_decay: 1.5\n", r"ema_decay=1.5"),
    ("swa_epochs: 3\n", r"unknown option\(s\) \['swa_epochs'\]"),  # removed options are refused, not ignored
    ("scheduler: cosine_restarts\n", r"scheduler='cosine_restarts' is not one of \['none', 'onecycle'\]"),
    ("tta: 5crop\n", "tta='5crop' is not one of"),
    ("image_size: 16\n", "image_size=16 must be an integer >= 32"),  # checked by FerConfig itself
    ("compile_mode: max-autotune\n", "needs torch_compile"),
    ("scheduler: onecycle\nwarmup_ratio: 0.0\n", "warmup_ratio > 0"),
    ("batch_size: 1\n", "batch_size=1"),
])
def test_bad_presets_are_rejected_by_name(tmp_path: Path, text: str, message: str) -> None:
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    with pytest.raises(ValueError, match=message):
        parse_args(["--config", str(preset)])


def test_pretrained_weights_contradicting_no_pretrained_is_an_error() -> None:
    recipe, options = parse_args(["--no-pretrained", "--pretrained_weights", "vgg16.pth"])
    with pytest.raises(ValueError, match="contradicts --no-pretrained"):
        train_script.backbone_init(recipe, options)


@pytest.mark.parametrize(("num_samples", "batch_size", "processes"), [(28, 8, 1), (29, 4, 2), (100, 16, 3), (9, 4, 2)])
def test_epoch_shards_are_disjoint_equal_and_seeded(num_samples: int, batch_size: int, processes: int) -> None:
    shards = [epoch_batches(num_samples, batch_size, seed=1, epoch=3, process_index=r, num_processes=processes)
              for r in range(processes)]
    assert len({len(batches) for batches in shards}) == 1, "every process must take the same number of steps"
    assert len(shards[0]) == steps_per_epoch(num_samples // processes, batch_size)
    seen = [int(i) for batches in shards for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) and all(len(b) >= 2 for s in shards for b in s)
    assert len(seen) >= processes * (num_samples // processes) - processes  # only a 1-sample tail dropped
    again = epoch_batches(num_samples, batch_size, seed=1, epoch=3, process_index=0, num_processes=processes)
    other = epoch_batches(num_samples, batch_size, seed=1, epoch=4, process_index=0, num_processes=processes)
    assert all(torch.equal(a, b) for a, b in zip(again, shards[0], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(other, shards[0], strict=True))


def test_classification_report_matches_hand_computed_figures() -> None:
    # rows = true class; "c" is only ever predicted, "d" neither occurs nor is predicted (left out of macro-F1)
    confusion = [[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    report = classification_report(confusion, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(5 / 8) and report["num_samples"] == 8
    a, b, c = (report["per_class"][name] for name in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 0.75, 4)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 0.5
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    f1_a, f1_b = 2 * 0.75 / 1.75, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert report["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)
