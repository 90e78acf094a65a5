"""Calibrated probabilities: temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks").

One scalar T, fitted with LBFGS on the validation split's negative log-likelihood (NLL) of the logits, is
stored in config.json as `temperature`; the model's forward divides its logits by it, so every softmax taken
of them gives calibrated probabilities and the argmax (the predicted class) is unchanged. Calibration is
measured by the expected calibration error (ECE: 15 equal-width bins of top-1 confidence, each bin's
|accuracy - mean confidence| weighted by its share of the samples) and the NLL, before and after.

Training calls `calibration_metrics` at the end of a run, and `python -m fer_model calibrate` calls
`calibrate_folder` for an existing model folder; both write the temperature with `write_temperature`, which
rewrites config.json alone, atomically.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15
RELIABILITY_PNG = "reliability_diagram.png"
TEMPERATURE_RANGE = (0.05, 20.0)  # a separable validation split would drive T to 0: the fit is clipped here
METHOD = "temperature scaling: one scalar fitted by LBFGS on the validation negative log-likelihood"


def _checked(logits: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (N, C) logits and int64 (N,) labels, or a ValueError naming what is wrong."""
    with torch.inference_mode(False):  # a copy outside inference mode: autograd (the fit) may use it
        logits = torch.as_tensor(logits, dtype=torch.float64, device="cpu").detach().clone()
        labels = torch.as_tensor(labels, dtype=torch.int64, device="cpu").detach().clone()
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError("logits must be a non-empty (samples, classes) array with >= 2 classes; "
                         f"got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match the logits; got {tuple(labels.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be class indices in 0..{logits.shape[1] - 1}; "
                         f"got {int(labels.min())}..{int(labels.max())}")
    return logits, labels


