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
