"""Training throughput (images/s) of train/train.py against a conventional input pipeline, in one run.

train.py's path (its own functions, imported): the uint8 faces resident on the device, one permutation
per epoch, augmentation batched on the device in chunks (train/batches.py: `epoch_batches` ->
`training_batches`), then train.py's `training_step`.
Conventional path: torchvision.transforms.v2 on PIL images, per sample (the recipe's RandomResizedCrop,
RandomAffine: rotation, scale and shift; RandomHorizontalFlip; grey to 3 channels; ToImage/ToDtype/Normalize;
RandomErasing with the recipe's area and aspect ranges), in a DataLoader with worker processes, copied to
the device, then the same `training_step` on the same model, optimizer and batch size.

Each is timed twice: the input pipeline alone (batches delivered on the device) and whole training steps;
train.py's training figure is also given as achieved TFLOP/s (FLOPs per image counted by
torch.utils.flop_counter, train/flops.py) against the card's dense bf16 peak. `--processes 1 2 4` then
times train.py's step in 1, 2 and 4 processes sharing the device (this one and `max - 1` more started
with `--worker`, all warmed up, then timed together in windows) and prints their summed images/s.
The recipe comes from a preset (best.yaml by default); flags override batch size, precision and compile.
train.py augments `AUGMENT_CHUNK_IMAGES` faces per call, so warm-up and timed batches are rounded up to
whole chunks (exact when the number of faces is a multiple of the chunk, as the synthetic default is).

    python benchmarks/train_throughput.py                                 # a GPU: best.yaml as trained
    python benchmarks/train_throughput.py --processes 1 2 4 --duration 4  # + 1, 2, 4 processes side by side
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
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout, no install needed
from fer_model.configuration import FER2013_LABELS, input_size  # noqa: E402
from train import optim, train  # noqa: E402
from train.augment import build_augment  # noqa: E402
from train.batches import AUGMENT_CHUNK_IMAGES, epoch_batches, training_batches  # noqa: E402
from train.flops import achieved_tflops, bf16_dense_peak, training_flops_per_image  # noqa: E402
from train.gpuqueue.concurrency import run_processes, synchronize, take_part  # noqa: E402
from train.recipe import Recipe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/, beside this script
from conventional_pipeline import conventional_batches, load_faces  # noqa: E402

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's own options; every other flag is a train.py recipe flag overriding the preset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Any train.py recipe flag (--batch_size, --image_size, --crop_size, "
                                            "--mixed_precision, --torch_compile, --compile_mode, --drop_last, ...) "
                                            "overrides the preset.")
    parser.add_argument("--config", default=str(REPO_ROOT / "train" / "configs" / "best.yaml"), help="recipe preset")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
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
    parser.add_argument("--processes", type=int, nargs="*", default=[],
                        help="also time train.py's step in this many processes at once (e.g. 1 2 4)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per --processes window")
    parser.add_argument("--no-conventional", dest="conventional", action="store_false",
                        help="skip the conventional pipeline (train.py's figures and --processes only)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # index of a --processes helper
    parser.add_argument("--sync_dir", default=None, help=argparse.SUPPRESS)
    args, recipe_flags = parser.parse_known_args(argv)
    if any(n < 1 for n in args.processes) or args.duration <= 0:
        parser.error("--processes takes counts >= 1 and --duration seconds > 0")
    args.recipe, _ = train.parse_args(["--config", args.config, *recipe_flags])  # unknown flags fail here, by name
    return args


def train_py_batches(images: torch.Tensor, labels: torch.Tensor, recipe: Recipe, config: Any,
                     chunk_images: int) -> Batches:
    """train.py's own input path (training_batches over epoch_batches), epoch after epoch, forever."""
    augment = build_augment(recipe)
    generator = torch.Generator(device=images.device).manual_seed(recipe.seed)
    for epoch in itertools.count(1):
        order = epoch_batches(len(labels), recipe.batch_size, recipe.seed, epoch, 0, 1, recipe.drop_last)
        yield from training_batches(images, labels, order, config, augment, generator, recipe.channels_last,
                                    chunk_images)


# --- timing ----------------------------------------------------------------------------------------------


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


