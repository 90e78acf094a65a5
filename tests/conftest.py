"""Shared fixtures: small random-init models saved to tmp folders, and the paths of shared assets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from fer_model import FerConfig, FerForImageClassification, FerImageProcessor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FER2013_DIR = SHARED / "fer2013"
RELEASED_MODEL_DIR = SHARED / "models" / "fer-vgg16"

needs_fer2013 = pytest.mark.skipif(not FER2013_DIR.is_dir(), reason=f"FER2013 copy not found at {FER2013_DIR}")
needs_released_model = pytest.mark.skipif(
    not (RELEASED_MODEL_DIR / "config.json").is_file(),
    reason=f"no released model at {RELEASED_MODEL_DIR} (published by a train/train.py run)",
)


def free_port() -> int:
    """A port nobody listens on now, for servers a test starts on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def save_random_model(folder: Path, seed: int = 0, **config_kwargs) -> Path:
    """A random-init model + its processor, saved the way train.py saves them."""
    torch.manual_seed(seed)
    config = FerConfig(**config_kwargs)
    FerForImageClassification(config).eval().save_pretrained(folder)
    FerImageProcessor.from_model_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("model") / "fer-random")
