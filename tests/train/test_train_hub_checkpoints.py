"""Checkpoints that travel (issue 22, point 4): --push_checkpoints uploads each checkpoint to the repo's
last-checkpoint/ (checked at the HfApi boundary, a fake Hub in a folder), --resume_from_checkpoint hub downloads
and resumes it on another "machine" (a new output folder); a checkpoint copied as plain files (cp -r, no hard
links) resumes; --checkpoint_optimizer false leaves the optimizer's state out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from tests.helpers.tiny_fer import write_hub_folder
from tests.helpers.train_runs import QUICK, without_timings
from train import train as train_script
from train.checkpoints import MANIFEST_FILE, CheckpointError, find_checkpoint
from train.hub_checkpoints import HUB_FOLDER

REPO = "someone/fer-vgg16-run"
RECIPE = ["--epochs", "3", "--scheduler", "plateau", "--warmup_epochs", "1", "--optimizer", "sgd", "--lr", "0.01"]


class FakeHub:
    """HfApi's create_repo, upload_folder and snapshot_download on a local folder; every call recorded."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from huggingface_hub import HfApi, RepoUrl

        self.root, self.calls = root, []

        def create_repo(api, repo_id, *, private=None, exist_ok=False, **kwargs):
            self.calls.append(("create_repo", repo_id))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(api, *, repo_id, folder_path, path_in_repo=None, delete_patterns=None, **kwargs):
            self.calls.append(("upload_folder", repo_id, path_in_repo, delete_patterns))
            target = self.root / repo_id / (path_in_repo or "")
            if delete_patterns == "*":
                shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder_path, target, dirs_exist_ok=True)

        def snapshot_download(api, *, repo_id, allow_patterns=None, local_dir=None, **kwargs):
            self.calls.append(("snapshot_download", repo_id, allow_patterns))
            folder = allow_patterns.removesuffix("/*")
            shutil.copytree(self.root / repo_id / folder, Path(local_dir) / folder)
            return local_dir

        for name, function in (("create_repo", create_repo), ("upload_folder", upload_folder),
                               ("snapshot_download", snapshot_download)):
            monkeypatch.setattr(HfApi, name, function)


def train(dataset: str, output_dir: Path, *extra: str) -> dict:
    try:
        return train_script.main([*QUICK, *RECIPE, "--dataset", dataset, "--output_dir", str(output_dir), *extra])
    finally:
        AcceleratorState._reset_state(True)


def test_pushed_checkpoints_resume_elsewhere_and_plain_copies_resume(tmp_path: Path, monkeypatch) -> None:
    dataset = str(write_hub_folder(tmp_path / "data"))
    hub = FakeHub(tmp_path / "hub", monkeypatch)
    first = tmp_path / "machine1" / "model"
    train(dataset, first, "--push_checkpoints", "--hub_model_id", REPO, "--stop_after_epoch", "2")
    assert hub.calls == [("create_repo", REPO), *[("upload_folder", REPO, HUB_FOLDER, "*")] * 2]  # one per save
    pushed = tmp_path / "hub" / REPO
    assert sorted(p.name for p in pushed.iterdir()) == [HUB_FOLDER]  # never the model's root
    assert (pushed / HUB_FOLDER / MANIFEST_FILE).is_file() and (pushed / HUB_FOLDER / "best_model").is_dir()

    from_hub = train(dataset, tmp_path / "machine2" / "model", "--resume_from_checkpoint", "hub",
                     "--hub_model_id", REPO)
    assert hub.calls[-1] == ("snapshot_download", REPO, f"{HUB_FOLDER}/*")
    assert [h["epoch"] for h in from_hub["validation"]["history"]] == [1, 2, 3]
    assert (tmp_path / "machine2" / "model" / "checkpoints" / "checkpoint_3" / MANIFEST_FILE).is_file()

    copied = tmp_path / "machine3" / "model"  # cp -r: plain files, the best model's hard links become copies
    shutil.copytree(first / "checkpoints", copied / "checkpoints")
    assert all(p.stat().st_nlink == 1 for p in copied.rglob("*") if p.is_file())
    from_copy = train(dataset, copied, "--resume_from_checkpoint", "latest")
    assert without_timings(from_copy) == without_timings(from_hub)  # the same checkpoint, the same run


def test_resume_from_hub_errors_name_what_is_missing(tmp_path: Path, monkeypatch) -> None:
    FakeHub(tmp_path / "hub", monkeypatch)
    (tmp_path / "hub" / REPO).mkdir(parents=True)
    with pytest.raises(CheckpointError, match="needs --hub_model_id"):
        find_checkpoint("hub", tmp_path / "out")
    with pytest.raises(CheckpointError, match=f"could not download {HUB_FOLDER}/"):
        find_checkpoint(REPO, tmp_path / "out")


def test_a_checkpoint_without_optimizer_state_is_smaller_and_resumes(tmp_path: Path) -> None:
    """--checkpoint_optimizer false: optimizer.bin keeps the param groups (lr) but no momentum buffers."""
    dataset = str(write_hub_folder(tmp_path / "data"))
    sizes = {}
    for keep in ("true", "false"):
        output_dir = tmp_path / keep
        train(dataset, output_dir, "--optimizer", "sgd", "--stop_after_epoch", "1", "--checkpoint_optimizer", keep)
        saved = torch.load(output_dir / "checkpoints" / "checkpoint_1" / "optimizer.bin", weights_only=True)
        assert bool(saved["state"]) == (keep == "true") and saved["param_groups"][0]["momentum"] == 0.9
        sizes[keep] = sum(p.stat().st_size for p in (output_dir / "checkpoints" / "checkpoint_1").rglob("*"))
    assert sizes["false"] < sizes["true"]
    resumed = train(dataset, tmp_path / "false", "--resume_from_checkpoint", "latest",
                    "--checkpoint_optimizer", "false")
    assert [h["epoch"] for h in resumed["validation"]["history"]] == [1, 2, 3]
