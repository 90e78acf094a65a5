"""Fixtures shared by every test area; helpers live in tests/helpers (imported, never from here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from fer_model import EmotionRecognizer  # noqa: E402
from tests.helpers.models import save_random_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One random-init model folder for the whole session (read-only: copy it before changing files)."""
    return save_random_model(tmp_path_factory.mktemp("model") / "fer-random")


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir: Path) -> EmotionRecognizer:
    """The tiny model's recognizer, loaded once per test module (test_fuzz_images.py warms its own up)."""
    return EmotionRecognizer.from_pretrained(tiny_model_dir)
