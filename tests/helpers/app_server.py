"""Launching the Gradio app on loopback for a test module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gradio as gr

import app
from fer_model import EmotionRecognizer
from tests.helpers.network import free_port


@contextlib.contextmanager
def launched_demo(recognizer: EmotionRecognizer) -> Iterator[gr.Blocks]:
    """The app's Blocks around `recognizer`, served on 127.0.0.1 with the app's upload limit, then closed."""
    demo = app.build_demo(recognizer, "tiny random model")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                max_file_size=app.MAX_FILE_SIZE)
    try:
        yield demo
    finally:
        demo.close()
