#!/usr/bin/env python
"""One GPU device call, used well: install what the box lacks, measure throughput, then train the queue's
recipes (train/configs/queue.yaml) most valuable first, side by side when that gives more images/s, under a
hard deadline; each row's figures and the best model come back through $OUT as soon as they exist.

    python3 train/gpuqueue/gpu_queue.py --out "$OUT"     # on the GPU box (the full command: benchmarks/RESULTS.md)
    python train/gpuqueue/gpu_queue.py --check           # on a CPU, first: are the rows valid, what is the plan
    python train/gpuqueue/gpu_queue.py --collect DIR --into outputs/gpu [--record benchmarks/results/gpu_runs.json]

A row is train/train.py in its own process (its own process group, its output in .runs/queue/NAME).
A finished row is evaluated on validation and test with every TTA mode (train/gpuqueue/grid_run.py's evaluate_all,
the code `python -m fer_model evaluate` runs). At deadline_s - reserve_s (or on SIGTERM) the rows still
training are killed and reported as cut, with the epoch reached and their last checkpoint, never with
figures; the next call on the same box resumes them from that checkpoint. $OUT gets: queue.json (the plan,
the throughput, every row, the model manifest), queue.log, logs.tar.gz (each process' output) and the best
row's model folder as model.tar.part0..N (--collect checks and unpacks them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout (python train/gpuqueue/gpu_queue.py), no install needed

from train.gpuqueue.queue_package import (  # noqa: E402  (nothing here needs datasets: it may not be installed yet)
    collect_model,
    markdown_rows,
    record_runs,
)

ASSUMED_IMAGES_PER_SECOND = 14_000.0  # the last H100 measurement (old train.py), for --check's plan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", default=str(REPO_ROOT / "train" / "configs" / "queue.yaml"))
    parser.add_argument("--out", help="where the results go (the device tool's $OUT)")
    parser.add_argument("--work_dir", default=str(REPO_ROOT / ".runs" / "queue"),
                        help="model folders, checkpoints and logs (kept on a warm box for the next call)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier calls' rows in --work_dir")
    parser.add_argument("--dataset", help="override the queue's dataset")
    parser.add_argument("--deadline_s", type=float, help="override the queue's deadline")
    parser.add_argument("--check", action="store_true", help="validate the rows and print the plan, train nothing")
    parser.add_argument("--no_benchmark", action="store_true",
                        help="skip the benchmark (a second call: parallel auto reads the first call's figures)")
    parser.add_argument("--wheels", default=str(REPO_ROOT / ".whl"), help="wheels of what the box lacks")
    parser.add_argument("--site", default=str(REPO_ROOT / ".site"), help="where they are installed")
    parser.add_argument("--collect", help="a folder the device tool returned: check and unpack its model")
    parser.add_argument("--into", default="outputs/gpu", help="--collect: where the model folder goes")
    parser.add_argument("--record", help="--collect: append the rows to this JSON record (gpu_runs.json)")
    args = parser.parse_args(argv)
    if not (args.out or args.check or args.collect):
        parser.error("give --out DIR (run the queue), --check, or --collect DIR")
    return args


def install_missing(wheels: Path, site: Path, module: str = "datasets") -> bool:
    """pip-install the wheels in `wheels` into `site` (no index) when `module` is missing; True if it did.

    `site` then leads sys.path here and PYTHONPATH for every process started from here.
    """
    if importlib.util.find_spec(module) is not None:
        return False
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"{module} is not installed and {wheels} holds no wheels: copy the GPU-box wheels "
                         "there (see ../shared/README.md, 'Using the GPU box')")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), *map(str, found)], check=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    importlib.invalidate_caches()
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"installed {[p.name for p in found]} into {site}, still no {module}")
    return True


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "10"}


def run_benchmark(queue: Any, work_dir: Path, deadline: float) -> tuple[dict[str, Any] | None, dict[str, Any], list]:
    """benchmarks/train_throughput.py with the baseline recipe and the common flags; if that fails (not if it
    only runs out of time), once more with the fallback flags, which then go to every row.
    Returns (figures or None, extra row flags, attempts)."""
    from train.gpuqueue.queue_plan import flag_args

    if not queue.benchmark:
        return None, {}, []
    attempts = []
    for extra in [{}, *([queue.fallback] if queue.fallback else [])]:
        report = work_dir / "benchmark.json"
        report.unlink(missing_ok=True)
        command = [sys.executable, str(REPO_ROOT / "benchmarks" / "train_throughput.py"), "--config", queue.config,
                   *map(str, queue.benchmark.get("flags", [])), *flag_args({**queue.common, **extra}),
                   "--json", str(report)]
        timeout = min(float(queue.benchmark.get("timeout_s", 180)), max(1.0, deadline - time.monotonic()))
        start = time.monotonic()
        with (work_dir / "benchmark.log").open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            try:
                code = subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env(),
                                      timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        attempts.append({"extra_flags": extra, "returncode": code, "seconds": time.monotonic() - start})
        if code == 0 and report.is_file():
            return json.loads(report.read_text()), extra, attempts
        if code == "timeout":  # slow, not broken: the rows keep the common flags
            return None, {}, attempts
    return None, queue.fallback, attempts


def benchmark_step(queue: Any, work_dir: Path, deadline: float, skip: bool) -> tuple[Any, Any, dict[str, Any], list]:
    """(this call's benchmark, the figures to plan with, extra row flags, attempts). Skipped (a second call on
    the same box), the first call's figures and fallback decision stand, read from work_dir."""
    extra_file = work_dir / "extra_row_flags.json"
    if skip:
        earlier = work_dir / "benchmark.json"
        figures = json.loads(earlier.read_text()) if earlier.is_file() else None
        return None, figures, json.loads(extra_file.read_text()) if extra_file.is_file() else {}, []
    benchmark, extra, attempts = run_benchmark(queue, work_dir, deadline)
    extra_file.write_text(json.dumps(extra))
    return benchmark, benchmark, extra, attempts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.collect:
        return collect(Path(args.collect), Path(args.into), Path(args.record) if args.record else None)
    start = time.monotonic()
    installed = install_missing(Path(args.wheels), Path(args.site))
    from train.gpuqueue.queue_plan import check_args, choose_parallel, load_queue, plan_lines, train_args
    from train.gpuqueue.queue_runner import QueueRunner

    queue = load_queue(args.queue)
    queue.dataset, queue.config = in_repo(args.dataset or queue.dataset), in_repo(queue.config)
    for row in queue.rows:
        row.config = row.config and in_repo(row.config)
    queue.deadline_s = args.deadline_s or queue.deadline_s
    work_dir = Path(args.work_dir)
    checked = {row.name: check_args(train_args(queue, row, work_dir / row.name)) for row in queue.rows}
    recipes = {name: recipe for name, (recipe, error) in checked.items() if error is None}
    errors = {name: error for name, (recipe, error) in checked.items() if error is not None}
    if args.check:
        parallel = 1 if queue.parallel == "auto" else int(queue.parallel)
        print("\n".join(plan_lines(queue, recipes, errors, ASSUMED_IMAGES_PER_SECOND * parallel, parallel)))
        return {"recipes": recipes, "errors": errors}
    if args.fresh and work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    runner = QueueRunner(queue, recipes, errors, work_dir, Path(args.out), deadline=start + queue.deadline_s,
                         env=child_env(), python=sys.executable, repo_root=REPO_ROOT)
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: runner.stop("SIGTERM"))  # SIGTERM: the deadline now
    try:
        runner.note(f"queue {args.queue}: {len(recipes)} valid row(s), {len(errors)} invalid; "
                    f"wheels installed: {installed}")
        benchmark, figures, extra, attempts = benchmark_step(queue, work_dir, runner.deadline - queue.reserve_s,
                                                             skip=args.no_benchmark)
        parallel, why = choose_parallel(queue.parallel, figures)
        runner.summary.update({"queue": args.queue, "commit": git_commit(), "benchmark": benchmark,
                               "benchmark_attempts": attempts, "extra_row_flags": extra, "parallel": parallel,
                               "parallel_reason": why})
        measured = measured_images_per_second(figures, parallel)
        runner.note((benchmark_text(work_dir) if benchmark else f"benchmark: none ({attempts or 'skipped'})")
                    + f"\nparallel {parallel}: {why}")
        runner.note("\n".join(plan_lines(queue, recipes, errors, measured or ASSUMED_IMAGES_PER_SECOND, parallel)))
        runner.run(parallel, extra)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return runner.summary


