"""Training throughput (images/s) of train/train.py against a conventional input pipeline, in one run.

train.py's path (its own functions, imported): the uint8 faces resident on the device, one permutation
per epoch, augmentation batched on the device in chunks (train/batches.py: `epoch_batches` ->
`training_batches`), then train.py's `training_step`.
Conventional path: torchvision.transforms.v2 on PIL images, per sample (RandomAffine: rotation, scale and
shift as the recipe; RandomHorizontalFlip; grey to 3 channels; ToImage/ToDtype/Normalize; RandomErasing
of a 16x16 square), in a DataLoader with worker processes, copied to the device, then the same
`training_step` on the same model, optimizer and batch size.

Each is timed twice: the input pipeline alone (batches delivered on the device) and whole training steps.
The recipe comes from a preset (best.yaml by default); flags override batch size, precision and compile.
train.py augments `AUGMENT_CHUNK_IMAGES` faces per call, so warm-up and timed batches are rounded up to
whole chunks (exact when the number of faces is a multiple of the chunk, as the synthetic default is).

    python benchmarks/train_throughput.py --compile                       # a GPU: best.yaml as trained
    python benchmarks/train_throughput.py --device cpu --steps 3 --batch_size 32 --num_workers 2
    python benchmarks/train_throughput.py --dataset ../shared/fer2013     # real faces, decoded per sample
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, get_args

import torch
import torch.nn.functional as F
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout, no install needed
from fer_model.configuration import FER2013_LABELS  # noqa: E402
from train import optim, train  # noqa: E402
from train.augment import build_augment  # noqa: E402
from train.batches import AUGMENT_CHUNK_IMAGES, epoch_batches, training_batches  # noqa: E402
from train.recipe import CompileMode, Recipe  # noqa: E402

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO_ROOT / "train" / "configs" / "best.yaml"), help="recipe preset")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch_size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--image_size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None, help="default: the preset's")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model (default: the preset's torch_compile)")
    parser.add_argument("--compile_mode", choices=get_args(CompileMode), default=None,
                        help="torch.compile mode (default: the preset's); reduce-overhead uses CUDA graphs")
    parser.add_argument("--steps", type=int, default=128, help="timed steps per measurement (rounded up to chunks)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, cuDNN autotuning)")
    parser.add_argument("--augment_chunk", type=int, default=None,
                        help=f"faces augmented per call (default train.py's {AUGMENT_CHUNK_IMAGES}); "
                             "smaller keeps CPU runs short")
    parser.add_argument("--num_workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the conventional pipeline")
    parser.add_argument("--num_images", type=int, default=8192, help="synthetic faces (without --dataset)")
    parser.add_argument("--dataset", default=None, help="FER2013 source: real faces, PNG-decoded per sample")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def benchmark_recipe(args: argparse.Namespace) -> Recipe:
    recipe, _ = train.parse_args(["--config", args.config])
    overrides = {"batch_size": args.batch_size, "image_size": args.image_size,
                 "mixed_precision": args.mixed_precision, "torch_compile": args.compile,
                 "compile_mode": args.compile_mode}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    return replace(recipe) if recipe.torch_compile else replace(recipe, compile_mode="default")  # validated again


# --- data ------------------------------------------------------------------------------------------------


def load_faces(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """uint8 (N, 1, 48, 48) faces + labels for train.py, and the per-sample source for the conventional path."""
    if args.dataset:
        from fer_model.data import load_fer2013, split_to_tensors

        split = load_fer2013(args.dataset)["train"]
        images, labels = split_to_tensors(split)
        return images, labels, split  # the conventional path decodes split[i]["image"] (PNG) per sample
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.num_images, 1, 48, 48), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, len(FER2013_LABELS), (args.num_images,), generator=generator)
    pil = [Image.fromarray(face[0].numpy(), mode="L") for face in images]
    return images, labels, [{"image": face, "label": int(label)} for face, label in zip(pil, labels, strict=True)]


class PerSampleFaces(torch.utils.data.Dataset):
    """A map-style dataset applying a torchvision transform to one PIL face at a time (the usual recipe)."""

    def __init__(self, rows: Any, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.rows, self.transform = rows, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.rows[index]
        return self.transform(row["image"]), row["label"]


def conventional_transform(recipe: Recipe, config: Any) -> Callable[[Image.Image], torch.Tensor]:
    """The recipe's augmentation written the usual way, with torchvision.transforms.v2 on PIL images."""
    from torchvision.transforms import v2

    erased_area = (min(recipe.erasing_size, 48) / 48) ** 2  # a 16x16 square of 48x48, scaled with the image
    steps: list[Any] = []
    if recipe.augment:
        steps.append(v2.RandomAffine(degrees=recipe.rotation, translate=(recipe.translate, recipe.translate),
                                     scale=(1 - recipe.scale, 1 + recipe.scale)))
        if recipe.hflip:
            steps.append(v2.RandomHorizontalFlip())
    if config.image_size != 48:
        steps.append(v2.Resize(config.image_size, antialias=True))
    steps += [v2.Grayscale(num_output_channels=3), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(config.image_mean, config.image_std)]
    if recipe.augment and recipe.erasing_p > 0 and recipe.erasing_size > 0:
        steps.append(v2.RandomErasing(p=recipe.erasing_p, scale=(erased_area, erased_area), ratio=(1.0, 1.0),
                                      value="random"))
    return v2.Compose(steps)


