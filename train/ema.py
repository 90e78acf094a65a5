"""Weight averaging: an exponential moving average (EMA) of the model, updated every step.

torch's AveragedModel with its EMA function (get_ema_multi_avg_fn) over the weights and the BatchNorm
buffers (timm's convention). The stock `update_parameters` costs two host-device syncs per step (it
tests and moves the device-side `n_averaged`); this one keeps `n_averaged` on the CPU, so updating
never waits for the GPU and the training loop keeps its no-sync-per-step property. The EMA is an
nn.Module with state_dict/load_state_dict, so accelerate's register_for_checkpointing saves and
restores it with the rest of a checkpoint.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMAModel(AveragedModel):
    """EMA of `model` at `decay` (weights and BatchNorm buffers), on the model's device; `.module` is the average."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [t.detach() for t in (*model.parameters(), *model.buffers())]
        first = int(self.n_averaged) == 0  # the first update copies, as AveragedModel's does
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point() and not first]
        if floats:
            self.multi_avg_fn([a for a, _ in floats], [c for _, c in floats], self.n_averaged)
        for a, c in zip(averaged, current, strict=True):
            if first or not a.is_floating_point():  # integer buffers (BatchNorm's step counter) are copied
                a.copy_(c)
        self.n_averaged += 1