def without_option(argv: list[str], option: str) -> list[str]:
    """argv minus `option` and its value (either spelling: `--opt VALUE` or `--opt=VALUE`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def whole_chunks(batches: int, per_chunk: int) -> int:
    return max(1, -(-batches // per_chunk)) * per_chunk


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    return run(args)


def training_setup(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's model, optimizer and schedule prepared as train.py does, and its `step(pixel_values, target)`."""
    recipe = args.recipe
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
    scheduler = optim.build_scheduler(recipe, optimizer, 10**9)  # never runs out, however long the windows
    flops = training_flops_per_image(model, input_size(config))  # crop_size px for a crop recipe
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    step = partial(train.training_step, accelerator, model, optimizer,
                   loss_fn=partial(F.cross_entropy, label_smoothing=recipe.label_smoothing),
                   scheduler=None if optim.stepped_per_epoch(recipe) else scheduler, clip_value=recipe.grad_clip_value)
    resident = (images.to(device), labels.to(device))
    return {"recipe": recipe, "device": device, "config": config, "step": step, "rows": rows, "flops": flops,
            "chunk_images": chunk_images, "timing": {"steps": steps, "warmup": warmup, "device": device},
            "train_py": lambda: train_py_batches(*resident, recipe, config, chunk_images)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both pipelines, one after the other, on the same model, optimizer and batch size; then --processes."""
    bench = training_setup(args)
    if args.worker is not None:  # a helper of --processes: warm up, then take part in the windows
        batches = bench["train_py"]()
        images_per_second(batches, bench["step"], **{**bench["timing"], "steps": 1})
        take_part(args.worker, args.processes, args.duration, bench["step"], batches, bench["device"],
                  Path(args.sync_dir))
        return {}
    recipe, device = bench["recipe"], bench["device"]

    def deliver(pixel_values: torch.Tensor, target: torch.Tensor) -> None:
        pass  # the batch is on the device: that is all the input pipeline owes the step

    results: dict[str, Any] = {}
    pipelines = {"train_py": bench["train_py"],
                 "conventional": lambda: conventional_batches(bench["rows"], recipe, bench["config"], device,
                                                              args.num_workers)}
    for name, pipeline in list(pipelines.items())[: 2 if args.conventional else 1]:
        batches = pipeline()  # one stream per pipeline: its warm-up (workers, first chunk) is paid once
        results[name] = {"input_only": images_per_second(batches, deliver, **bench["timing"]),
                         "training": images_per_second(batches, bench["step"], **bench["timing"])}
        if name == "train_py":
            train_stream = batches
    if args.conventional:
        results["ratio"] = {k: results["train_py"][k] / results["conventional"][k] for k in ("input_only", "training")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    peak, card = bf16_dense_peak(name) if device.type == "cuda" else (None, "not a GPU")
    tflops = achieved_tflops(results["train_py"]["training"], bench["flops"]["training"])
    results["flops"] = {"forward_per_image": bench["flops"]["forward"],
                        "training_per_image": bench["flops"]["training"], "train_py_tflops": tflops,
                        "peak_bf16_dense_tflops": peak, "peak_card_assumed": card,
                        "fraction_of_peak": tflops / peak if peak else None}
    if args.processes:  # the helpers write no report
        command = [sys.executable, __file__, *without_option(args.argv, "--json")]
        results["processes"] = run_processes(command, args.processes, args.duration, bench["step"], train_stream,
                                             device)
    results["setup"] = {
        "device": f"{device.type} ({name})", "torch": torch.__version__, "config": args.config,
        "backbone": recipe.backbone, "image_size": recipe.image_size, "crop_size": recipe.crop_size,
        "batch_size": recipe.batch_size,
        "mixed_precision": recipe.mixed_precision, "channels_last": recipe.channels_last,
        "torch_compile": recipe.torch_compile, "compile_mode": recipe.compile_mode, "augment": recipe.augment,
        "drop_last": recipe.drop_last, "num_workers": args.num_workers, "augment_chunk": bench["chunk_images"],
        "data": f"{args.dataset} ({len(bench['rows'])} faces, PNG decoded per sample)" if args.dataset
        else f"synthetic ({len(bench['rows'])} faces, in-memory PIL images)",
        "steps": bench["timing"]["steps"], "warmup": bench["timing"]["warmup"],
    }
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return results


def report(results: dict[str, Any]) -> str:
    setup, flops = results["setup"], results["flops"]
    lines = [
        f"train throughput on {setup['device']}, torch {setup['torch']}",
        f"recipe {Path(setup['config']).name}: {setup['backbone']} {setup['image_size']} px"
        f"{'' if setup['crop_size'] is None else ' (random ' + str(setup['crop_size']) + '-px crops)'}, batch "
        f"{setup['batch_size']}, {setup['mixed_precision']}, channels_last {setup['channels_last']}, "
        f"compile {setup['torch_compile']} ({setup['compile_mode']}), drop_last {setup['drop_last']}, "
        f"augmentation {setup['augment']}",
        f"data: {setup['data']}; conventional DataLoader num_workers={setup['num_workers']}; "
        f"train.py augments {setup['augment_chunk']} faces per call",
        f"timed: {setup['steps']} batches after {setup['warmup']} warm-up batches, per figure",
        f"{'images/s':44s}{'input only':>14s}{'training':>14s}",
    ]
    for key, label in (("train_py", "train.py (resident uint8, batched on device)"),
                       ("conventional", "conventional (PIL per sample + DataLoader)")):
        if key in results:
            figures = results[key]
            lines.append(f"{label:44s}{figures['input_only']:>14,.0f}{figures['training']:>14,.1f}")
    if "ratio" in results:
        ratio = results["ratio"]
        lines.append(f"{'ratio':44s}{ratio['input_only']:>13.1f}x{ratio['training']:>13.2f}x")
    peak = (f"{flops['fraction_of_peak']:.1%} of the {flops['peak_card_assumed']} dense bf16 peak "
            f"({flops['peak_bf16_dense_tflops']:.0f} TFLOP/s)" if flops["peak_bf16_dense_tflops"]
            else f"peak: {flops['peak_card_assumed']}")
    lines.append(f"FLOPs per image: {flops['forward_per_image'] / 1e9:.3f} G forward, "
                 f"{flops['training_per_image'] / 1e9:.3f} G forward+backward; train.py: "
                 f"{flops['train_py_tflops']:.2f} TFLOP/s, {peak}")
    if "processes" in results:
        windows = results["processes"]["windows"]
        single = windows.get("1", {}).get("images_per_second")
        lines.append(f"train.py processes sharing the device ({results['processes']['duration_s']:.0f} s windows):")
        for count, window in windows.items():
            versus = f"  {window['images_per_second'] / single:.2f}x of 1" if single else ""
            each = ", ".join(f"{figure:,.0f}" for figure in window["per_process"])
            lines.append(f"  {count} process(es): {window['images_per_second']:>12,.0f} images/s in all "
                         f"({each}){versus}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
