"""The end of a run, complete or stopped by --max_time: the best model so far becomes a finished folder.

The same steps either way (train/evaluation.py's test with TTA and temperature, the optional int8 file,
metrics.json, the confusion matrix and reliability diagram, the card, the optional push: train/publish.py);
a run stopped by its time budget is marked "stopped at epoch N of M (time budget)" in metrics.json
(training.stopped) and the card. Every finish reads the test split once, for the model it publishes;
`training.test_evaluations` counts the finishes of the run so far (a resumed run's earlier ones included).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from fer_model import FerConfig
from train.evaluation import evaluate_best_model
from train.init_from import init_description
from train.publish import export_int8, write_model_folder
from train.recipe import Recipe, RunOptions


def stopped_marker(epoch: int, epochs: int) -> str:
    return f"stopped at epoch {epoch} of {epochs} (time budget)"


def finish_run(accelerator: Accelerator, recipe: Recipe, options: RunOptions, state: Any,
               loaders: tuple[DataLoader, DataLoader], config: FerConfig, splits: dict[str, tuple],
               int8_faces: torch.Tensor | None, run_start: float, argv: list[str],
               stopped: str | None = None) -> dict[str, Any]:
    """Test, calibrate, (int8), write the folder and card, (push); returns metrics.json's content."""
    output_dir, finish_start = Path(options.output_dir), time.perf_counter()
    metrics = evaluate_best_model(accelerator, output_dir, recipe, *loaders, config)
    if options.export_int8:
        metrics["int8"] = export_int8(accelerator, output_dir, int8_faces, splits["test"])
    metrics["validation"] = {k: getattr(state, k) for k in ("best_accuracy", "best_epoch", "best_model", "history")}
    metrics["training"] = {**training_summary(accelerator, recipe, state, splits, run_start),
                           "finish_time_s": time.perf_counter() - finish_start,  # test, calibration, int8
                           "stopped": stopped, "test_evaluations": state.test_evaluations,
                           "init": init_description(recipe, options)}
    if accelerator.is_main_process:
        write_model_folder(output_dir, metrics, asdict(recipe), dataset=options.dataset, preset=options.config,
                           argv=argv, num_processes=accelerator.num_processes, hub_model_id=options.hub_model_id,
                           push=options.push_to_hub, private=options.hub_private)
    accelerator.wait_for_everyone()
    return metrics


def training_summary(accelerator: Accelerator, recipe: Recipe, state: Any, splits: dict[str, tuple],
                     run_start: float) -> dict[str, Any]:
    speeds = [record["images_per_second"] for record in state.history]
    return {
        "epochs_completed": state.epoch, "num_processes": accelerator.num_processes,
        "device": accelerator.device.type, "mixed_precision": recipe.mixed_precision,
        **{f"{name}_samples": len(labels) for name, (_, labels) in splits.items()},
        "images_per_second": float(np.mean(speeds)), "images_per_second_median": float(np.median(speeds)),
        "train_time_s": float(sum(record["train_time_s"] for record in state.history)),
        "wall_time_s": time.perf_counter() - run_start,  # this process only: a resumed run counts from the resume
    }
