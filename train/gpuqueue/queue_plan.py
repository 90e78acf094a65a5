"""The GPU queue's plan (train/configs/queue.yaml): its rows as train.py command lines, checked before any
device time is spent, with how long each should take at a given speed and how many run side by side.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FER2013_TRAIN_IMAGES = 28_709
ROW_FIXED_S = 40.0  # start, decoding FER2013, compile (cache warm), final test + TTA, the queue's evaluations
EPOCH_EXTRA_S = 0.15  # validating two candidates, best-model saves, checkpoints, per epoch
PARALLEL_GAIN = 1.15  # side by side only when the benchmark's processes give this much more in all
NAME = re.compile(r"[A-Za-z0-9._-]+")
KEYS = {"deadline_s", "reserve_s", "dataset", "config", "parallel", "benchmark", "common", "fallback", "rows"}


@dataclass
class QueueRow:
    """One recipe to train: train.py with the queue's config and common flags, then the row's."""

    name: str
    flags: dict[str, Any] = field(default_factory=dict)
    config: str | None = None  # default: the queue's


@dataclass
class Queue:
    rows: list[QueueRow]
    deadline_s: float = 515.0
    reserve_s: float = 20.0
    dataset: str = ".data/fer2013"
    config: str = "train/configs/best.yaml"
    parallel: int | str = "auto"
    benchmark: dict[str, Any] | None = None  # {flags: [...], timeout_s: N}; None: no benchmark
    common: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] = field(default_factory=dict)


def load_queue(path: str | Path) -> Queue:
    """queue.yaml, checked: known keys, safe unique row names, a usable deadline and parallel setting."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a queue has {sorted(KEYS)}")
    rows = []
    for spec in values.pop("rows", None) or []:
        extra = sorted(set(spec) - {"name", "flags", "config"})
        if extra or not NAME.fullmatch(str(spec.get("name", ""))):
            raise ValueError(f"{path}: bad row {spec!r}: a row has a name (letters, digits, . _ -), flags, config")
        rows.append(QueueRow(spec["name"], dict(spec.get("flags") or {}), spec.get("config")))
    names = [row.name for row in rows]
    if not rows or len(set(names)) != len(names):
        raise ValueError(f"{path}: the queue needs rows with distinct names (got {names})")
    queue = Queue(rows=rows, **values)
    if queue.parallel != "auto" and not (isinstance(queue.parallel, int) and queue.parallel >= 1):
        raise ValueError(f"{path}: parallel must be auto or a number >= 1, not {queue.parallel!r}")
    if not 0 <= queue.reserve_s < queue.deadline_s:
        raise ValueError(f"{path}: need 0 <= reserve_s < deadline_s (got {queue.reserve_s}, {queue.deadline_s})")
    return queue


def flag_args(flags: dict[str, Any]) -> list[str]:
    """{name: value} -> train.py arguments: lists give several values, true/false a switch (--name / --no_name)."""
    args: list[str] = []
    for name, value in flags.items():
        if value is True:
            args.append(f"--{name}")
        elif value is False:
            args.append(f"--no_{name}")
        elif isinstance(value, (list, tuple)):
            args += [f"--{name}", *(str(v) for v in value)]
        else:
            args += [f"--{name}", str(value)]
    return args


def train_args(queue: Queue, row: QueueRow, output_dir: Path | str, extra: dict[str, Any] | None = None) -> list[str]:
    """train.py's arguments for a row: config, common flags, the row's, any extra (the fallback), data, output."""
    return ["--config", row.config or queue.config, *flag_args({**queue.common, **(extra or {}), **row.flags}),
            "--dataset", queue.dataset, "--no-pretrained", "--output_dir", str(output_dir)]


def check_args(args: list[str]) -> tuple[Any, str | None]:
    """(the recipe, None) when train.py accepts `args`, else (None, its error message)."""
    from train.recipe import parse_args

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            recipe, _ = parse_args(args)
    except SystemExit:  # argparse: an unknown choice or a malformed value
        return None, stderr.getvalue().strip().splitlines()[-1]
    except (ValueError, FileNotFoundError) as error:  # unknown flags, refused combinations, a missing preset
        return None, str(error)
    return recipe, None


def estimate_seconds(recipe: Any, images_per_second: float, train_images: int = FER2013_TRAIN_IMAGES) -> float:
    """How long a row should take at `images_per_second` (one process' share of the device)."""
    steps = train_images // recipe.batch_size if recipe.drop_last else math.ceil(train_images / recipe.batch_size)
    epoch = min(steps * recipe.batch_size, train_images) / images_per_second + EPOCH_EXTRA_S
    return ROW_FIXED_S + recipe.epochs * epoch


def choose_parallel(setting: int | str, benchmark: dict[str, Any] | None) -> tuple[int, str]:
    """How many rows train side by side, and why: a fixed number, or the benchmark's best process count."""
    if setting != "auto":
        return int(setting), "set in the queue"
    windows = ((benchmark or {}).get("processes") or {}).get("windows") or {}
    if "1" not in windows:
        return 1, "auto: no --processes figures from the benchmark"
    single = windows["1"]["images_per_second"]
    count, best = max(((int(n), w["images_per_second"]) for n, w in windows.items()), key=lambda item: item[1])
    if best < PARALLEL_GAIN * single:
        return 1, f"auto: {count} processes give {best / single:.2f}x of 1 (< {PARALLEL_GAIN}x)"
    return count, f"auto: {count} processes give {best / single:.2f}x the images/s of 1"


def plan_lines(queue: Queue, recipes: dict[str, Any], errors: dict[str, str], images_per_second: float,
               parallel: int) -> list[str]:
    """The plan as printed before the rows start: each row's estimate at the measured (or assumed) speed."""
    share = images_per_second / parallel
    lines = [f"plan: {parallel} row(s) at a time, ~{share:,.0f} images/s each; rows until "
             f"{queue.deadline_s - queue.reserve_s:.0f} s after the start"]
    for index, row in enumerate(queue.rows, 1):
        if row.name in errors:
            lines.append(f"  {index}. {row.name}: invalid, skipped ({errors[row.name]})")
        else:
            recipe = recipes[row.name]
            lines.append(f"  {index}. {row.name}: {recipe.epochs} epochs, ~{estimate_seconds(recipe, share):.0f} s")
    return lines
