"""Evaluation inside a training run: validation metrics over a prepared loader (gather_for_metrics, so
every sample counts once over N processes) for every candidate (raw weights, EMA), and the test of the
best model as saved: its temperature fitted (train/calibrate.py), then the recipe's TTA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

from fer_model import FerConfig, FerForImageClassification
from fer_model.evaluation import classification_report, confusion_matrix, predict_logits
from train.calibrate import calibrate_best_model
from train.recipe import Recipe


@torch.no_grad()
def evaluate(accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, config: FerConfig,
             tta: str = "none", channels_last: bool = False) -> tuple[dict[str, Any], float]:
    """Metrics over a prepared loader; gather_for_metrics counts every sample exactly once."""
    model.eval()
    confusion = torch.zeros(config.num_labels, config.num_labels, dtype=torch.long)
    loss_sum = 0.0
    for images, labels in loader:
        with accelerator.autocast():
            logits = predict_logits(lambda x: model(pixel_values=x).logits, images, config, tta, channels_last)
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        predictions, labels, losses = accelerator.gather_for_metrics((logits.argmax(-1), labels, losses))
        confusion += confusion_matrix(labels, predictions, config.num_labels)
        loss_sum += float(losses.sum())
    report = classification_report(confusion, [config.id2label[i] for i in range(config.num_labels)])
    return report, loss_sum / max(report["num_samples"], 1)


def validate(accelerator: Accelerator, candidates: dict[str, torch.nn.Module], loader: DataLoader, config: FerConfig,
             channels_last: bool = False) -> dict[str, Any]:
    """Every candidate (raw weights, EMA) on validation; the better one is kept (the raw model on a tie).

    Returns the epoch's validation record: the kept candidate's figures, and each candidate's accuracy.
    """
    results = {name: evaluate(accelerator, module, loader, config, channels_last=channels_last)
               for name, module in candidates.items()}
    kept = max(results, key=lambda name: results[name][0]["accuracy"])  # the same on every process (gathered)
    report, loss = results[kept]
    record = {"candidate": kept, "val_loss": loss, "val_accuracy": report["accuracy"],
              "val_macro_f1": report["macro_f1"], "val_samples": report["num_samples"]}
    if len(results) > 1:
        record.update({f"val_accuracy_{name}": result[0]["accuracy"] for name, result in results.items()})
    return record


def without_compile(model: torch.nn.Module) -> torch.nn.Module:
    """The prepared model minus torch.compile's wrapper (still DDP when distributed), for evaluation."""
    return getattr(model, "_orig_mod", model)


@torch.no_grad()
def gather_logits(accelerator: Accelerator, model: FerForImageClassification, loader: DataLoader, config: FerConfig,
                  channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """UNCALIBRATED float32 logits (no TTA) and labels of a prepared loader, on the CPU; gather_for_metrics: every
    sample exactly once, in the same order on every process."""
    model.eval()
    logits, labels = [], []
    for images, batch_labels in loader:
        with accelerator.autocast():
            batch = predict_logits(model.uncalibrated_logits, images, config, channels_last=channels_last)
        batch, batch_labels = accelerator.gather_for_metrics((batch.float(), batch_labels))
        logits.append(batch.cpu())
        labels.append(batch_labels.cpu())
    return torch.cat(logits), torch.cat(labels)


def evaluate_best_model(accelerator: Accelerator, output_dir: Path, recipe: Recipe, val_loader: DataLoader,
                        test_loader: DataLoader, config: FerConfig) -> dict[str, Any]:
    """Test metrics of the best model reloaded from disk (exactly what gets published); its temperature fitted
    on validation and written into its config.json; then the recipe's TTA, of the calibrated model.

    The test figures come from the uncalibrated logits' argmax, which dividing by T leaves unchanged; TTA
    averages probabilities, so it is measured with T, as the published folder serves it.
    """
    accelerator.wait_for_everyone()
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"no best model in {output_dir}: was the run resumed into another --output_dir?")
    best = FerForImageClassification.from_pretrained(output_dir).to(accelerator.device)
    best = best.to(memory_format=torch.channels_last) if recipe.channels_last else best
    validation, (test_logits, test_labels) = (gather_logits(accelerator, best, loader, config, recipe.channels_last)
                                              for loader in (val_loader, test_loader))
    confusion = confusion_matrix(test_labels, test_logits.argmax(-1), config.num_labels)
    test = classification_report(confusion, [config.id2label[i] for i in range(config.num_labels)])
    calibration = calibrate_best_model(accelerator, output_dir, validation, (test_logits, test_labels))
    best.config.temperature = calibration["temperature"]
    tta_results = {}
    if recipe.tta != "none":  # validation figures too, so the TTA choice can be made on validation
        tta_test, _ = evaluate(accelerator, best, test_loader, config, recipe.tta, recipe.channels_last)
        tta_val, _ = evaluate(accelerator, best, val_loader, config, recipe.tta, recipe.channels_last)
        tta_results[recipe.tta] = {**{k: tta_test[k] for k in ("accuracy", "macro_f1", "per_class")},
                                   "validation_accuracy": tta_val["accuracy"]}
    accelerator.log({"test/accuracy": test["accuracy"], "test/macro_f1": test["macro_f1"]}, step=recipe.epochs)
    accelerator.print(f"test: accuracy {test['accuracy']:.4f} macro_f1 {test['macro_f1']:.4f} "
                      f"({test['num_samples']} samples)"
                      + "".join(f", {m} TTA accuracy {r['accuracy']:.4f}" for m, r in tta_results.items()))
    return {"split": "test", **test, "tta": tta_results, "calibration": calibration}
