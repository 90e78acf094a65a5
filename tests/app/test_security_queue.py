"""The queue attacks of issue 21 (point 1), replayed over HTTP against the app launched on 127.0.0.1: video jobs
joined and never read, from one client or from many, and a job whose client left before its turn. Different
clients are told apart by X-Forwarded-For, which uvicorn trusts from loopback (as from a trusted proxy).
Bounded: at most 40 joins, every wait has a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pytest

import space.queue_guard
import space.server
import space.video_tab
from fer_model import EmotionRecognizer
from tests.helpers.app_server import FILE_META, call, fn_index, launched_demo, upload
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.video_clips import Clip, moving_faces_clip

CLAIM_S = 1.5  # space.queue_guard.CLAIM_S in this module: unread jobs are dropped after 1.5 s, not 10


@pytest.fixture(scope="module")
def demo(recognizer: EmotionRecognizer) -> Iterator[gr.Blocks]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(space.queue_guard, "CLAIM_S", CLAIM_S)
        with launched_demo(recognizer) as launched:
            yield launched


@pytest.fixture(scope="module")
def url(demo: gr.Blocks) -> str:
    return demo.local_url


def wait_until_dropped(demo: gr.Blocks, event_ids: list[str]) -> list[str]:
    """The events of `event_ids` still held by the queue after CLAIM_S + 3 s (polled)."""
    deadline = time.monotonic() + CLAIM_S + 3
    while any(i in demo._queue.event_ids_to_events for i in event_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [i for i in event_ids if i in demo._queue.event_ids_to_events]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return moving_faces_clip(tmp_path_factory.mktemp("clip") / "short.mp4", seconds=0.3, enter_leave=(9, 9))


def uploaded(url: str, path: Path) -> dict:
    return {"path": upload(url, path), "meta": FILE_META, "orig_name": path.name}


def join_unread(url: str, index: int, data: list, address: str, session_hash: str | None = None) -> httpx.Response:
    """POST /gradio_api/queue/join as the client at `address`, and never open the event stream."""
    body = {"data": data, "fn_index": index, "session_hash": session_hash or uuid.uuid4().hex,
            "event_data": None, "trigger_id": None}
    return httpx.post(f"{url}gradio_api/queue/join", json=body, headers={"X-Forwarded-For": address}, timeout=30)


def test_video_queue_flood_blocks_photos(demo: gr.Blocks, url: str, clip: Clip) -> None:
    """33 video jobs joined from 33 addresses and never read: at most VIDEO_QUEUE wait, the rest are refused
    with a reason, and a photo sent meanwhile is answered (it was 503 "Queue is full" for every photo/API user).
    The unread jobs are dropped after CLAIM_S, none having started."""
    video, index = uploaded(url, clip.path), fn_index(url, "analyze_clip")
    answers, waiting = [], []
    for i in range(33):
        answers.append(join_unread(url, index, [video], f"10.0.1.{i}"))
        waiting.append(len(demo._queue.event_queue_per_concurrency_id["video"].queue))
    assert max(waiting) <= space.server.VIDEO_QUEUE, waiting
    accepted = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code != 200]
    assert refused and all(a.status_code == 503 and "video jobs are already waiting" in a.text for a in refused)
    response = httpx.post(f"{url}gradio_api/call/predict", json={"data": [uploaded(url, ASTRONAUT)]}, timeout=30)
    assert response.status_code == 200, response.text
    kind, result = call(url, "predict", [uploaded(url, ASTRONAUT)], timeout=30)
    assert kind == "complete" and result[0]["face_found"] is True, (kind, result)
    assert wait_until_dropped(demo, [answer.json()["event_id"] for answer in accepted]) == []


def test_one_client_fills_the_video_queue(demo: gr.Blocks, url: str, clip: Clip) -> None:
    """One client joins video jobs under new session hashes (or one session from new addresses): one waits."""
    video, index = uploaded(url, clip.path), fn_index(url, "analyze_clip")
    by_address = [join_unread(url, index, [video], "10.0.2.1").status_code for _ in range(3)]
    session = uuid.uuid4().hex
    by_session = [join_unread(url, index, [video], f"10.0.3.{i}", session).status_code for i in range(3)]
    limit = space.server.VIDEO_PER_CLIENT
    assert by_address == [200] * limit + [503] * (3 - limit), by_address
    assert by_session == [200] * limit + [503] * (3 - limit), by_session
    refused = join_unread(url, index, [video], "10.0.2.1")
    assert "you already have" in refused.text, refused.text
    assert wait_until_dropped(demo, list(demo._queue.event_ids_to_events)) == []


def test_abandoned_video_job_holds_the_slot(demo: gr.Blocks, url: str, clip: Clip,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A video job joined and never read is never analysed: it is dropped once unclaimed for CLAIM_S and the
    next user's clip runs at once (it waited 57.5 s behind such a job)."""
    analysed: list[str] = []
    original = space.video_tab.analyze_video

    def recorded(video: str, *args: object, **kwargs: object) -> dict:
        analysed.append(Path(video).name)
        return original(video, *args, **kwargs)

    monkeypatch.setattr(space.video_tab, "analyze_video", recorded)
    abandoned = join_unread(url, fn_index(url, "analyze_clip"), [uploaded(url, clip.path)], "10.0.4.1")
    assert abandoned.status_code == 200, abandoned.text
    assert wait_until_dropped(demo, [abandoned.json()["event_id"]]) == []
    before = list(analysed)
    mine = clip.path.parent / "mine.mp4"
    mine.write_bytes(clip.path.read_bytes() + b"\0")  # other bytes: another name in gradio's cache
    kind, result = call(url, "predict_video", [uploaded(url, mine)], timeout=60)
    assert before == [] and kind == "complete", (before, kind, str(result)[:200])
    assert analysed == ["mine.mp4"], analysed
