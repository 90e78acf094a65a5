"""train/train.py on tiny synthetic data (CPU, offline): the model folder, metrics, card, resume, push, recipe.

The 2-process run is in test_train_ddp.py; batched augmentation in test_train_augment.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
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
from tests.conftest import REPO
from tests.tiny_fer import SIZES, write_hub_folder
from train import train as train_script
from train.train import Recipe, epoch_batches, parse_args, steps_per_epoch

# Small and quick: Adam learns the synthetic bands in a few steps; 32 px exercises the on-device resize.
QUICK = ["--cpu", "--no-pretrained", "--optimizer", "adam", "--lr", "1e-3", "--batch_size", "8",
         "--eval_batch_size", "8", "--image_size", "32"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_hub_folder(tmp_path_factory.mktemp("fer-tiny")))


@pytest.fixture
def in_process():
    """Run train.main in this process; reset accelerate's process-wide state afterwards."""
    yield train_script.main
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def cli_run(dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`python train/train.py --cpu ...` exactly as a user runs it: 2 epochs, TensorBoard, flip TTA."""
    output_dir = tmp_path_factory.mktemp("run") / "fer-tiny-model"
    command = [sys.executable, "train/train.py", *QUICK, "--dataset", dataset_dir, "--epochs", "2",
               "--output_dir", str(output_dir), "--report_to", "tensorboard", "--tta", "flip"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result.stdout


def test_cli_run_prints_one_summary_line_per_epoch(cli_run: tuple[Path, str]) -> None:
    _, stdout = cli_run
    lines = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train_loss" in line and "val_accuracy" in line and "images/s" in line for line in lines)
    assert "num_processes=1" in stdout and "test: accuracy" in stdout


def test_cli_run_writes_a_loadable_model_folder(cli_run: tuple[Path, str]) -> None:
    output_dir, _ = cli_run
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json",
                 "confusion_matrix.png", "train_config.yaml", "configuration.py", "modeling.py", "image_processing.py"):
        assert (output_dir / name).is_file(), name
    model = FerForImageClassification.from_pretrained(output_dir).eval()
    processor = FerImageProcessor.from_pretrained(output_dir)
    assert model.config.image_size == processor.image_size == 32
    assert list(model.config.id2label.values()) == list(FER2013_LABELS)  # from the dataset's ClassLabel
    assert model.config.freeze_until is None  # from scratch: nothing frozen
    logits = model(**processor(PILImage.new("L", (48, 48), 128))).logits
    assert logits.shape == (1, 7)
    assert PILImage.open(output_dir / "confusion_matrix.png").size[0] > 300
    assert list((output_dir / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events"
    assert yaml.safe_load((output_dir / "train_config.yaml").read_text())["image_size"] == 32


def test_cli_run_metrics_count_every_test_sample_once(cli_run: tuple[Path, str]) -> None:
    output_dir, _ = cli_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_samples"] == SIZES["test"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == SIZES["test"]
    assert sum(c["support"] for c in metrics["per_class"].values()) == SIZES["test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert set(metrics["tta"]) == {"flip"} and 0.0 <= metrics["tta"]["flip"]["accuracy"] <= 1.0
    history = metrics["validation"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["val_samples"] == SIZES["validation"] for h in history)
    assert metrics["validation"]["best_accuracy"] == max(h["val_accuracy"] for h in history)
    assert metrics["training"]["epochs_completed"] == 2 and metrics["training"]["images_per_second"] > 0


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


def test_resume_gives_the_same_result_as_an_uninterrupted_run(dataset_dir: str, tmp_path: Path, in_process) -> None:
    common = [*QUICK, "--dataset", dataset_dir, "--epochs", "2", "--augment", "--hflip", "--scheduler", "onecycle",
              "--head_dropout", "0.2"]
    straight = in_process([*common, "--output_dir", str(tmp_path / "straight")])
    AcceleratorState._reset_state(True)
    stopped = in_process([*common, "--output_dir", str(tmp_path / "resumed"), "--stop_after_epoch", "1"])
    assert stopped["stopped_after_epoch"] == 1 and not (tmp_path / "resumed" / "metrics.json").exists()
    AcceleratorState._reset_state(True)
    with pytest.raises(ValueError, match=r"recipe differs from the checkpoint's in \['lr'\]"):
        in_process([*common, "--lr", "5e-4", "--output_dir", str(tmp_path / "resumed"),
                    "--resume_from_checkpoint", "latest"])
    AcceleratorState._reset_state(True)
    resumed = in_process([*common, "--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint", "latest"])
    assert resumed["training"]["epochs_completed"] == straight["training"]["epochs_completed"] == 2
    for key in ("accuracy", "macro_f1", "confusion_matrix"):
        assert resumed[key] == straight[key], key
    strip = ("images_per_second", "train_time_s")
    assert [{k: v for k, v in h.items() if k not in strip} for h in resumed["validation"]["history"]] == \
           [{k: v for k, v in h.items() if k not in strip} for h in straight["validation"]["history"]]
    a = load_file(tmp_path / "straight" / "checkpoints" / "epoch_2" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "epoch_2" / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a), "resumed weights differ"
    assert [p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()] == ["epoch_2"]  # only the newest kept


def test_push_uploads_the_model_folder_once(dataset_dir: str, tmp_path: Path, in_process, monkeypatch) -> None:
    """Checked at the HfApi boundary: repo creation, then one upload of the folder (no checkpoints, no logs)."""
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
    output_dir = tmp_path / "out"
    metrics = in_process([*QUICK, "--dataset", dataset_dir, "--epochs", "1", "--output_dir", str(output_dir),
                          "--report_to", "tensorboard", "--push_to_hub", "--hub_model_id", "someone/fer-vgg16-test",
                          "--hub_private"])
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


def test_presets_hold_the_seed_and_release_recipes() -> None:
    seed, _ = parse_args(["--config", "train/configs/seed.yaml"])
    assert (seed.optimizer, seed.lr, seed.batch_size, seed.epochs) == ("adam", 1e-4, 512, 20)
    assert (seed.freeze_until, seed.hidden_size, seed.augment, seed.pretrained) == ("block4_conv1", 32, False, True)
    assert seed == Recipe(), "the dataclass defaults are the seed's recipe"
    best, _ = parse_args(["--config", "train/configs/best.yaml"])
    assert (best.pretrained, best.freeze_until, best.optimizer, best.nesterov, best.momentum) == (
        False, None, "sgd", True, 0.9)
    assert (best.lr, best.scheduler, best.weight_decay, best.batch_size, best.epochs) == (
        0.01, "onecycle", 5e-4, 128, 60)
    assert (best.augment, best.rotation, best.scale, best.translate, best.hflip, best.erasing_size) == (
        True, 10.0, 0.1, 0.1, True, 16)
    assert (best.mixed_precision, best.channels_last) == ("bf16", True)


def test_flags_override_the_preset() -> None:
    recipe, options = parse_args(["--config", "train/configs/best.yaml", "--epochs", "3", "--no-augment",
                                  "--pretrained", "--freeze_until", "block3_conv1", "--output_dir", "x", "--cpu"])
    assert (recipe.epochs, recipe.augment, recipe.pretrained, recipe.freeze_until) == (3, False, True, "block3_conv1")
    assert recipe.lr == 0.01 and options.output_dir == "x" and options.cpu


@pytest.mark.parametrize(("text", "message"), [
    ("lr: 0.1\nlearning_rate: 3\n", r"unknown option\(s\) \['learning_rate'\]"),
    ("optimizer: rmsprop\n", "optimizer='rmsprop' is not one of"),
    ("ema_decay: 1.5\n", r"ema_decay=1.5"),
    ("restart_cycles: 3\n", "restart_cycles goes with scheduler=cosine_restarts"),
    ("scheduler: cosine_restarts\n", "restart_cycles goes with scheduler=cosine_restarts"),
    ("class_weights_beta: 0.99\n", "only applies to class_weights=effective"),
    ("swa_lr: 0.01\n", "swa_lr needs 1 <= swa_epochs < epochs"),
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
