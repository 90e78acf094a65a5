"""How much arithmetic a training step does, so images/s can be read as achieved TFLOP/s against the card.

FLOPs are counted by torch.utils.flop_counter on one forward + backward of the model (convolutions and
matrix products, 2 FLOPs per multiply-add; the first convolution needs no input gradient, so training is
a little under 3x the forward). Peaks are the datasheets' dense bf16 tensor-core figures (no sparsity).
"""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

# (name fragment of torch.cuda.get_device_name, dense bf16 TFLOP/s, the card assumed); most specific first.
BF16_DENSE_PEAKS: tuple[tuple[str, float, str], ...] = (
    ("H100 PCIe", 756.0, "H100 PCIe"),
    ("H100 NVL", 835.0, "H100 NVL"),
    ("H200", 989.0, "H200 (SXM)"),
    ("H100", 989.0, "H100 SXM"),  # torch names it "NVIDIA H100 80GB HBM3"
)


def bf16_dense_peak(device_name: str) -> tuple[float | None, str]:
    """(peak TFLOP/s, which card that assumes) for a CUDA device name; (None, why) for any other device."""
    for fragment, peak, card in BF16_DENSE_PEAKS:
        if fragment.lower() in device_name.lower():
            return peak, card
    return None, f"no bf16 peak known for {device_name!r}"


def training_flops_per_image(model: torch.nn.Module, image_size: int) -> dict[str, float]:
    """Forward and forward+backward FLOPs per image of `model` (a FerForImageClassification) at `image_size`.

    Counted on a CPU copy (the model itself, its gradients and BatchNorm statistics stay as they were),
    on a batch of 2 in training mode (BatchNorm needs 2).
    """
    counted = copy.deepcopy(model).float().cpu().train()
    pixel_values = torch.randn(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        logits = counted(pixel_values=pixel_values).logits
        forward = counter.get_total_flops()
        logits.sum().backward()
        total = counter.get_total_flops()
    return {"forward": forward / 2, "training": total / 2}


def achieved_tflops(images_per_second: float, flops_per_image: float) -> float:
    return images_per_second * flops_per_image / 1e12
