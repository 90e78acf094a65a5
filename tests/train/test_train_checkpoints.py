"""train/checkpoints.py: accelerate's save_state/load_state, rotated by total_limit, completed by a manifest,
verified file by file before a resume; and what a resume restores (model, optimizer, schedules, TrainState).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from train.checkpoints import (
    MANIFEST_FILE,
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    project_configuration,
    save_checkpoint,
    verify_checkpoint,
)
from train.optim import build_scheduler
from train.recipe import Recipe
from train.train import TrainState


@pytest.fixture
def checkpointing(tmp_path: Path):
    """A tiny prepared model with a TrainState registered, checkpointing into tmp_path (total_limit 2)."""
    accelerator = Accelerator(cpu=True, project_config=project_configuration(tmp_path, total_limit=2))
    model = torch.nn.Linear(4, 2)
    model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    state = TrainState(recipe={"lr": 0.1})
    accelerator.register_for_checkpointing(state)
    (tmp_path / "model.safetensors").write_bytes(b"best" * 10)  # the best-model folder's file, linked in
    yield accelerator, tmp_path, (model, optimizer, state)
    AcceleratorState._reset_state(True)


def test_checkpoints_are_rotated_by_accelerate_and_complete_or_invisible(checkpointing) -> None:
    accelerator, output_dir, _ = checkpointing
    for epoch in (1, 2, 3):
        save_checkpoint(accelerator, epoch, ["model.safetensors"])
    checkpoints = output_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_2", "checkpoint_3"]  # total_limit=2
    assert verify_checkpoint(checkpoints / "checkpoint_3")["recipe"] == {"lr": 0.1}
    assert (checkpoints / "checkpoint_3" / "best_model" / "model.safetensors").read_bytes() == b"best" * 10
    assert {"optimizer.bin", "model.safetensors", "random_states_0.pkl", "custom_checkpoint_0.pkl"} <= set(
        json.loads((checkpoints / "checkpoint_3" / MANIFEST_FILE).read_text())["files"])
    # what a kill while saving epoch 4 leaves: a folder without its manifest
    (checkpoints / "checkpoint_4").mkdir()
    (checkpoints / "checkpoint_4" / "model.safetensors").write_bytes(b"half")
    assert find_checkpoint("latest", output_dir).name == "checkpoint_3"
    with pytest.raises(CheckpointError, match=f"checkpoint_4: not a complete checkpoint \\(no {MANIFEST_FILE}"):
        find_checkpoint(str(checkpoints / "checkpoint_4"), output_dir)
    save_checkpoint(accelerator, 4, ["model.safetensors"])  # the leftover is replaced, the oldest rotated out
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_3", "checkpoint_4"]
    assert verify_checkpoint(checkpoints / "checkpoint_4")["epoch"] == 0
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_checkpoint("latest", output_dir / "elsewhere")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: f.write_bytes(f.read_bytes()[:500]), r"optimizer.bin has 500 bytes, the manifest says \d+ \(truncated"),
    (lambda f: f.write_bytes(b"x" * f.stat().st_size), r"optimizer.bin does not match its SHA-256"),
    (lambda f: f.unlink(), r"optimizer.bin is missing"),
])
def test_damaged_checkpoint_files_are_named(checkpointing, damage, message: str) -> None:
    accelerator, _, _ = checkpointing
    checkpoint = save_checkpoint(accelerator, 1, ["model.safetensors"])
    size = (checkpoint / "optimizer.bin").stat().st_size
    damage(checkpoint / "optimizer.bin")
    with pytest.raises(CheckpointError, match=f"checkpoint {checkpoint} is damaged: {message}"):
        verify_checkpoint(checkpoint)
    assert json.loads((checkpoint / MANIFEST_FILE).read_text())["files"]["optimizer.bin"]["size"] == size > 500


def test_load_state_restores_model_optimizer_and_train_state(checkpointing) -> None:
    accelerator, output_dir, (model, optimizer, state) = checkpointing
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    state.epoch, state.history = 1, [{"epoch": 1, "val_accuracy": 0.5}]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = optimizer.state[next(iter(optimizer.state))]["momentum_buffer"].clone()
    checkpoint = save_checkpoint(accelerator, 1, ["model.safetensors"])
    with torch.no_grad():
        model.weight.zero_()
    optimizer.state.clear()
    state.epoch, state.history = 7, []
    (output_dir / "newer").write_bytes(b"newer best of a killed run")  # saved as save_best_model does it
    os.replace(output_dir / "newer", output_dir / "model.safetensors")
    load_checkpoint(accelerator, checkpoint)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert torch.equal(optimizer.state[next(iter(optimizer.state))]["momentum_buffer"], momentum)
    assert (state.epoch, state.history) == (1, [{"epoch": 1, "val_accuracy": 0.5}])
    assert (output_dir / "model.safetensors").read_bytes() == b"best" * 10  # the checkpoint's best model


def test_plateau_schedule_is_restored_by_load_state(tmp_path: Path) -> None:
    """ReduceLROnPlateau's memory (best accuracy, epochs without improvement, lr) comes back with a resume."""
    accelerator = Accelerator(cpu=True, project_config=project_configuration(tmp_path, total_limit=2))
    try:
        model = torch.nn.Linear(4, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        recipe = Recipe(lr=0.1, scheduler="plateau", plateau_factor=0.5, plateau_patience=1)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, build_scheduler(recipe, optimizer, 10))
        accelerator.register_for_checkpointing(TrainState())
        for accuracy in (0.5, 0.6, 0.55):  # one epoch without improvement: patience 1 not yet used up
            scheduler.step(accuracy)
        (tmp_path / "model.safetensors").write_bytes(b"best")
        checkpoint = save_checkpoint(accelerator, 3, ["model.safetensors"])
        for accuracy in (0.9, 0.5, 0.5):  # what happens after the checkpoint: a new best, then a drop
            scheduler.step(accuracy)
        assert (scheduler.scheduler.plateau.best, optimizer.param_groups[0]["lr"]) == (0.9, pytest.approx(0.05))
        load_checkpoint(accelerator, checkpoint)
        inner = scheduler.scheduler.plateau  # after train/warmup.py's warm-up (none here)
        assert (inner.best, inner.num_bad_epochs, optimizer.param_groups[0]["lr"]) == (0.6, 1, 0.1)
        scheduler.step(0.58)  # the second stalled epoch since 0.6: the restored count makes it drop now
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    finally:
        AcceleratorState._reset_state(True)