def negative_log_likelihood(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean NLL of softmax(logits / temperature) (natural log)."""
    logits, labels = _checked(logits, labels)
    return float(F.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T): LBFGS on log T (so T stays positive) from T = 1.

    `logits` are uncalibrated (N, C) logits of the validation split, `labels` their (N,) class indices. The NLL
    is convex in 1/T, so the minimum is unique; the result is clipped to TEMPERATURE_RANGE and never worse than
    T = 1 on these logits.
    """
    logits, labels = _checked(logits, labels)
    with torch.inference_mode(False), torch.enable_grad():  # callable from evaluation code under no_grad
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-14,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(logits / log_t.exp(), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
    temperature = min(max(float(log_t.detach().exp()), TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])
    worse = F.cross_entropy(logits / temperature, labels) > F.cross_entropy(logits, labels)
    if not math.isfinite(temperature) or worse:
        return 1.0
    return temperature


def reliability_bins(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin ((k/bins, (k+1)/bins], the first one closed): sample count, mean top-1 confidence and
    accuracy (NaN for empty bins). `probabilities` is (N, C), each row summing to 1."""
    probabilities, labels = _checked(probabilities, labels)
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence, edges[1:-1], right=False)  # edges[i-1] < c <= edges[i] -> bin i
    count = torch.bincount(index, minlength=bins).double()
    with np.errstate(invalid="ignore"):
        mean_confidence = (torch.bincount(index, confidence, minlength=bins) / count).numpy()
        accuracy = (torch.bincount(index, correct, minlength=bins) / count).numpy()
    return {"edges": edges.numpy(), "count": count.numpy().astype(np.int64), "confidence": mean_confidence,
            "accuracy": accuracy}


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """ECE: sum over bins of (bin size / N) * |bin accuracy - bin mean confidence| (top-1, equal-width bins)."""
    table = reliability_bins(probabilities, labels, bins)
    filled = table["count"] > 0
    weights = table["count"][filled] / table["count"].sum()
    return float((weights * np.abs(table["accuracy"][filled] - table["confidence"][filled])).sum())


def calibration_report(logits: Any, labels: Any, temperature: float, bins: int = ECE_BINS) -> dict[str, Any]:
    """ECE and NLL of `logits` (uncalibrated) before and after dividing them by `temperature`."""
    logits, labels = _checked(logits, labels)
    before, after = logits.softmax(-1), (logits / temperature).softmax(-1)
    return {
        "num_samples": len(labels),
        "accuracy": float((logits.argmax(-1) == labels).double().mean()),
        "ece_before": expected_calibration_error(before, labels, bins),
        "ece_after": expected_calibration_error(after, labels, bins),
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
    }


def calibration_metrics(validation: tuple[Any, Any], test: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Fit T on the validation (logits, labels) and report it, for metrics.json's "calibration" entry.

    Both pairs hold UNCALIBRATED logits (the model's `uncalibrated_logits`) in the model's label order.
    """
    temperature = fit_temperature(*validation)
    metrics = {"method": METHOD, "temperature": temperature, "bins": ECE_BINS,
               "validation": calibration_report(*validation, temperature)}
    if test is not None:
        metrics["test"] = calibration_report(*test, temperature)
    return metrics


def config_path(folder: str | os.PathLike) -> Path:
    """folder/config.json, or FileNotFoundError: calibration writes into a local model folder."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {str(folder)!r}: calibrate needs a local model folder "
                                "(for a Hub model, download it first, e.g. with `hf download REPO --local-dir DIR`)")
    return path


def write_temperature(folder: str | os.PathLike, temperature: float) -> Path:
    """Set `temperature` in folder/config.json, rewriting that file alone, atomically.

    The new text goes to a temporary file beside it (same filesystem), is flushed to disk, then os.replace()
    swaps it in: a reader sees the old config or the new one, never half of one. Every other key is kept as
    it was (transformers' layout: sorted keys, 2-space indent).
    """
    if not 0.0 < float(temperature) < float("inf"):
        raise ValueError(f"temperature={temperature!r} must be a positive finite number")
    path = config_path(folder)
    config = json.loads(path.read_text(encoding="utf-8"))
    config["temperature"] = float(temperature)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".json.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def plot_reliability_diagram(logits: Any, labels: Any, temperature: float, path: str | os.PathLike,
                             title: str = "FER2013 test", bins: int = ECE_BINS) -> Path:
    """Reliability diagram PNG: accuracy per confidence bin before and after temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logits, labels = _checked(logits, labels)
    width = 1.0 / bins
    figure, axes = plt.subplots(figsize=(5.6, 5.2), dpi=120)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    curves = (("before (T = 1)", 1.0, "tab:red"), (f"after (T = {temperature:.3f})", temperature, "tab:blue"))
    for offset, (name, scale, colour) in enumerate(curves):  # each bin: two half-width bars, side by side
        probabilities = (logits / scale).softmax(-1)
        table = reliability_bins(probabilities, labels, bins)
        ece = expected_calibration_error(probabilities, labels, bins)
        filled = table["count"] > 0
        axes.bar(table["edges"][:-1][filled] + offset * width / 2, table["accuracy"][filled], width=width / 2,
                 align="edge", alpha=0.6, color=colour, label=f"{name}: ECE {100 * ece:.2f} %")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence", ylabel="accuracy",
             title=f"{title}: reliability ({bins} bins)")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def calibrate_folder(folder: str | os.PathLike, validation: Any, test: Any | None = None, batch_size: int = 256,
                     device: str | torch.device | None = None, plot: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fit the temperature of a saved model folder on `validation` and write it into its config.json (only).

    `validation` / `test`: splits from `fer_model.data.load_fer2013`. Returns the "calibration" metrics (test
    figures when `test` is given); `plot`: where to write the reliability diagram (of test, else validation).
    """
    from .evaluation import split_logits
    from .loading import load_model

    config_path(folder)
    model, _ = load_model(folder, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pairs = {name: split_logits(model, split, batch_size)
             for name, split in (("validation", validation), ("test", test)) if split is not None}
    return {"model": str(folder), **write_calibration(folder, pairs["validation"], pairs.get("test"), plot)}


def write_calibration(folder: str | os.PathLike, validation: tuple[Any, Any], test: tuple[Any, Any] | None = None,
                      plot: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fit T on validation (logits, labels), write it into folder/config.json, optionally plot; the metrics.

    What `calibrate_folder` and the end of a training run share: the logits are UNCALIBRATED, in the model's
    label order; `plot` gets the reliability diagram of test (else validation).
    """
    metrics = calibration_metrics(validation, test)
    write_temperature(folder, metrics["temperature"])
    if plot is not None:
        shown = "test" if test is not None else "validation"
        plot_reliability_diagram(*(test if test is not None else validation), metrics["temperature"], plot,
                                 title=f"FER2013 {shown}")
    return metrics
