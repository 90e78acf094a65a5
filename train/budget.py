"""--max_time: stop at an epoch boundary when the next epoch would not finish inside the budget (issue 22).

The budget is Lightning's `Trainer(max_time="DD:HH:MM:SS")` or a number of minutes, counted from the start of
train.py. After each epoch the run continues only if `elapsed + the longest epoch so far + a reserve for the
finish` fits; the reserve is the larger of FINISH_RESERVE_S and an estimate from the measured validation time
(the finish reads validation and test, with TTA views, and may export int8). At least one epoch always runs,
so there is a model to publish. The clock is the module's `monotonic`, which the tests replace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from time import monotonic

FINISH_RESERVE_S = 60.0  # test + calibration + card; more when validation is slow (see TimeBudget.reserve)
TTA_VIEWS = {"none": 0, "flip": 2, "10crop": 10}


def parse_max_time(text: str) -> float:
    """Seconds of 'DD:HH:MM:SS' (Lightning's form) or of a number of minutes ('10', '2.5')."""
    parts = text.strip().split(":")
    if len(parts) == 4 and all(re.fullmatch(r"\d+", part) for part in parts):
        days, hours, minutes, seconds = map(int, parts)
        total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    else:
        try:
            total = float(text) * 60
        except ValueError:
            total = -1.0
    if not total > 0:
        raise ValueError(f"--max_time {text!r}: give DD:HH:MM:SS (e.g. 00:11:30:00) or minutes (e.g. 90), > 0")
    return total


class TimeBudget:
    """Epoch boundaries against the budget `max_time` (None: unlimited), started when built (the run's start)."""

    def __init__(self, max_time: str | None, tta: str = "none", export_int8: bool = False, spent: float = 0.0,
                 clock: Callable[[], float] | None = None) -> None:
        """`spent`: seconds already gone before this (the interpreter's imports), taken off the budget."""
        self.seconds = parse_max_time(max_time) - spent if max_time else None
        self.clock = clock or monotonic
        self.passes = 2 + 2 * TTA_VIEWS.get(tta, 0)  # the finish's validation-sized passes (val + test, TTA of both)
        self.extra = 2 * FINISH_RESERVE_S if export_int8 else 0.0  # the int8 export and its test
        self.start = self.last = self.clock()
        self.epoch_seconds: list[float] = []
        self.validation_seconds = 0.0

    def epochs_start(self) -> None:
        """The first epoch starts now: the time before it (data, model) counts as elapsed, not as an epoch."""
        self.last = self.clock()

    def epoch_done(self, validation_seconds: float) -> None:
        now = self.clock()
        self.epoch_seconds.append(now - self.last)
        self.last = now
        self.validation_seconds = max(self.validation_seconds, validation_seconds)

    def reserve(self) -> float:
        return max(FINISH_RESERVE_S, 1.5 * self.passes * self.validation_seconds) + self.extra

    def explain(self) -> str:
        """The figures behind a stop, for the log: elapsed, the longest epoch, the finish's reserve, the budget."""
        return (f"{self.last - self.start:.0f} s elapsed + {max(self.epoch_seconds, default=0.0):.0f} s (longest "
                f"epoch) + {self.reserve():.0f} s (finish reserve) > {self.seconds:.0f} s left after the start")

    def ends_after(self, epoch: int, epochs: int) -> bool:
        """Whether the budget ends the run after `epoch` (never after the last one: that is a complete run)."""
        return epoch < epochs and not self.allows_another_epoch()

    def allows_another_epoch(self) -> bool:
        """Whether the next epoch (as long as the longest so far) and the finish fit in what is left."""
        if self.seconds is None:
            return True
        elapsed = self.last - self.start
        return elapsed + max(self.epoch_seconds, default=0.0) + self.reserve() <= self.seconds
