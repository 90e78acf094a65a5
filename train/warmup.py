"""A linear warm-up before torch's ReduceLROnPlateau (issue 22, point 2).

Plain VGG16 (no BatchNorm) from random init at SGD lr 0.01 stays at the majority class without a warm-up.
torch has no chained per-step warm-up + per-epoch plateau scheduler, so this composes its two: LinearLR
stepped every optimizer step for the warm-up's steps, then ReduceLROnPlateau stepped once per epoch with
the validation accuracy (its patience counts from the end of the warm-up). state_dict holds both, so a
resumed run continues the same curve.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, ReduceLROnPlateau

START_FACTOR = 1e-3  # the warm-up starts at lr / 1000 (LinearLR needs a factor > 0)


class PlateauWithWarmup(LRScheduler):
    """`step()` (every optimizer step) warms up; `step(metric)` (every epoch) is the plateau, after the warm-up.

    An LRScheduler (as torch's own ReduceLROnPlateau, without LRScheduler.__init__'s initial step), so that
    accelerate's prepare() takes it as a scheduler and save_state/load_state checkpoint it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, **plateau: Any) -> None:
        self.optimizer, self.warmup_steps, self.steps = optimizer, warmup_steps, 0
        self.warmup = LinearLR(optimizer, START_FACTOR, 1.0, total_iters=warmup_steps) if warmup_steps else None
        self.plateau = ReduceLROnPlateau(optimizer, **plateau)

    def step(self, metric: float | None = None) -> None:
        if metric is None:  # an optimizer step: the warm-up's, until it is done
            if self.warmup is not None and self.steps < self.warmup_steps:
                self.warmup.step()
            self.steps += 1
        elif self.steps >= self.warmup_steps:  # an epoch's end: the plateau, once warmed up
            self.plateau.step(metric)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "plateau": self.plateau.state_dict(),
                "warmup": self.warmup.state_dict() if self.warmup is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        self.plateau.load_state_dict(state["plateau"])
        if self.warmup is not None and state["warmup"] is not None:
            self.warmup.load_state_dict(state["warmup"])
