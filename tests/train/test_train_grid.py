"""train/gpuqueue/grid_run.py: one row of the accuracy grid from a finished run (training itself is faked here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers.tiny_fer import SIZES, write_hub_folder
from train.gpuqueue import grid_run


def test_grid_row_holds_validation_and_test_figures_for_every_tta_mode(tiny_model_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = str(write_hub_folder(tmp_path / "data"))
    metrics = {"accuracy": 0.5, "macro_f1": 0.4,
               "validation": {"best_accuracy": 0.6, "best_epoch": 7, "best_model": "ema"},
               "training": {"images_per_second_median": 25000.0, "train_time_s": 99.0, "epochs_completed": 10}}

    def fake_train(name: str, flags: list[str], dataset: str, model_dir: Path, out: Path):
        shutil.copytree(tiny_model_dir, model_dir)
        (model_dir / "metrics.json").write_text(json.dumps(metrics))
        (out / f"{name}.log").write_text("log")
        return ["python", "train/train.py", *flags], 123.0

    monkeypatch.setattr(grid_run, "train", fake_train)
    monkeypatch.setattr(grid_run, "TTA_MODES", ("none", "flip"))  # 10-crop is the same call, 5x the work
    out = tmp_path / "out"
    row = grid_run.main(["row1", "--out", str(out), "--dataset", dataset, "--work_dir", str(tmp_path / "models"),
                         "--", "--config", "train/configs/best.yaml", "--epochs", "10"])
    assert row["command"] == "train/train.py --config train/configs/best.yaml --epochs 10"
    assert (row["best_val_accuracy"], row["best_epoch"], row["best_model"]) == (0.6, 7, "ema")
    assert row["test_accuracy"] == 0.5
    assert set(row["accuracy"]) == {f"{s}_{t}" for s in ("validation", "test") for t in ("none", "flip")}
    assert row["evaluations"]["test_flip"]["num_samples"] == SIZES["test"]
    assert row["evaluations"]["validation_none"]["num_samples"] == SIZES["validation"]
    assert json.loads((out / "row1.json").read_text())["wall_time_s"] == 123.0
    assert json.loads((out / "row1_metrics.json").read_text()) == metrics and (out / "row1.log").is_file()


def test_grid_arguments_split_at_the_double_dash() -> None:
    args, flags = grid_run.parse_args(["seed", "--out", "o", "--", "--config", "train/configs/seed.yaml"])
    assert (args.name, args.out, args.dataset) == ("seed", "o", ".data/fer2013")
    assert flags == ["--config", "train/configs/seed.yaml"]
