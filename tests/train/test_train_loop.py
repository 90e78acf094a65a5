"""train.py's loop pieces on small tensors: the training step (gradient clamping, per-step schedules) and the
per-epoch choice between the raw weights and the EMA (train/evaluation.py's validate)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.data import DataLoader, TensorDataset

from fer_model import FerConfig, FerForImageClassification
from train.evaluation import validate, without_compile
from train.train import training_step


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(True)


def largest_update(accelerator: Accelerator, clip_value: float | None) -> float:
    """The largest parameter change of one plain SGD step (lr 1: the change is the gradient) on a loud batch."""
    torch.manual_seed(0)
    model = FerForImageClassification(FerConfig(image_size=32))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    pixel_values, target = torch.randn(4, 3, 32, 32) * 50, torch.tensor([0, 1, 2, 3])
    loss = training_step(accelerator, model, optimizer, pixel_values, target, F.cross_entropy, clip_value=clip_value)
    assert loss.ndim == 0 and not loss.requires_grad and all(p.grad is None for p in model.parameters())
    return max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True))


def test_grad_clip_value_clamps_every_gradient_element(accelerator: Accelerator) -> None:
    unclipped = largest_update(accelerator, None)
    clipped = largest_update(accelerator, 1e-3)
    assert unclipped > 1e-2  # the loud batch does produce large gradients
    assert clipped == pytest.approx(1e-3, rel=1e-4)  # WuJie1010's clamp: no element beyond ±value


def test_a_per_step_schedule_steps_once_per_training_step(accelerator: Accelerator) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))

    class Wrapped(torch.nn.Module):  # the model interface train.py calls: model(pixel_values=...).logits
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(logits=self.inner(pixel_values))

    wrapped = Wrapped()
    for _ in range(3):
        training_step(accelerator, wrapped, optimizer, torch.ones(2, 3), torch.tensor([0, 1]), F.cross_entropy,
                      scheduler=scheduler)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 / 4)
    training_step(accelerator, wrapped, optimizer, torch.ones(2, 3), torch.tensor([0, 1]), F.cross_entropy)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 / 4)  # no scheduler: plateau steps per epoch


class Reader(torch.nn.Module):
    """Predicts the class written into each face's grey level (label * 30), or always class 0 when `blind`."""

    def __init__(self, config: FerConfig, blind: bool) -> None:
        super().__init__()
        self.config, self.blind = config, blind
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        grey = pixel_values[:, 0, 0, 0] * self.config.image_std[0] + self.config.image_mean[0]
        labels = torch.zeros_like(grey, dtype=torch.long) if self.blind else (grey * 255 / 30).round().long()
        return SimpleNamespace(logits=F.one_hot(labels, self.config.num_labels).float() * 10 + self.anchor)


@pytest.mark.parametrize(("raw_blind", "ema_blind", "kept"), [(True, False, "ema"), (False, True, "model"),
                                                               (True, True, "model")])  # a tie keeps the raw weights
def test_validate_keeps_the_candidate_that_validates_better(accelerator: Accelerator, raw_blind: bool,
                                                             ema_blind: bool, kept: str) -> None:
    config = FerConfig(image_size=48)
    labels = torch.arange(14) % 7
    images = (labels * 30).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 48, 48).contiguous()
    loader = accelerator.prepare(DataLoader(TensorDataset(images, labels), batch_size=4))
    candidates = {"model": Reader(config, raw_blind), "ema": Reader(config, ema_blind)}
    record = validate(accelerator, candidates, loader, config)
    accuracy = {True: 2 / 14, False: 1.0}  # blind: only the two class-0 faces are right
    assert record["candidate"] == kept
    assert (record["val_accuracy_model"], record["val_accuracy_ema"]) == (accuracy[raw_blind], accuracy[ema_blind])
    assert record["val_accuracy"] == max(accuracy[raw_blind], accuracy[ema_blind]) and record["val_samples"] == 14
    alone = validate(accelerator, {"model": candidates["model"]}, loader, config)
    assert alone["candidate"] == "model" and "val_accuracy_model" not in alone  # one candidate: no per-name figures


def test_without_compile_returns_the_module_compile_wrapped() -> None:
    model = torch.nn.Linear(2, 2)
    assert without_compile(torch.compile(model)) is model and without_compile(model) is model
