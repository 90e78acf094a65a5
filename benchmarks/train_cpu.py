"""CPU training throughput (images/s) of one train/train.py step: augment -> pixel_values -> forward/backward -> SGD.

Prints fp32 NCHW (the baseline) next to channels_last and channels_last + bf16 autocast, measured in the
same run on the same synthetic batch. Random init, 48x48 faces; speed only.

    python benchmarks/train_cpu.py [--batch_size 128] [--steps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed
from fer_model import FerConfig, FerForImageClassification  # noqa: E402
from fer_model.evaluation import gray_to_pixel_values  # noqa: E402
from train.augment import BatchAugment  # noqa: E402


def images_per_second(channels_last: bool, bf16: bool, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    config = FerConfig()
    model = FerForImageClassification(config).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randint(0, 256, (batch_size, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (batch_size,))
    augment, generator = BatchAugment(), torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        pixel_values = gray_to_pixel_values(augment(images.float() / 255.0, generator), config, channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(pixel_values=pixel_values).logits
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, median of {args.steps} steps")
    baseline = images_per_second(False, False, args.batch_size, args.steps)
    print(f"{'fp32, NCHW (baseline)':32s} {baseline:7.1f} images/s")
    variants = (("fp32, channels_last", True, False), ("bf16 autocast, channels_last", True, True))
    for name, channels_last, bf16 in variants:
        speed = images_per_second(channels_last, bf16, args.batch_size, args.steps)
        print(f"{name:32s} {speed:7.1f} images/s  ({speed / baseline:.1f}x)")


if __name__ == "__main__":
    main()
