"""Flags and commands of quick tiny train.py runs on a CPU, shared by the tests that run train.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO

# Small and quick: Adam learns the synthetic bands in a few steps; 32 px exercises the on-device resize;
# batches of 14 make 2 steps per epoch of the 28 training faces.
QUICK = ["--cpu", "--no-pretrained", "--optimizer", "adam", "--lr", "1e-3", "--batch_size", "14",
         "--eval_batch_size", "16", "--image_size", "32"]

# Every stateful part a resume must restore: schedule, augmentation and MixUp RNGs, dropout, EMA, the
# training state; one checkpoint kept (accelerate's total_limit).
STATEFUL = ["--epochs", "2", "--augment", "--scheduler", "onecycle", "--head_dropout", "0.2", "--mixup_alpha", "0.4",
            "--ema_decay", "0.6", "--checkpoints_total_limit", "1"]
TIMINGS = ("images_per_second", "images_per_second_median", "train_time_s", "wall_time_s", "finish_time_s")


def cli_command(dataset_dir: str, output_dir: Path) -> list[str]:
    """`python train/train.py` with QUICK and STATEFUL: the command test_train.py runs, killed and resumed."""
    return [sys.executable, "train/train.py", *QUICK, *STATEFUL, "--dataset", dataset_dir,
            "--output_dir", str(output_dir), "--report_to", "tensorboard", "--tta", "flip"]


def without_timings(metrics: dict) -> dict:
    """metrics.json without its wall-clock figures: what two runs of one recipe must share exactly."""
    metrics = json.loads(json.dumps(metrics))
    for record in [*metrics["validation"]["history"], metrics["training"]]:
        for key in TIMINGS:
            record.pop(key, None)
    return metrics


def run_until_killed(command: list[str]) -> dict:
    """Run a 2-epoch cli_command and SIGKILL it once epoch 1's checkpoint exists and epoch 2 has started."""
    output_dir = Path(command[command.index("--output_dir") + 1])
    logs = output_dir.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (logs / "stdout.txt").open("w") as stdout, (logs / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=stderr, env=env)
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
