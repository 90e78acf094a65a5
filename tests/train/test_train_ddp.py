"""A real 2-process CPU run of train/train.py (accelerate launch --multi_gpu, gloo), with EMA and MixUp.

`accelerate launch --cpu --num_processes 2` would start a single process; `--multi_gpu` on a machine
without GPUs starts two CPU processes (MULTI_CPU). The test checks that both ran and that evaluation
counted every validation and test sample exactly once despite the uneven split over two processes, the
temperature fit included (one config.json and diagram written, the same T used by both processes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from fer_model import FER2013_LABELS, FerForImageClassification
from fer_model.__main__ import main as fer_model_cli
from fer_model.calibration import fit_temperature
from fer_model.data import load_fer2013
from fer_model.evaluation import split_logits
from tests.helpers.network import free_port
from tests.helpers.paths import REPO
from tests.helpers.tiny_fer import split_arrays, write_hub_folder

SIZES = {"train": 29, "validation": 15, "test": 13}  # odd sizes: the processes get uneven eval shards


def test_two_process_cpu_run_counts_every_sample_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = write_hub_folder(tmp_path / "data", SIZES)
    output_dir = tmp_path / "out"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "train/train.py", "--cpu", "--no-pretrained", "--dataset", str(dataset), "--epochs", "2",
        "--optimizer", "adam", "--lr", "1e-3", "--batch_size", "4", "--eval_batch_size", "4", "--image_size", "32",
        "--ema_decay", "0.5", "--mixup_alpha", "0.4", "--tta", "flip", "--output_dir", str(output_dir),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "num_processes=2" in result.stdout
    assert "train=29" in result.stdout and "steps_per_epoch=4" in result.stdout  # 14 samples each, batches of 4

    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["training"]["num_processes"] == 2
    assert metrics["num_samples"] == SIZES["test"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == SIZES["test"]
    true_counts = Counter(FER2013_LABELS[i] for i in split_arrays(SIZES)["test"][1])
    assert {name: c["support"] for name, c in metrics["per_class"].items()} == {
        name: true_counts.get(name, 0) for name in FER2013_LABELS}
    assert [h["val_samples"] for h in metrics["validation"]["history"]] == [SIZES["validation"]] * 2
    # an EMA per process (each follows the DDP-synchronised weights), validated beside the raw weights on every
    # process alike (the figures are gathered); every process saved its own RNG state
    best = metrics["validation"]["history"][metrics["validation"]["best_epoch"] - 1]
    assert metrics["validation"]["best_model"] == best["candidate"] in ("model", "ema")
    assert best["val_accuracy"] == max(best["val_accuracy_model"], best["val_accuracy_ema"])
    checkpoint = output_dir / "checkpoints" / "checkpoint_2"
    assert {"random_states_0.pkl", "random_states_1.pkl", "custom_checkpoint_1.pkl"} <= {
        p.name for p in checkpoint.iterdir()} and (checkpoint / "manifest.json").is_file()

    card = ModelCard.load(output_dir / "README.md")
    assert card.data.eval_results[0].metric_value == metrics["accuracy"]
    assert "accelerate launch --multi_gpu --num_processes 2 train/train.py --cpu" in card.text
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "confusion_matrix.png").is_file()

    # calibration: fitted on the 15 gathered validation logits (each once: the same fit from the folder here, in
    # one process), written once by the main process (one line, no temporary file left), and the same T used
    # by both processes for the flip-TTA test, which a single-process evaluation of the folder reproduces
    calibration = metrics["calibration"]
    assert (calibration["validation"]["num_samples"], calibration["test"]["num_samples"]) == (
        SIZES["validation"], SIZES["test"])
    temperature = json.loads((output_dir / "config.json").read_text())["temperature"]
    assert temperature == calibration["temperature"]
    model = FerForImageClassification.from_pretrained(output_dir).eval()
    validation = load_fer2013(str(dataset), splits=("validation",))["validation"]
    assert fit_temperature(*split_logits(model, validation)) == pytest.approx(temperature, rel=1e-6)
    assert result.stdout.count("calibration: temperature") == 1
    assert (output_dir / "reliability_diagram.png").is_file() and not list(output_dir.glob(".*"))
    assert calibration["test"]["accuracy"] == metrics["accuracy"]
    capsys.readouterr()
    assert fer_model_cli(["evaluate", "--model", str(output_dir), "--dataset", str(dataset), "--tta", "flip"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == metrics["tta"]["flip"]["accuracy"]
