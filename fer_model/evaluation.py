"""Evaluation shared by training and `python -m fer_model evaluate`: tensors in, metrics out.

Faces become model inputs through the pixel module (`fer_model.image_processing.gray_to_pixel_values`
and its TTA views), the same functions training and FerImageProcessor use, so training, its evaluation,
`evaluate_folder` and serving agree exactly. Metrics follow scikit-learn's definitions (zero where a ratio
is undefined).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from .image_processing import gray_to_pixel_values, logits_with_tta


def predict_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    config: Any,
    tta: str = "none",
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits (log-probabilities under TTA) for a uint8 batch; `forward` maps pixel_values -> logits.

    A model trained on crops sees the centre crop of each face, or under TTA the crops of the whole face.
    """
    faces = gray_to_pixel_values(images, config, channels_last, do_center_crop=False)
    return logits_with_tta(forward, faces, tta, getattr(config, "crop_size", None))


@torch.inference_mode()
def split_logits(model: Any, split: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """UNCALIBRATED logits of `model` on a `load_fer2013` split, and its labels as the model's class indices.

    What temperature scaling fits on (and reports before/after): `model.uncalibrated_logits`, no TTA.
    """
    from .data import split_to_tensors

    columns = label_order(model.config.id2label, split.features["label"].names)  # dataset class -> model column
    images, labels = split_to_tensors(split)
    logits = [predict_logits(model.uncalibrated_logits, images[start : start + batch_size].to(model.device),
                             model.config).float().cpu() for start in range(0, len(labels), batch_size)]
    return torch.cat(logits), columns[labels.long()]


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(true, predicted) counts, shape (num_classes, num_classes), rows = true class."""
    index = labels.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def classification_report(confusion: torch.Tensor | np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support from a confusion matrix.

    Macro-F1 averages the classes that occur in the labels or the predictions (scikit-learn's default).
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros_like(true_positives), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positives), where=denominator > 0)
    present = (support > 0) | (predicted > 0)
    total = int(matrix.sum())
    return {
        "accuracy": float(true_positives.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_samples": total,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "labels": list(label_names),
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion_matrix(confusion: torch.Tensor | np.ndarray | list, label_names: Sequence[str],
                          path: str | os.PathLike, title: str = "FER2013 test") -> Path:
    """Row-normalised confusion matrix (counts in the cells) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set(xticks=range(len(label_names)), yticks=range(len(label_names)), xlabel="predicted", ylabel="true",
             title=f"{title} (row-normalised; counts in cells)")
    axes.set_xticklabels(label_names, rotation=45, ha="right")
    axes.set_yticklabels(label_names)
    for (row, column), count in np.ndenumerate(counts):
        axes.text(column, row, f"{rates[row, column]:.2f}\n{count}", ha="center", va="center", fontsize=7,
                  color="white" if rates[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def label_order(model_labels: dict[int, str], dataset_labels: Sequence[str]) -> torch.Tensor:
    """For each dataset class, the model's logit column with the same name (case-insensitive)."""
    by_name = {name.lower(): int(i) for i, name in model_labels.items()}
    missing = [name for name in dataset_labels if name.lower() not in by_name]
    if missing:
        raise ValueError(f"the model has no class for the dataset label(s) {missing}; "
                         f"its labels are {list(model_labels.values())}")
    return torch.tensor([by_name[name.lower()] for name in dataset_labels])


@torch.inference_mode()
def evaluate_folder(
    model_source: str | os.PathLike,
    split: Dataset,
    tta: str = "none",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    onnx: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Metrics of a saved model (Hub id or folder) on one split from `fer_model.data.load_fer2013`.

    With `onnx` (a file, or "auto" for the folder's model_int8.onnx), the logits come from that exported file
    run by onnxruntime on the CPU, after checking it belongs to the folder's weights; the folder still supplies
    the config (labels, image size, normalisation). None or "none": PyTorch.
    """
    from .data import split_to_tensors
    from .loading import load_model

    onnx = None if onnx is None or str(onnx).lower() == "none" else onnx
    device = "cpu" if onnx else device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(model_source, device=device)
    runtime = _onnx_runtime(model, model_source, onnx) if onnx else None
    forward = runtime or (lambda x: model(pixel_values=x).logits)
    label_names = split.features["label"].names
    columns = label_order(model.config.id2label, label_names).to(device)
    images, labels = split_to_tensors(split)
    predictions = []
    for start in range(0, len(labels), batch_size):
        batch = images[start : start + batch_size].to(device)
        logits = predict_logits(forward, batch, model.config, tta)
        predictions.append(logits[:, columns].argmax(-1).cpu())
    confusion = confusion_matrix(labels, torch.cat(predictions), len(label_names))
    served = {"onnx": str(runtime.path)} if runtime else {}
    return {"model": str(model_source), **served, "tta": tta, **classification_report(confusion, label_names)}


def _onnx_runtime(model: Any, source: str | os.PathLike, onnx: str | os.PathLike) -> Any:
    """The file's OnnxClassifier, checked against the folder's weights (a foreign file is refused)."""
    from .onnx_runtime import onnx_runtime_for

    runtime = onnx_runtime_for(model, source, onnx)
    if runtime is None:
        raise FileNotFoundError(f"--onnx {onnx}: {source} has no model_int8.onnx (export one with "
                                "`python -m fer_model export-onnx --int8`)")
    return runtime