def conventional_batches(rows: Any, recipe: Recipe, config: Any, device: torch.device,
                         num_workers: int) -> Batches:
    """DataLoader over per-sample transforms, forever (persistent workers); batches moved to the device."""
    loader = torch.utils.data.DataLoader(
        PerSampleFaces(rows, conventional_transform(recipe, config)), batch_size=recipe.batch_size, shuffle=True,
        num_workers=num_workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=num_workers > 0)
    for pixel_values, labels in itertools.chain.from_iterable(itertools.repeat(loader)):
        pixel_values = pixel_values.to(device, non_blocking=True)
        if recipe.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        yield pixel_values, labels.to(device, non_blocking=True)


def train_py_batches(images: torch.Tensor, labels: torch.Tensor, recipe: Recipe, config: Any,
                     chunk_images: int) -> Batches:
    """train.py's own input path (training_batches over epoch_batches), epoch after epoch, forever."""
    augment = build_augment(recipe)
    generator = torch.Generator(device=images.device).manual_seed(recipe.seed)
    for epoch in itertools.count(1):
        order = epoch_batches(len(labels), recipe.batch_size, recipe.seed, epoch, 0, 1)
        yield from training_batches(images, labels, order, config, augment, generator, recipe.channels_last,
                                    chunk_images)


# --- timing ----------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(batches: Batches, consume: Callable[[torch.Tensor, torch.Tensor], Any], steps: int,
                      warmup: int, device: torch.device) -> float:
    """Images/s over `steps` batches after `warmup` untimed ones; the device is synchronised at both ends."""
    for pixel_values, labels in itertools.islice(batches, warmup):
        consume(pixel_values, labels)
    synchronize(device)
    start, seen = time.perf_counter(), 0
    for pixel_values, labels in itertools.islice(batches, steps):
        consume(pixel_values, labels)
        seen += len(labels)
    synchronize(device)
    return seen / (time.perf_counter() - start)


