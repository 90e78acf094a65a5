#!/usr/bin/env python
"""One row of the accuracy grid (benchmarks/RESULTS.md): train with train/train.py, then evaluate the saved
model on validation and test with every TTA mode, through the code `python -m fer_model evaluate` uses.

    python train/gpuqueue/grid_run.py NAME --out DIR [--dataset .data/fer2013] -- TRAIN_FLAGS...
    python train/gpuqueue/grid_run.py best --out "$OUT" -- --config train/configs/best.yaml

Writes DIR/NAME.json (the row: validation-chosen figures, test with and without TTA, speed, wall time),
DIR/NAME_metrics.json (train.py's metrics.json) and DIR/NAME.log (the end of the run's output). The model
itself stays in --work_dir (weights are not copied back).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from fer_model.image_processing import TTA_MODES  # noqa: E402

LOG_TAIL_BYTES = 200_000


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="row name: output file prefix")
    parser.add_argument("--out", required=True, help="where the row's files go (e.g. $OUT on the GPU box)")
    parser.add_argument("--dataset", default=".data/fer2013", help="FER2013 source for training and evaluation")
    parser.add_argument("--work_dir", default="/tmp/grid", help="the model folders")
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def train(name: str, flags: list[str], dataset: str, model_dir: Path, out: Path) -> tuple[list[str], float]:
    """Run train.py (from scratch, checkpoint every 10 epochs) and keep the end of its output."""
    command = [sys.executable, str(REPO_ROOT / "train" / "train.py"), *flags, "--dataset", dataset, "--no-pretrained",
               "--output_dir", str(model_dir), "--checkpoint_every", "10"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    wall_time = time.perf_counter() - start
    log = f"$ {' '.join(command)}\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    (out / f"{name}.log").write_text(log[-LOG_TAIL_BYTES:])
    if result.returncode:
        raise SystemExit(f"{name}: train.py failed (exit {result.returncode}); see {out / f'{name}.log'}")
    return command, wall_time


def evaluate_all(model_dir: Path, data: Any) -> dict[str, dict[str, Any]]:
    """Accuracy and macro-F1 per split and TTA mode (fer_model.evaluation.evaluate_folder, as the CLI), of the
    model in `model_dir` on `data` (a path, or the DatasetDict fer_model.data.load_fer2013 returned)."""
    from fer_model.data import load_fer2013
    from fer_model.evaluation import evaluate_folder

    data = load_fer2013(data) if isinstance(data, (str, Path)) else data
    return {f"{split}_{tta}": {k: v for k, v in evaluate_folder(model_dir, data[split], tta=tta).items()
                               if k in ("accuracy", "macro_f1", "per_class", "num_samples")}
            for split in ("validation", "test") for tta in TTA_MODES}


def build_row(name: str, command: str, wall_time: float, metrics: dict[str, Any],
              evaluations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One grid row: the validation-chosen model's figures (train.py's metrics.json + every TTA mode), speed, time."""
    validation = metrics["validation"]
    return {
        "name": name, "command": command, "wall_time_s": wall_time,
        "best_val_accuracy": validation["best_accuracy"], "best_epoch": validation["best_epoch"],
        "best_model": validation.get("best_model"),
        "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
        "accuracy": {key: value["accuracy"] for key, value in evaluations.items()},
        "evaluations": evaluations,
        "images_per_second_median": metrics["training"].get("images_per_second_median"),
        "train_time_s": metrics["training"]["train_time_s"], "epochs": metrics["training"]["epochs_completed"],
    }


def summary_line(row: dict[str, Any]) -> str:
    figures = ", ".join(f"{key} {value:.4f}" for key, value in row["accuracy"].items())
    return (f"{row['name']}: best val {row['best_val_accuracy']:.4f} (epoch {row['best_epoch']}, {row['best_model']}) "
            f"| {figures} | {row['images_per_second_median'] or 0:.0f} images/s, wall {row['wall_time_s']:.0f} s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, flags = parse_args(argv)
    out, model_dir = Path(args.out), Path(args.work_dir) / args.name
    out.mkdir(parents=True, exist_ok=True)
    command, wall_time = train(args.name, flags, args.dataset, model_dir, out)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    (out / f"{args.name}_metrics.json").write_text(json.dumps(metrics, indent=1))
    row = build_row(args.name, " ".join(command[1:]), wall_time, metrics, evaluate_all(model_dir, args.dataset))
    (out / f"{args.name}.json").write_text(json.dumps(row, indent=1))
    print(summary_line(row))
    return row


if __name__ == "__main__":
    main()
