"""Resume checkpoints: accelerate's save_state/load_state, made kill-safe and verified before a resume.

The Accelerator gets `ProjectConfiguration(project_dir=OUTPUT_DIR, automatic_checkpoint_naming=True,
total_limit=N)`: `save_state()` then writes `OUTPUT_DIR/checkpoints/checkpoint_<iteration>` (the iteration
is set to the epoch) and first removes the oldest checkpoints beyond N. A checkpoint holds what accelerate
saves (model, optimizer, scheduler, RNG states of every process, the objects registered with
register_for_checkpointing: train.py's TrainState first, then the EMA) plus two things of ours:

- `best_model/`: hard links to the best-validation model folder as it was at that epoch, so a resumed
  run publishes exactly what an uninterrupted one would;
- `manifest.json` (size and SHA-256 of every file), written under a temporary name and renamed into
  place last (os.replace is atomic). A folder without it is incomplete (a kill while saving); it is never
  resumed from and the next save removes it. Before a resume every file is checked against the
  manifest, so a truncated or altered file is reported by name, not deep inside torch.load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

CHECKPOINTS_DIR = "checkpoints"  # accelerate's folder under project_dir
PREFIX = "checkpoint_"  # accelerate's automatic name: checkpoint_<iteration>
STATE_FILE = "custom_checkpoint_0.pkl"  # the first registered object: train.py's TrainState
MANIFEST_FILE = "manifest.json"
BEST_MODEL_DIR = "best_model"
TEMP_SUFFIX = ".tmp"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the checkpoint, the file and what to do."""


def project_configuration(output_dir: Path, total_limit: int) -> ProjectConfiguration:
    """Checkpoints under OUTPUT_DIR/checkpoints (rotated by accelerate), tracker logs under OUTPUT_DIR/logs."""
    return ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs"),
                                automatic_checkpoint_naming=True, total_limit=total_limit)


