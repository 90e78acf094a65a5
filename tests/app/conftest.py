"""Fixtures of the app tests: the Space launched in this process on localhost (tests/helpers/app_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fer_model import EmotionRecognizer
from tests.helpers.app_server import launched_demo


@pytest.fixture(scope="module")
def url(recognizer: EmotionRecognizer) -> Iterator[str]:
    """The launched demo's local URL, one server per test module."""
    with launched_demo(recognizer) as demo:
        yield demo.local_url