def whole_chunks(batches: int, per_chunk: int) -> int:
    return max(1, -(-batches // per_chunk)) * per_chunk


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    return run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both pipelines, one after the other, on the same model, optimizer and batch size."""
    recipe = benchmark_recipe(args)
    accelerator = train.build_accelerator(recipe, cpu=args.device == "cpu")
    device = accelerator.device
    images, labels, rows = load_faces(args)
    if len(labels) < recipe.batch_size:
        raise SystemExit(f"{len(labels)} faces cannot fill a batch of {recipe.batch_size}")
    chunk_images = args.augment_chunk or AUGMENT_CHUNK_IMAGES
    per_chunk = max(1, chunk_images // recipe.batch_size)
    warmup, steps = whole_chunks(args.warmup, per_chunk), whole_chunks(args.steps, per_chunk)
    torch.manual_seed(recipe.seed)
    model = train.build_model(recipe, list(FER2013_LABELS), pretrained_backbone=False, device=device)
    config = model.config
    optimizer = optim.build_optimizer(recipe, model)
    scheduler = optim.build_scheduler(recipe, optimizer, 2 * (warmup + steps) + 1)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    loss_fn = partial(F.cross_entropy, label_smoothing=recipe.label_smoothing)

    def step(pixel_values: torch.Tensor, target: torch.Tensor) -> None:
        train.training_step(accelerator, model, optimizer, scheduler, pixel_values, target, loss_fn)

    def deliver(pixel_values: torch.Tensor, target: torch.Tensor) -> None:
        pass  # the batch is on the device: that is all the input pipeline owes the step

    resident_images, resident_labels = images.to(device), labels.to(device)
    timing = {"steps": steps, "warmup": warmup, "device": device}
    results: dict[str, Any] = {}
    pipelines = {"train_py": lambda: train_py_batches(resident_images, resident_labels, recipe, config, chunk_images),
                 "conventional": lambda: conventional_batches(rows, recipe, config, device, args.num_workers)}
    for name, pipeline in pipelines.items():
        batches = pipeline()  # one stream per pipeline: its warm-up (workers, first chunk) is paid once
        results[name] = {"input_only": images_per_second(batches, deliver, **timing),
                         "training": images_per_second(batches, step, **timing)}
    results["ratio"] = {k: results["train_py"][k] / results["conventional"][k] for k in ("input_only", "training")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    results["setup"] = {
        "device": f"{device.type} ({name})", "torch": torch.__version__, "config": args.config,
        "backbone": recipe.backbone, "image_size": recipe.image_size, "batch_size": recipe.batch_size,
        "mixed_precision": recipe.mixed_precision, "channels_last": recipe.channels_last,
        "torch_compile": recipe.torch_compile, "compile_mode": recipe.compile_mode, "augment": recipe.augment,
        "num_workers": args.num_workers,
        "augment_chunk": chunk_images,
        "data": f"{args.dataset} ({len(labels)} faces, PNG decoded per sample)" if args.dataset
        else f"synthetic ({len(labels)} faces, in-memory PIL images)", "steps": steps, "warmup": warmup,
    }
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def report(results: dict[str, Any]) -> str:
    setup = results["setup"]
    lines = [
        f"train throughput on {setup['device']}, torch {setup['torch']}",
        f"recipe {Path(setup['config']).name}: {setup['backbone']} {setup['image_size']} px, batch "
        f"{setup['batch_size']}, {setup['mixed_precision']}, channels_last {setup['channels_last']}, "
        f"compile {setup['torch_compile']} ({setup['compile_mode']}), augmentation {setup['augment']}",
        f"data: {setup['data']}; conventional DataLoader num_workers={setup['num_workers']}; "
        f"train.py augments {setup['augment_chunk']} faces per call",
        f"timed: {setup['steps']} batches after {setup['warmup']} warm-up batches, per figure",
        f"{'images/s':44s}{'input only':>14s}{'training':>14s}",
    ]
    for key, label in (("train_py", "train.py (resident uint8, batched on device)"),
                       ("conventional", "conventional (PIL per sample + DataLoader)")):
        figures = results[key]
        lines.append(f"{label:44s}{figures['input_only']:>14,.0f}{figures['training']:>14,.1f}")
    ratio = results["ratio"]
    lines.append(f"{'ratio':44s}{ratio['input_only']:>13.1f}x{ratio['training']:>13.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
