"""The one timing rule every benchmark uses: warm up, then the median of `runs` wall-clock timings."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 5) -> float:
    """Median milliseconds of `fn()` over `runs` calls, after `warmup` untimed calls (caches, thread pools)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_fer_script(python: str, script: str, arguments: list[str], cwd: str | None = None) -> dict | None:
    """Run `script --fer-only ARGUMENTS` with the interpreter that has the `fer` package (the baseline needs
    TensorFlow, never a dependency of ours) and return the JSON its last stdout line prints; None, with how to
    install it apart, when that fails."""
    import json
    import subprocess
    import sys

    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "HOME": cwd or "/tmp"}
    result = subprocess.run([python, script, "--fer-only", *arguments], capture_output=True, text=True, check=False,
                            cwd=cwd, env=env)
    if result.returncode != 0:
        print(f"`fer` not measured ({python}: {result.stderr.strip().splitlines()[-3:]}). Install it apart: "
              "python -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install fer 'setuptools<81', then pass "
              "--fer-python /tmp/fervenv/bin/python", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])
