"""benchmarks/train_throughput.py runs train.py's input path and step next to a torchvision DataLoader pipeline,
reads train.py's figure as TFLOP/s, and times 1 and 2 processes sharing the device; train/flops.py counts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from fer_model import FerConfig, FerForImageClassification
from tests.helpers.paths import REPO
from train.flops import bf16_dense_peak, training_flops_per_image

VGG16_48PX_CONVS = [(3, 64, 48), (64, 64, 48), (64, 128, 24), (128, 128, 24), (128, 256, 12), (256, 256, 12),
                    (256, 256, 12), (256, 512, 6), (512, 512, 6), (512, 512, 6), (512, 512, 3), (512, 512, 3),
                    (512, 512, 3)]  # (in, out, side) of the 13 3x3 convolutions at 48 px


@pytest.fixture(scope="module")
def benchmark():
    sys.path.insert(0, str(REPO / "benchmarks"))  # its neighbour conventional_pipeline.py
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "benchmarks" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conventional_transform_matches_the_recipe_augmentation(benchmark) -> None:
    from conventional_pipeline import conventional_transform
    from PIL import Image
    from torchvision.transforms import v2

    recipe = benchmark.parse_args(["--batch_size", "8", "--image_size", "64"]).recipe  # best.yaml + flags
    transform = conventional_transform(recipe, FerConfig(image_size=64))
    kinds = [type(t) for t in transform.transforms]
    assert kinds == [v2.RandomAffine, v2.RandomHorizontalFlip, v2.Resize, v2.Grayscale, v2.ToImage, v2.ToDtype,
                     v2.Normalize, v2.RandomErasing]
    affine, erasing = transform.transforms[0], transform.transforms[-1]
    assert (affine.degrees, affine.translate, affine.scale) == ([-10.0, 10.0], (0.1, 0.1), (0.9, 1.1))
    assert erasing.scale == pytest.approx((0.111111, 0.111111)) and erasing.ratio == (1.0, 1.0)
    out = transform(Image.new("L", (48, 48), 128))
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    strong = benchmark.parse_args(["--resized_crop_scale", "0.8", "1.2", "--erasing_scale", "0.02", "0.33",
                                   "--erasing_ratio", "0.3", "3.3"]).recipe
    steps = conventional_transform(strong, FerConfig()).transforms
    assert isinstance(steps[0], v2.RandomResizedCrop) and steps[0].scale == (0.8, 1.2) and steps[0].size == (48, 48)
    assert (steps[-1].scale, steps[-1].ratio) == ((0.02, 0.33), (0.3, 3.3))


def test_unknown_benchmark_flags_are_refused_by_name(benchmark) -> None:
    with pytest.raises(ValueError, match="--batchsize"):
        benchmark.parse_args(["--batchsize", "8"])


def test_benchmark_prints_both_pipelines_ratio_tflops_and_processes(benchmark, tmp_path: Path, capsys) -> None:
    argv = ["--device", "cpu", "--batch_size", "4", "--steps", "2", "--warmup", "1", "--num_workers", "1",
            "--num_images", "16", "--image_size", "36", "--crop_size", "32", "--mixed_precision", "no",
            "--augment_chunk", "8",
            "--no_torch_compile", "--processes", "1", "2", "--duration", "0.3", "--json", str(tmp_path / "t.json")]
    try:
        results = benchmark.main(argv)
    finally:
        AcceleratorState._reset_state(True)
    printed = capsys.readouterr().out
    assert "train.py (resident uint8, batched on device)" in printed and "conventional (PIL per sample" in printed
    assert "ratio" in printed and "input only" in printed and "FLOPs per image" in printed
    assert "vgg16 36 px (random 32-px crops)" in printed and results["setup"]["crop_size"] == 32
    for pipeline in ("train_py", "conventional"):
        assert all(results[pipeline][k] > 0 for k in ("input_only", "training"))
    assert results["ratio"]["training"] == pytest.approx(results["train_py"]["training"]
                                                         / results["conventional"]["training"])
    assert results["setup"]["steps"] == 2 and results["setup"]["warmup"] == 2  # rounded up to whole chunks of 2
    flops = results["flops"]
    assert flops["train_py_tflops"] == pytest.approx(results["train_py"]["training"] * flops["training_per_image"]
                                                     / 1e12)
    assert flops["peak_bf16_dense_tflops"] is None and flops["peak_card_assumed"] == "not a GPU"
    windows = results["processes"]["windows"]
    assert set(windows) == {"1", "2"} and len(windows["2"]["per_process"]) == 2  # a second process took part
    assert windows["2"]["images_per_second"] == pytest.approx(sum(windows["2"]["per_process"]))
    assert all(figure > 0 for window in windows.values() for figure in window["per_process"])
    assert "2 process(es)" in printed
    saved = json.loads((tmp_path / "t.json").read_text())
    assert (saved["setup"]["batch_size"], saved["setup"]["augment_chunk"]) == (4, 8) and "processes" in saved


def test_flops_per_image_are_vgg16s_convolutions_and_head() -> None:
    forward = 2 * (sum(side * side * cin * cout * 9 for cin, cout, side in VGG16_48PX_CONVS) + 512 * 32 + 32 * 7)
    counted = training_flops_per_image(FerForImageClassification(FerConfig(image_size=48)), 48)
    assert counted["forward"] == forward == 1_409_417_664
    assert 2.9 * forward < counted["training"] < 3 * forward  # backward: ~2x (no input gradient for the image)


def test_crop_recipes_crop_in_both_pipelines_and_count_the_crop_flops(benchmark) -> None:
    from conventional_pipeline import conventional_transform
    from PIL import Image
    from torchvision.transforms import v2

    recipe = benchmark.parse_args(["--crop_size", "40"]).recipe  # a recipe flag like any other
    assert recipe.crop_size == 40
    transform = conventional_transform(recipe, FerConfig(crop_size=40))
    assert any(isinstance(step, v2.RandomCrop) for step in transform.transforms)
    assert transform(Image.new("L", (48, 48), 128)).shape == (3, 40, 40)
    sides = {48: 40, 24: 20, 12: 10, 6: 5, 3: 2}  # 40 px through the same pools: 512 x 1 x 1 at the end
    forward = 2 * (sum(sides[side] ** 2 * cin * cout * 9 for cin, cout, side in VGG16_48PX_CONVS) + 512 * 32 + 32 * 7)
    counted = training_flops_per_image(FerForImageClassification(FerConfig(crop_size=40)), 40)
    assert counted["forward"] == forward and forward / 1_409_417_664 == pytest.approx(0.672, abs=5e-4)  # ~0.67x


@pytest.mark.parametrize(("name", "peak", "card"), [
    ("NVIDIA H100 80GB HBM3", 989.0, "H100 SXM"), ("NVIDIA H100 PCIe", 756.0, "H100 PCIe"),
    ("NVIDIA H200", 989.0, "H200 (SXM)"), ("NVIDIA A10G", None, "no bf16 peak known for 'NVIDIA A10G'")])
def test_bf16_peak_is_looked_up_by_device_name(name: str, peak: float | None, card: str) -> None:
    assert bf16_dense_peak(name) == (peak, card)
