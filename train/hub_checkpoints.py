"""Checkpoints that travel (issue 22, point 4): the latest checkpoint in the Hub repo's `last-checkpoint/`
folder (the HF Trainer's `hub_strategy="checkpoint"` convention), and back for `--resume_from_checkpoint hub`
(or a repo id) in the next session; `--checkpoint_optimizer false` leaves the optimizer's momentum out.

One HfApi call per save: `upload_folder(path_in_repo="last-checkpoint", delete_patterns="*")`, which also
drops the previous checkpoint's files in that folder, never touching the model at the repo's root. The
download is `HfApi.snapshot_download` of that folder; the checkpoint is then verified against its manifest
like any local one (train/checkpoints.py), so a partial or altered download is refused by file name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from train.checkpoints import CHECKPOINTS_DIR, PREFIX, CheckpointError, verify_checkpoint

HUB_FOLDER = "last-checkpoint"
OPTIMIZER_FILE = "optimizer.bin"  # accelerate's name for the (single) optimizer's state_dict


def drop_optimizer_state(folder: Path) -> None:
    """Keep the optimizer's param_groups (lr, momentum factor...) but not its per-parameter state (SGD momentum
    buffers, Adam moments): about half a VGG16 checkpoint. The resumed optimizer rebuilds them from zero."""
    path = folder / OPTIMIZER_FILE
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "state": {}}, path)


def push_checkpoint(folder: Path, repo_id: str) -> None:
    """Upload one complete checkpoint folder to REPO/last-checkpoint/, replacing the previous one."""
    from huggingface_hub import HfApi

    HfApi().upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=HUB_FOLDER, delete_patterns="*",
                          commit_message=f"Checkpoint {folder.name} (train/train.py --push_checkpoints)")
    print(f"checkpoint {folder.name} pushed to https://huggingface.co/{repo_id}/tree/main/{HUB_FOLDER}")


def download_checkpoint(repo_id: str, output_dir: Path) -> Path:
    """REPO/last-checkpoint/ into OUTPUT_DIR/checkpoints/checkpoint_<its epoch>, verified; its path."""
    from huggingface_hub import HfApi

    staging = output_dir / f".{HUB_FOLDER}-download"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        HfApi().snapshot_download(repo_id=repo_id, allow_patterns=f"{HUB_FOLDER}/*", local_dir=str(staging))
    except Exception as error:
        raise CheckpointError(f"--resume_from_checkpoint {repo_id}: could not download {HUB_FOLDER}/ "
                              f"({type(error).__name__}: {error})") from error
    downloaded = staging / HUB_FOLDER
    if not downloaded.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {repo_id}: the repo has no {HUB_FOLDER}/ folder "
                              "(was the run started with --push_checkpoints?)")
    epoch = verify_checkpoint(downloaded)["epoch"]
    target = output_dir / CHECKPOINTS_DIR / f"{PREFIX}{epoch}"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(downloaded), target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
