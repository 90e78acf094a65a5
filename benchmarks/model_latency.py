"""CPU latency of one 48x48 face through FerForImageClassification (random init: speed only).

Prints the parameter count, then median latencies for one face, processor included and excluded,
next to a baseline in the same run: torchvision's VGG16 (the full ImageNet classifier, 224 px input)
that the seed's architecture replaces.

    python benchmarks/model_latency.py [--runs 100] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from timing import median_ms  # benchmarks/timing.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed
from fer_model import FerConfig, FerForImageClassification, FerImageProcessor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = FerForImageClassification(FerConfig()).eval()
    processor = FerImageProcessor()
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    pixel_values = processor(face)["pixel_values"]
    params = sum(p.numel() for p in model.parameters())

    with torch.inference_mode():
        model_ms = median_ms(lambda: model(pixel_values), args.runs)
        e2e_ms = median_ms(lambda: model(processor(face)["pixel_values"]), args.runs)
        from torchvision.models import vgg16

        baseline = vgg16().eval()
        baseline_params = sum(p.numel() for p in baseline.parameters())
        baseline_input = torch.randn(1, 3, 224, 224)
        baseline_ms = median_ms(lambda: baseline(baseline_input), max(10, args.runs // 5), warmup=3)

    print(f"threads={args.threads} runs={args.runs} torch={torch.__version__}")
    print(f"{'model':<42}{'params':>12}{'ms/face':>10}")
    print(f"{'FER-VGG16, 48 px (model only)':<42}{params / 1e6:>11.2f}M{model_ms:>10.2f}")
    print(f"{'FER-VGG16, 48 px (processor + model)':<42}{params / 1e6:>11.2f}M{e2e_ms:>10.2f}")
    print(f"{'baseline: torchvision vgg16, 224 px':<42}{baseline_params / 1e6:>11.2f}M{baseline_ms:>10.2f}")
    print(f"params={params} per_face_ms={model_ms:.2f} with_processor_ms={e2e_ms:.2f} "
          f"speedup_vs_vgg16_224={baseline_ms / model_ms:.1f}x")


if __name__ == "__main__":
    main()
