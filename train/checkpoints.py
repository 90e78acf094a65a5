"""Resume checkpoints that survive a kill: written atomically, verified before loading.

A checkpoint is `OUTPUT_DIR/checkpoints/epoch_N/`: accelerate's state (model, optimizer, schedulers, RNG,
registered objects such as the EMA/SWA weights), `trainer_state.json`, `best_model/` (hard links to the
best-validation model folder as it was at that epoch, so a resumed run publishes exactly what an
uninterrupted one would) and `manifest.json` (size and SHA-256 of every file).

Writing goes to `.epoch_N.tmp/` and ends with one `os.replace` onto `epoch_N/`, so a process killed while
saving leaves at most a temporary folder that nothing reads (and the next save removes). Before a resume,
every file is checked against the manifest: a truncated or altered file is reported by name instead of
failing deep inside torch.load or safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
BEST_MODEL_DIR = "best_model"
CHECKPOINTS_DIR = "checkpoints"
PREFIX = "epoch_"
TEMP_SUFFIX = ".tmp"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the checkpoint, the file and what to do."""


def checkpoint_path(output_dir: Path, epoch: int) -> Path:
    return output_dir / CHECKPOINTS_DIR / f"{PREFIX}{epoch}"


def checkpoint_epoch(path: Path) -> int:
    return int(path.name.removeprefix(PREFIX))


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints with a manifest (i.e. fully written), oldest first."""
    found = [p for p in (output_dir / CHECKPOINTS_DIR).glob(f"{PREFIX}*")
             if p.is_dir() and p.name.removeprefix(PREFIX).isdigit() and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=checkpoint_epoch)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under `folder` (written last: its presence marks the checkpoint complete)."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}
    (folder / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=1))
    return files


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (free, and immune to a later atomic replacement of the source); a copy across devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def save_checkpoint(
    output_dir: Path,
    epoch: int,
    state: dict[str, Any],
    save_state: Callable[[str], Any],
    best_model_files: list[str],
    keep: int,
    is_main_process: bool = True,
    wait_for_everyone: Callable[[], None] = lambda: None,
) -> Path:
    """Write checkpoint `epoch` atomically; keep the newest `keep` complete checkpoints.

    `save_state(folder)` is accelerate's save_state, called on every process (each writes its RNG state);
    the main process then adds trainer_state.json, the best model's links and the manifest, and renames.
    """
    final = checkpoint_path(output_dir, epoch)
    temporary = final.parent / f".{final.name}{TEMP_SUFFIX}"  # not matched by complete_checkpoints
    if is_main_process:
        for stale in final.parent.glob(f".{PREFIX}*{TEMP_SUFFIX}"):  # left by a run killed while saving
            shutil.rmtree(stale, ignore_errors=True)
        temporary.mkdir(parents=True)
    wait_for_everyone()
    save_state(str(temporary))
    wait_for_everyone()
    if is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps(state, indent=2))
        best = temporary / BEST_MODEL_DIR
        best.mkdir()
        for name in best_model_files:
            link_or_copy(output_dir / name, best / name)
        write_manifest(temporary)
        if final.exists():  # the same epoch saved again (resumed from an older checkpoint): set the old one aside
            replaced = final.parent / f".{final.name}.old{TEMP_SUFFIX}"
            os.replace(final, replaced)
            os.replace(temporary, final)
            shutil.rmtree(replaced)
        else:
            os.replace(temporary, final)
        for old in complete_checkpoints(output_dir)[: -max(keep, 1)]:
            shutil.rmtree(old)
    wait_for_everyone()
    return final


def find_checkpoint(spec: str, output_dir: Path) -> Path:
    """`latest` (the newest complete checkpoint in output_dir) or an explicit checkpoint folder."""
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
    """Check every file against the manifest; return trainer_state.json. Raises CheckpointError naming the file."""
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
    return json.loads((path / STATE_FILE).read_text())


def restore_best_model(checkpoint: Path, output_dir: Path) -> None:
    """Put the checkpoint's best model back into output_dir (a killed run may have saved a newer one since)."""
    saved = checkpoint / BEST_MODEL_DIR
    if saved.is_dir():
        replace_files(saved, output_dir, copy=True)


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
