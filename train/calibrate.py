"""The end of a run, after the best model is reloaded from disk: its temperature (issue 13, point 4).

Temperature scaling (fer_model/calibration.py) is fitted on the validation split's UNCALIBRATED logits, which
train/evaluation.py gathers with gather_for_metrics (every sample once, however many processes). The main
process fits it, writes it into OUTPUT_DIR/config.json and draws the test reliability diagram
(`write_calibration`, as `python -m fer_model calibrate` does: config.json via a temporary file and os.replace,
so a checkpoint's hard link to the old config.json keeps the content its manifest recorded); the figures are
broadcast so every process evaluates with the same T.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from fer_model.calibration import RELIABILITY_PNG, write_calibration


def calibrate_best_model(accelerator: Accelerator, output_dir: Path, validation: tuple[torch.Tensor, torch.Tensor],
                         test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """Fit T on `validation` (uncalibrated logits, labels), write config.json and the diagram once; the
    "calibration" entry of metrics.json (temperature, validation and test ECE / NLL before and after), the same
    on every process."""
    shared: list[dict[str, Any] | None] = [None]
    if accelerator.is_main_process:  # what `python -m fer_model calibrate` writes, from the gathered logits
        metrics = write_calibration(output_dir, validation, test, plot=output_dir / RELIABILITY_PNG)
        shared = [{**metrics, "reliability_diagram": RELIABILITY_PNG}]
    metrics = broadcast_object_list(shared)[0]
    test = metrics["test"]
    before_after = ", ".join(f"{name.upper()} {test[f'{name}_before']:.4f} -> {test[f'{name}_after']:.4f}"
                             for name in ("ece", "nll"))
    accelerator.print(f"calibration: temperature {metrics['temperature']:.4f} (fitted on validation, "
                      f"{metrics['validation']['num_samples']} samples); test {before_after}")
    return metrics