def checkpoint_epoch(path: Path) -> int:
    return int(path.name.removeprefix(PREFIX))


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """Every checkpoint_N folder, complete or not, oldest first."""
    folder = output_dir / CHECKPOINTS_DIR
    found = [p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and p.name.removeprefix(PREFIX).isdigit()]
    return sorted(found, key=checkpoint_epoch)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints with a manifest (i.e. fully written), oldest first."""
    return [p for p in checkpoint_folders(output_dir) if (p / MANIFEST_FILE).is_file()]


def save_checkpoint(accelerator: Accelerator, epoch: int, best_model_files: list[str], optimizer_state: bool = True,
                    push_to: str | None = None) -> Path:
    """accelerate's save_state as checkpoint_<epoch>, then the best model's links and, last, the manifest.

    optimizer_state=False (--checkpoint_optimizer false) leaves the optimizer's momentum out; `push_to` (a Hub
    repo id, --push_checkpoints) then uploads the complete checkpoint to its last-checkpoint/ folder."""
    from train.hub_checkpoints import drop_optimizer_state, push_checkpoint

    output_dir = Path(accelerator.project_dir)
    folder = output_dir / CHECKPOINTS_DIR / f"{PREFIX}{epoch}"
    if accelerator.is_main_process:  # incomplete leftovers, and the future of an older resume point
        for stale in checkpoint_folders(output_dir):
            if checkpoint_epoch(stale) >= epoch or not (stale / MANIFEST_FILE).is_file():
                shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    accelerator.project_configuration.iteration = epoch  # the automatic name is checkpoint_<iteration>
    accelerator.save_state()  # rotates to total_limit, then writes (each process its own RNG state)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        best = folder / BEST_MODEL_DIR
        best.mkdir()
        for name in best_model_files:
            link_or_copy(output_dir / name, best / name)
        if not optimizer_state:
            drop_optimizer_state(folder)
        write_manifest(folder)
        if push_to:
            push_checkpoint(folder, push_to)
    accelerator.wait_for_everyone()
    return folder


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under `folder`, renamed into place last: it marks the checkpoint complete."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}
    staged = folder / f".{MANIFEST_FILE}{TEMP_SUFFIX}"
    staged.write_text(json.dumps({"files": files}, indent=1))
    os.replace(staged, folder / MANIFEST_FILE)
    return files


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (free, and immune to a later atomic replacement of the source); a copy across devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def find_checkpoint(spec: str, output_dir: Path, hub_model_id: str | None = None) -> Path:
    """`latest` (the newest complete checkpoint in output_dir), an explicit checkpoint folder, or `hub` / a Hub
    repo id: its last-checkpoint/ folder (--push_checkpoints), downloaded into output_dir/checkpoints."""
    from fer_model.loading import is_hub_id
    from train.hub_checkpoints import download_checkpoint

    if spec == "hub" or (not Path(spec).exists() and "/" in spec and is_hub_id(spec)):
        if spec == "hub" and not hub_model_id:
            raise CheckpointError("--resume_from_checkpoint hub needs --hub_model_id (the repo the run pushed to)")
        return download_checkpoint(hub_model_id if spec == "hub" else spec, output_dir)
    if spec == "latest":
        found = complete_checkpoints(output_dir)
        if not found:
            raise CheckpointError(f"--resume_from_checkpoint latest: no complete checkpoint in "
                                  f"{output_dir / CHECKPOINTS_DIR} (a folder without {MANIFEST_FILE} is incomplete)")
        return found[-1]
    path = Path(spec)
    if not path.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {spec}: no such checkpoint folder")
    if not (path / MANIFEST_FILE).is_file():
        raise CheckpointError(f"--resume_from_checkpoint {spec}: not a complete checkpoint (no {MANIFEST_FILE}; "
                              "it was interrupted while saving, or written by an older train.py)")
    return path


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file against the manifest; return the saved TrainState. Raises CheckpointError naming the file."""
    try:
        files = json.loads((path / MANIFEST_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path}: unreadable {MANIFEST_FILE} ({error})") from error
    advice = "delete this checkpoint and resume from an earlier one, or start the run again"
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is damaged: {name} is missing; {advice}")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} has {size} bytes, the manifest says "
                                  f"{expected['size']} (truncated?); {advice}")
        if sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} does not match its SHA-256 in "
                                  f"{MANIFEST_FILE} (corrupted?); {advice}")
    if STATE_FILE not in files:
        raise CheckpointError(f"checkpoint {path} has no {STATE_FILE} (the training state): not written by train.py")
    return torch.load(path / STATE_FILE, weights_only=True)


def resume_checkpoint(spec: str, output_dir: Path, recipe: dict[str, Any], hub_model_id: str | None = None) -> Path:
    """The checkpoint to resume from, verified file by file, written by the same recipe."""
    checkpoint = find_checkpoint(spec, output_dir, hub_model_id)
    saved = verify_checkpoint(checkpoint)["recipe"]
    changed = sorted(k for k in set(saved) | set(recipe) if recipe.get(k) != saved.get(k))
    if changed:
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: the recipe differs from the checkpoint's in "
                         f"{changed}; resume with the same preset and flags")
    return checkpoint


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> None:
    """accelerate's load_state (every registered object too); the checkpoint's best model back in place."""
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # verified files that still do not load: say which checkpoint, not just why
        raise CheckpointError(f"checkpoint {checkpoint} could not be loaded ({type(error).__name__}: {error}); "
                              "it was written by another version of train.py or for another model") from error
    saved = checkpoint / BEST_MODEL_DIR  # a killed run may have saved a newer best model since
    if accelerator.is_main_process and saved.is_dir():
        replace_files(saved, Path(accelerator.project_dir), copy=True)


def replace_files(source: Path, target: Path, copy: bool = False) -> list[str]:
    """Move (or copy) every file of `source` into `target`, each with an atomic os.replace; returns the names."""
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        if copy:
            staged = target / f".{path.name}{TEMP_SUFFIX}"
            shutil.copy2(path, staged)
            os.replace(staged, target / path.name)
        else:
            os.replace(path, target / path.name)
        names.append(path.name)
    return names
