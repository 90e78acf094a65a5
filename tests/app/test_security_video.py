"""The attacks of issue 10 replayed against the video endpoints (the public `predict_video` and the Video tab's
`analyze_clip`, called the way the browser calls it), over HTTP against the app launched on 127.0.0.1, plus the
video's own: a playlist naming a server file, a clip over the duration limit, an analysis that would never end,
a video that would hold the model. Each test is named after the attack it replays; bounded in count and time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio.processing_utils
import httpx
import numpy as np
import pytest

import space.video_tab
from fer_model import EmotionRecognizer
from space.uploads import MAX_VIDEO_SIZE
from tests.helpers.app_server import (
    FILE_META,
    assert_one_generic_refusal,
    call,
    data_url,
    fn_index,
    outcome,
    run_event,
    upload,
)
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.video_clips import Clip, moving_faces_clip, write_video

ENDPOINTS = ["predict_video", "analyze_clip"]  # the public API, the Video tab's event
NOT_UPLOADED = "Not an uploaded video"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return moving_faces_clip(tmp_path_factory.mktemp("clip") / "short.mp4", seconds=0.3, enter_leave=(9, 9))


def send(url: str, endpoint: str, value: dict, timeout: float = 60) -> tuple[str, object]:
    """One video input to an endpoint: ("complete", outputs) or ("error", message)."""
    if endpoint == "predict_video":
        return call(url, "predict_video", [value], timeout=timeout)
    return outcome(run_event(url, fn_index(url, endpoint), [value], timeout=timeout))


def uploaded(url: str, path: Path) -> dict:
    return {"path": upload(url, path), "meta": FILE_META, "orig_name": path.name}


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory, clip: Clip) -> dict[str, str]:
    """Paths on the server that no request uploaded: a video, an image, a text file, a folder, nothing."""
    folder = tmp_path_factory.mktemp("server-side")
    (folder / "private.mp4").write_bytes(clip.path.read_bytes())
    (folder / "private.jpg").write_bytes(ASTRONAUT.read_bytes())
    (folder / "notes.txt").write_text("not for users\n")
    return {"video": str(folder / "private.mp4"), "image": str(folder / "private.jpg"),
            "text": str(folder / "notes.txt"), "folder": str(folder), "missing": str(folder / "missing.mp4")}


@pytest.mark.parametrize("with_meta", [False, True], ids=["path only", "path + meta"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_arbitrary_server_file_read(url: str, server_files: dict[str, str], endpoint: str, with_meta: bool) -> None:
    """Attack 1, video: a file object naming a server path gets one answer, whatever the path holds (no video
    analysed and sent back, no "file not found" / "folder" oracle)."""
    meta = {"meta": FILE_META} if with_meta else {}
    answers = {name: send(url, endpoint, {"path": path, **meta}) for name, path in server_files.items()}
    assert_one_generic_refusal(answers, server_files, "video", NOT_UPLOADED, with_meta)


def test_url_file_objects_are_downloaded(url: str, clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 1, video: a file object naming an http(s) URL is neither downloaded (gradio would, with no size
    limit) nor analysed. (The server runs in this process: gradio's download function records any call.)"""
    fetched: list[str] = []

    async def download(address: str, cache_dir: str) -> str:
        fetched.append(address)
        copy = Path(cache_dir) / f"fetched-{time.time_ns()}" / "clip.mp4"
        copy.parent.mkdir(parents=True)
        copy.write_bytes(clip.path.read_bytes())
        return str(copy)

    monkeypatch.setattr(gradio.processing_utils, "async_ssrf_protected_download", download)
    for endpoint in ENDPOINTS:
        for value in ({"path": "https://example.com/clip.mp4", "meta": FILE_META}, {"path": "https://example.com/c"}):
            kind, message = send(url, endpoint, value)
            assert kind == "error" and str(message).startswith(NOT_UPLOADED), (endpoint, kind, str(message)[:200])
    assert fetched == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_data_urls_bypass_the_upload_limit(url: str, clip: Clip, endpoint: str) -> None:
    """Attack 5, video: an inline data: URL is never decoded for a video (uploads only: the upload route holds the
    size limit), even a valid clip; refused at once."""
    start = time.monotonic()
    kind, message = send(url, endpoint, {"url": data_url(clip.path.read_bytes(), "video/mp4")})
    assert kind == "error" and str(message).startswith(NOT_UPLOADED), (kind, str(message)[:200])
    assert time.monotonic() - start < 10


