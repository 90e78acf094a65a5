"""Launching the Gradio app on loopback for a test module, and talking to it over raw HTTP as an attacker would.

gradio_client only sends what its API page describes; the raw helpers below send anything: file objects with
or without `meta`, data: URLs, any fn_index, streams that are joined and then dropped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx

import app
from fer_model import EmotionRecognizer
from tests.helpers.network import free_port

FILE_META = {"_type": "gradio.FileData"}  # what marks a dict as a file object for gradio's own checks


@contextlib.contextmanager
def launched_demo(recognizer: EmotionRecognizer, model_source: str = "tiny random model",
                  modes: dict[str, str] | None = None) -> Iterator[gr.Blocks]:
    """The app's Blocks around `recognizer` (`modes`: each part's TTA, default the recognizer's), served on
    127.0.0.1 with the app's launch options, then closed."""
    demo = app.build_demo(recognizer, model_source, modes)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **app.LAUNCH_OPTIONS)
    try:
        yield demo
    finally:
        demo.close()


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def fn_index(url: str, api_name: str) -> int:
    """The fn_index of an event (public or private) by its api_name, from the page's config."""
    config = httpx.get(f"{url}config", timeout=30).json()
    (index,) = [dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name]
    return index


def upload(url: str, path: Path) -> str:
    """POST a file to gradio's upload route; its path on the server (inside the upload folder)."""
    response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, path.read_bytes())}, timeout=60)
    response.raise_for_status()
    return response.json()[0]


def sse_lines(url: str, params: dict | None, done: Callable[[str], bool], timeout: float) -> list[str]:
    """The non-empty lines of a server-sent-event stream until `done(line)` or `timeout` seconds in all; then the
    connection is dropped (as a client that vanishes: no /cancel, no /stream/close)."""
    lines: list[str] = []
    client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def read() -> None:
        with contextlib.suppress(httpx.HTTPError, RuntimeError), client.stream("GET", url, params=params) as response:
            for line in response.iter_lines():
                if line.strip():
                    lines.append(line)
                    if done(line):
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    client.close()
    return list(lines)


def call(url: str, api_name: str, data: list, timeout: float = 60) -> tuple[str, Any]:
    """/gradio_api/call/NAME (the queue's REST route): ("complete", outputs), ("error", message or None), or
    ("timeout", None) when no answer came within `timeout` seconds."""
    response = httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, timeout=timeout)
    response.raise_for_status()
    event = ["timeout"]

    def final(line: str) -> bool:
        if line.startswith("event: "):
            event[0] = line.removeprefix("event: ")
            return False
        return event[0] in ("complete", "error")

    lines = sse_lines(f"{url}gradio_api/call/{api_name}/{response.json()['event_id']}", None, final, timeout)
    if event[0] not in ("complete", "error"):
        return "timeout", None
    result = json.loads(lines[-1].removeprefix("data: "))
    return event[0], (result.get("error") if event[0] == "error" else result)


def queue_messages(url: str, session_hash: str, stop: set[str], timeout: float) -> list[dict]:
    """The queue's SSE messages for a session until one whose "msg" is in `stop`, or until `timeout` seconds."""
    lines = sse_lines(f"{url}gradio_api/queue/data", {"session_hash": session_hash},
                      lambda line: line.startswith("data: ") and json.loads(line[6:]).get("msg") in stop, timeout)
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def join(url: str, index: int, data: list, session_hash: str | None = None) -> tuple[str, str]:
    """/gradio_api/queue/join for any fn_index, as the browser calls the UI's events: (session_hash, event_id)."""
    session_hash = session_hash or uuid.uuid4().hex
    body = {"data": data, "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    response = httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30)
    response.raise_for_status()
    return session_hash, response.json()["event_id"]


def run_event(url: str, index: int, data: list, timeout: float = 60) -> dict:
    """Join the queue for fn_index and read until the first output or the end: the last SSE message.

    A stream (the Live tab) stays open after its first frame: it is closed as the browser closes it.
    """
    session_hash, event_id = join(url, index, data)
    messages = queue_messages(url, session_hash, {"process_completed", "process_streaming"}, timeout)
    if messages and messages[-1]["msg"] == "process_streaming":
        httpx.post(f"{url}gradio_api/stream/{event_id}/close", timeout=30)
    return messages[-1] if messages else {}


def outcome(message: dict) -> tuple[str, Any]:
    """A final queue message as ("complete", outputs) or ("error", message or None)."""
    output = message.get("output") or {}
    if message.get("success") is False or "error" in output:
        return "error", output.get("error")
    return "complete", output.get("data")


def drop_stream(url: str, index: int, data: list, read_s: float) -> list[dict]:
    """Join a stream, read its messages for read_s seconds, then hang up without closing it; the messages seen."""
    session_hash, _ = join(url, index, data)
    return queue_messages(url, session_hash, set(), read_s)


def assert_one_generic_refusal(answers: dict[str, tuple[str, Any]], server_paths: dict[str, str], shown: str,
                               not_uploaded: str, with_meta: bool) -> None:
    """Attack 1's verdict: every server path got the same error, byte for byte (no "file not found" / "folder"
    oracle), naming none of them; a path-only file object gets the app's `not_uploaded` message (gradio itself
    refuses file objects with meta outside its upload folder). `shown`: the answer whose message is checked."""
    assert all(kind == "error" for kind, _ in answers.values()), answers
    assert len({json.dumps(answer) for answer in answers.values()}) == 1, answers
    message = str(answers[shown][1])
    assert not any(path in message for path in server_paths.values()), message
    if not with_meta:
        assert message.startswith(not_uploaded), message
