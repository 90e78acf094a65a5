"""Warm-up for every schedule, plateau included (issue 22, point 2): the lr curve and its restore on resume."""

from __future__ import annotations

import pytest
import torch

from train.optim import build_scheduler, warmup_steps
from train.recipe import Recipe

PLATEAU = {"lr": 0.1, "scheduler": "plateau", "plateau_factor": 0.5, "plateau_patience": 0, "epochs": 4}
STEPS_PER_EPOCH = 4


def plateau_curve(recipe: Recipe, accuracies: list[float], state: dict | None = None, start_epoch: int = 0,
                  ) -> tuple[list[float], dict]:
    """The lr of every optimizer step, as train.py steps the scheduler: every step, then each epoch's end with the
    validation accuracy. `state` (a saved scheduler's state_dict and the optimizer's lr) resumes at `start_epoch`."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    scheduler = build_scheduler(recipe, optimizer, STEPS_PER_EPOCH * recipe.epochs)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    lrs = []
    for accuracy in accuracies[start_epoch:]:
        for _ in range(STEPS_PER_EPOCH):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        scheduler.step(accuracy)
    return lrs, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}


def test_plateau_warms_up_linearly_then_lowers_the_lr_on_a_stall() -> None:
    lrs, _ = plateau_curve(Recipe(**PLATEAU, warmup_epochs=1), [0.3, 0.5, 0.5, 0.5])
    warm = lrs[:STEPS_PER_EPOCH]
    assert warm[0] == pytest.approx(1e-4) and warm == sorted(warm) and warm[-1] < 0.1  # rising, from lr / 1000
    assert warm[1] - warm[0] == pytest.approx(warm[2] - warm[1])  # linearly
    # Epoch 1's 0.3 falls in the warm-up (not seen by the plateau); 0.5 is its first best; the stall halves the lr.
    assert lrs[STEPS_PER_EPOCH:] == pytest.approx([0.1] * 8 + [0.05] * 4)


def test_plateau_without_warmup_is_unchanged() -> None:
    lrs, _ = plateau_curve(Recipe(**PLATEAU), [0.5, 0.5, 0.5, 0.5])
    assert lrs == pytest.approx([0.1] * 8 + [0.05] * 4 + [0.025] * 4)  # epoch 1 sets the best, 2 stalls


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_a_resumed_warmup_and_plateau_continue_the_same_curve(stop: int) -> None:
    """Resuming inside the 2-epoch warm-up, at its end or after it gives the uninterrupted curve, bit for bit."""
    recipe, accuracies = Recipe(**{**PLATEAU, "epochs": 5}, warmup_epochs=2), [0.3, 0.4, 0.5, 0.5, 0.5]
    whole, _ = plateau_curve(recipe, accuracies)
    first, state = plateau_curve(recipe, accuracies[:stop])
    rest, _ = plateau_curve(recipe, accuracies, state=state, start_epoch=stop)
    assert first + rest == pytest.approx(whole, abs=0, rel=0)  # bit for bit


@pytest.mark.parametrize(("fields", "steps"), [
    ({"scheduler": "plateau", "warmup_epochs": 2}, 8), ({"scheduler": "plateau", "warmup_ratio": 0.25}, 4),
    ({"scheduler": "plateau"}, 0), ({"scheduler": "none", "warmup_epochs": 1}, 4), ({"scheduler": "onecycle"}, 4),
])
def test_warmup_steps_come_from_warmup_epochs_or_warmup_ratio(fields: dict, steps: int) -> None:
    assert warmup_steps(Recipe(epochs=4, **fields), total_steps=16) == steps


def test_onecycle_rises_over_warmup_epochs() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(Recipe(scheduler="onecycle", lr=0.1, epochs=4, warmup_epochs=1), optimizer, 40)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(range(40), key=lrs.__getitem__) in (9, 10)  # the peak after one epoch of 10 steps
