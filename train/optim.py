"""The optimisation part of a recipe: the optimizer and its learning-rate schedule.

Schedules come from transformers.get_scheduler where it has them, torch's own otherwise (one-cycle,
reduce-on-plateau). Per-step schedules are stepped once per optimizer step of this process (the
Accelerator has step_scheduler_with_optimizer=False), so the schedule is the same for 1 or N processes;
plateau is stepped once per epoch by train.py with the validation accuracy of the kept candidate.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import get_scheduler

from train.recipe import Recipe
from train.warmup import PlateauWithWarmup


def build_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov) or Adam over the trainable parameters; the fused CUDA kernels when the model is on a GPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if params and all(p.device.type == "cuda" for p in params) else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.nesterov and recipe.momentum > 0, **fused)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)


def stepped_per_epoch(recipe: Recipe) -> bool:
    """Whether the schedule is also stepped once per epoch with a validation accuracy (plateau, after its
    warm-up, which is stepped every optimizer step like the other schedules)."""
    return recipe.scheduler == "plateau"


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """The warm-up's optimizer steps: warmup_epochs of total_steps / epochs, or warmup_ratio of total_steps."""
    if recipe.warmup_epochs is not None:
        return total_steps * recipe.warmup_epochs // recipe.epochs
    default = 0.3 if recipe.scheduler == "onecycle" else 0.0
    return int((default if recipe.warmup_ratio is None else recipe.warmup_ratio) * total_steps)


def build_scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """The schedule over `total_steps` optimizer steps, each after a linear warm-up (warmup_steps).

    none: get_scheduler's constant lr after the warm-up. onecycle: torch's OneCycleLR (get_scheduler has no
    one-cycle; its rising phase is the warm-up), keeping the recipe's momentum constant (cycle_momentum=False).
    plateau: torch's LinearLR warm-up, then ReduceLROnPlateau on validation accuracy (mode max, usef-kh's
    recipe), stepped per epoch (train/warmup.py).
    """
    if recipe.scheduler == "plateau":
        return PlateauWithWarmup(optimizer, warmup_steps(recipe, total_steps), mode="max",
                                 factor=recipe.plateau_factor, patience=recipe.plateau_patience, min_lr=recipe.min_lr)
    if recipe.scheduler == "onecycle":
        rising = recipe.warmup_epochs / recipe.epochs if recipe.warmup_epochs else recipe.warmup_ratio or 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps,
                                                   pct_start=rising, cycle_momentum=False)
    return get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup_steps(recipe, total_steps))
