"""benchmarks/train_throughput.py runs train.py's input path and step next to a torchvision DataLoader pipeline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "benchmarks" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conventional_transform_matches_the_recipe_augmentation(benchmark) -> None:
    from PIL import Image
    from torchvision.transforms import v2

    from fer_model import FerConfig

    recipe = benchmark.benchmark_recipe(benchmark.parse_args(["--batch_size", "8", "--image_size", "64"]))
    transform = benchmark.conventional_transform(recipe, FerConfig(image_size=64))
    kinds = [type(t) for t in transform.transforms]
    assert kinds == [v2.RandomAffine, v2.RandomHorizontalFlip, v2.Resize, v2.Grayscale, v2.ToImage, v2.ToDtype,
                     v2.Normalize, v2.RandomErasing]
    affine, erasing = transform.transforms[0], transform.transforms[-1]
    assert (affine.degrees, affine.translate, affine.scale) == ([-10.0, 10.0], (0.1, 0.1), (0.9, 1.1))
    assert erasing.scale == pytest.approx(((16 / 48) ** 2,) * 2) and erasing.ratio == (1.0, 1.0)
    out = transform(Image.new("L", (48, 48), 128))
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32


def test_benchmark_prints_both_pipelines_and_their_ratio(benchmark, tmp_path: Path, capsys) -> None:
    argv = ["--device", "cpu", "--batch_size", "4", "--steps", "2", "--warmup", "1", "--num_workers", "1",
            "--num_images", "16", "--image_size", "32", "--mixed_precision", "no", "--augment_chunk", "8",
            "--json", str(tmp_path / "throughput.json")]
    try:
        results = benchmark.main(argv)
    finally:
        AcceleratorState._reset_state(True)
    printed = capsys.readouterr().out
    assert "train.py (resident uint8, batched on device)" in printed and "conventional (PIL per sample" in printed
    assert "ratio" in printed and "input only" in printed and "training" in printed
    for pipeline in ("train_py", "conventional"):
        assert all(results[pipeline][k] > 0 for k in ("input_only", "training"))
    assert results["ratio"]["training"] == pytest.approx(results["train_py"]["training"]
                                                         / results["conventional"]["training"])
    assert results["setup"]["steps"] == 2 and results["setup"]["warmup"] == 2  # rounded up to whole chunks of 2
    saved = json.loads((tmp_path / "throughput.json").read_text())["setup"]
    assert (saved["batch_size"], saved["augment_chunk"]) == (4, 8)