def test_oversize_video_uploads(url: str, tmp_path: Path) -> None:
    """Oversize, video: a file over 50 MB is refused by the upload route (413) before any endpoint sees it."""
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as file:
        file.truncate(MAX_VIDEO_SIZE + 1)
    with huge.open("rb") as file:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("huge.mp4", file)}, timeout=120)
    assert response.status_code == 413 and "maximum allowed size" in response.text, response.text[:200]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_non_video_data_sent_as_a_video(url: str, clip: Clip, tmp_path: Path, endpoint: str) -> None:
    """Non-video data, video: text, a photo, an empty file and an HLS playlist naming a video on the server (which
    ffmpeg would follow and read) are refused as not videos; nothing is analysed."""
    files = {"text.mp4": b"not a video\n" * 100, "photo.mp4": ASTRONAUT.read_bytes(), "empty.mp4": b"",
             "playlist.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{clip.path}\n"
                              "#EXT-X-ENDLIST\n".encode()}
    phrases = {"text.mp4": "not a video file", "photo.mp4": "not a video file", "empty.mp4": "the file is empty",
               "playlist.m3u8": "not a video file"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        kind, message = send(url, endpoint, uploaded(url, tmp_path / name))
        assert kind == "error" and phrases[name] in str(message), (name, kind, str(message)[:200])
        assert str(message).startswith("Cannot use this video"), message


def test_long_video_is_refused_before_decoding(url: str, recognizer: EmotionRecognizer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Duration, video: a clip over 60 s is refused from its container's header: no frame reaches the model."""
    frames = [np.full((64, 64, 3), 120, np.uint8)] * 61
    long_clip = write_video(tmp_path / "long.mp4", frames, fps=1)  # 61 s
    calls: list[int] = []
    monkeypatch.setattr(recognizer, "recognize", lambda image: calls.append(1))
    start = time.monotonic()
    kind, message = send(url, "predict_video", uploaded(url, long_clip))
    assert kind == "error" and "too long: 61.0 s (the limit is 60 s)" in str(message), message
    assert calls == [] and time.monotonic() - start < 15


def test_endless_video_analysis(url: str, clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    """Time limit, video: an analysis that outlasts VIDEO_TIME_LIMIT_S (0 s here) is stopped with a message."""
    monkeypatch.setattr(space.video_tab, "VIDEO_TIME_LIMIT_S", 0.0)
    kind, message = send(url, "predict_video", uploaded(url, clip.path))
    assert kind == "error" and "time limit" in str(message), message


def test_video_analysis_holds_the_model(url: str, clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    """Denial of service, video: while a (slowed) analysis runs, `predict` keeps answering: the video has its own
    queue group of one."""
    analyze, started = space.video_tab.analyze_video, threading.Event()

    def slow_analyze(*args: object, **kwargs: object) -> dict:
        started.set()
        time.sleep(6)
        return analyze(*args, **kwargs)

    monkeypatch.setattr(space.video_tab, "analyze_video", slow_analyze)
    video = uploaded(url, clip.path)
    answers: list[tuple] = []
    running = threading.Thread(target=lambda: answers.append(send(url, "predict_video", video, timeout=120)))
    running.start()
    assert started.wait(30)
    begun = time.monotonic()
    kind, result = call(url, "predict", [{"path": upload(url, ASTRONAUT), "meta": FILE_META}], timeout=15)
    assert kind == "complete" and result[0]["face_found"] is True and time.monotonic() - begun < 6
    assert running.is_alive()  # predict answered while the video was still being analysed
    running.join(120)
    assert answers and answers[0][0] == "complete", answers
