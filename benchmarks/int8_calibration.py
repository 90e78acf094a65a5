"""int8 ONNX accuracy by calibration setting, next to the fp32 model, all on the full FER2013 test split.

Each variant is `fer_model.onnx_runtime.export_onnx` with real training faces (the seeded sample that
`python -m fer_model export-onnx --int8` uses), scored like `python -m fer_model evaluate --onnx`; the fp32
PyTorch accuracy is measured in the same run. Prints one row per variant and the drop in points.

    python benchmarks/int8_calibration.py --model ../shared/models/fer-vgg16 --dataset ../shared/fer2013

Memory: the Percentile and Entropy calibrators hold every activation of every calibration face (about 6 MB a
face for this model), so 1,024 faces need about 7 GB; MinMax reduces each batch as it goes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = ("/head/fc1/Gemm", "/head/fc2/Gemm")
FIRST_CONV = ("/features/features.0/Conv",)
# (calibration method, calibration faces, nodes kept fp32): onnxruntime's former default first.
VARIANTS: list[tuple[str, int, tuple[str, ...]]] = [
    ("MinMax", 512, ()),
    ("MinMax", 2048, ()),
    ("MinMax", 512, HEAD),
    ("MinMax", 512, FIRST_CONV),
    ("Entropy", 512, ()),
    ("Percentile", 512, ()),
    ("Percentile", 1024, ()),
    ("Percentile", 512, HEAD),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model folder")
    parser.add_argument("--dataset", required=True, help="FER2013 source (train calibrates, test scores)")
    parser.add_argument("--max_faces", type=int, default=2048, help="skip variants calibrating on more faces")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))  # run from a checkout, no install needed
    from fer_model import load_model
    from fer_model.__main__ import calibration_batch
    from fer_model.data import load_fer2013
    from fer_model.evaluation import evaluate_folder
    from fer_model.onnx_runtime import export_onnx

    model, _ = load_model(args.model)
    test = load_fer2013(args.dataset, splits=("test",))["test"]
    faces = calibration_batch(args.dataset, model.config, max(n for _, n, _ in VARIANTS if n <= args.max_faces))
    fp32 = evaluate_folder(args.model, test, device="cpu")["accuracy"]
    print(f"model={args.model} test faces={len(test)} fp32 (PyTorch) accuracy {100 * fp32:.2f} %")
    print(f"{'calibration':<12}{'faces':>7}  {'fp32 nodes':<28}{'int8 accuracy':>14}{'drop (points)':>15}{'s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for method, count, fp32_nodes in VARIANTS:
            if count > args.max_faces:
                continue
            start = time.perf_counter()
            path = export_onnx(model, Path(tmp) / "int8.onnx", calibration=faces[:count], method=method,
                               fp32_nodes=fp32_nodes)
            int8 = evaluate_folder(args.model, test, onnx=path)["accuracy"]
            kept = ", ".join(name.split("/")[-2] for name in fp32_nodes) or "-"
            print(f"{method:<12}{count:>7}  {kept:<28}{100 * int8:>13.2f}%{100 * (fp32 - int8):>15.2f}"
                  f"{time.perf_counter() - start:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
