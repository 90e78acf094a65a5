"""Several processes timing one device together: a file barrier and a timed window of training steps.

benchmarks/train_throughput.py --processes uses them to measure how many images/s 1, 2 or 4 train.py
processes sharing one GPU get in total (train/gpuqueue/gpu_queue.py runs its rows side by side when that is more).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def barrier(folder: Path, name: str, index: int, total: int, check: Callable[[], None] | None = None,
            timeout_s: float = 900.0) -> None:
    """Wait until all `total` processes reached `name` (each leaves a file `name.index` in `folder`).

    `check` runs while waiting (e.g. to stop when a partner died); a barrier not met in `timeout_s` raises.
    """
    (folder / f"{name}.{index}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob(f"{name}.*"))) < total:
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {name!r}: {len(list(folder.glob(f'{name}.*')))} of {total} processes "
                               f"arrived within {timeout_s:.0f} s")
        time.sleep(0.002)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_window(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], step: Callable[..., Any], seconds: float,
                 device: torch.device) -> float:
    """Images/s of `step` over the batches queued in `seconds` of wall time, the device drained at both ends."""
    synchronize(device)
    start, seen = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        pixel_values, target = next(batches)
        step(pixel_values, target)
        seen += len(target)
    synchronize(device)
    return seen / (time.perf_counter() - start)


def run_processes(command: list[str], counts: list[int], seconds: float, step: Callable[..., Any], batches: Batches,
                  device: torch.device) -> dict[str, Any]:
    """Summed images/s of 1, 2, 4... processes training at once. This process is process 0; the other
    max(counts) - 1 run `command --worker I --sync_dir DIR`, warm up and call `take_part` with the same counts."""
    total = max(counts)
    with tempfile.TemporaryDirectory(prefix="processes-") as sync_dir:
        workers = [subprocess.Popen([*command, "--worker", str(i), "--sync_dir", sync_dir]) for i in range(1, total)]
        try:
            take_part(0, counts, seconds, step, batches, device, Path(sync_dir), workers)
            codes = [worker.wait(timeout=300) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        if any(codes):
            raise RuntimeError(f"a worker process failed (exit codes {codes})")
        windows = {}
        for count in sorted(set(counts)):
            each = [json.loads((Path(sync_dir) / f"result_{count}_{i}.json").read_text()) for i in range(count)]
            windows[str(count)] = {"images_per_second": sum(each), "per_process": each}
    return {"duration_s": seconds, "windows": windows}


def take_part(index: int, counts: list[int], seconds: float, step: Callable[..., Any], batches: Batches,
              device: torch.device, folder: Path, workers: list[subprocess.Popen] | None = None) -> None:
    """Process `index` of max(counts), warmed up: for each count k, the first k time `seconds` together."""
    total, parent = max(counts), os.getppid()

    def check() -> None:  # a dead partner would leave the others waiting
        if workers and any(w.poll() not in (None, 0) for w in workers):
            raise RuntimeError(f"a worker process failed: exit codes {[w.poll() for w in workers]}")
        if workers is None and os.getppid() != parent:
            raise RuntimeError("the process that started this worker is gone")

    barrier(folder, "ready", index, total, check)
    for count in sorted(set(counts)):
        barrier(folder, f"window{count}", index, total, check)
        if index < count:
            figure = timed_window(batches, step, seconds, device)
            (folder / f"result_{count}_{index}.json").write_text(json.dumps(figure))
    barrier(folder, "done", index, total, check)