def in_repo(path: str) -> str:
    """A relative path that exists in the checkout, made absolute (the rows run there); anything else as given."""
    return str(REPO_ROOT / path) if not Path(path).is_absolute() and (REPO_ROOT / path).exists() else path


def measured_images_per_second(figures: dict[str, Any] | None, parallel: int) -> float | None:
    """All rows together: the benchmark's figure for `parallel` processes (one process: train.py's training)."""
    windows = ((figures or {}).get("processes") or {}).get("windows") or {}
    if str(parallel) in windows:
        return windows[str(parallel)]["images_per_second"]
    return (figures or {}).get("train_py", {}).get("training")


def benchmark_text(work_dir: Path) -> str:
    """The benchmark's printed report (the end of its log)."""
    text = (work_dir / "benchmark.log").read_text()
    start = text.rfind("train throughput on")
    return text[start:].strip() if start >= 0 else text[-3000:]


def git_commit() -> str | None:
    """HEAD of this checkout (None where the tree is a copy without .git, as on the GPU box)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def collect(source: Path, into: Path, record: Path | None) -> dict[str, Any]:
    """Check and unpack the returned model, print the rows for RESULTS.md, and record them (--record)."""
    summary = json.loads((source / "queue.json").read_text())
    if not summary.get("commit") and (commit := git_commit()):
        summary.update(commit=commit, commit_source="HEAD of the checkout that ran --collect")
    if summary.get("model"):
        folder = collect_model(source, summary["model"], into)
        print(f"model of row {summary['model']['row']} unpacked, parts checked: {folder}")
    else:
        print("no model came back (no row finished)")
    print(markdown_rows(summary["rows"]))
    if record is not None:
        print(f"{record_runs(record, summary)} row(s) appended to {record}")
    return summary


if __name__ == "__main__":
    main()
