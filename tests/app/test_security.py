"""The attacks of issue 10, replayed over HTTP against the app launched on 127.0.0.1 (a random-init model).

Each test is named after the attack it replays and sends what an attacker sends with curl: file objects with
and without gradio's `meta`, data: URLs, any fn_index (the Photo tab's `analyze` and the Live tab's `live`
are called the way the browser calls them), streams that are joined and then dropped. Bounded: a few dozen
requests, every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio.processing_utils
import httpx
import pytest
from PIL import Image

import app
import space.server
from fer_model import EmotionRecognizer
from tests.helpers.app_server import (
    FILE_META,
    assert_one_generic_refusal,
    call,
    data_url,
    drop_stream,
    fn_index,
    join,
    launched_demo,
    outcome,
    queue_messages,
    run_event,
    upload,
)
from tests.helpers.fuzz_inputs import real_png_bomb
from tests.helpers.image_files import ASTRONAUT

ENDPOINTS = ["predict", "analyze", "live"]  # the public API, the Photo tab's event, the Live tab's stream
NOT_UPLOADED = "Not an uploaded image"


def send(url: str, endpoint: str, value: dict) -> tuple[str, object]:
    """One image input to an endpoint: ("complete", outputs) or ("error", message)."""
    if endpoint == "predict":
        return call(url, "predict", [value])
    extra = [False] if endpoint == "analyze" else []  # the Photo tab's whole-image checkbox, unticked
    return outcome(run_event(url, fn_index(url, endpoint), [value, *extra]))


def uploaded(url: str, path: Path) -> dict:
    """A file object as gradio_client and the browser send it: uploaded first, then named with meta."""
    return {"path": upload(url, path), "meta": FILE_META, "orig_name": path.name}


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths on the server that no request uploaded: an image, a text file, a folder, nothing."""
    folder = tmp_path_factory.mktemp("server-side")
    (folder / "private.jpg").write_bytes(ASTRONAUT.read_bytes())
    (folder / "notes.txt").write_text("not for users\n")
    return {"image": str(folder / "private.jpg"), "text": str(folder / "notes.txt"), "folder": str(folder),
            "missing": str(folder / "missing.jpg")}


@pytest.mark.parametrize("with_meta", [False, True], ids=["path only", "path + meta"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_arbitrary_server_file_read(url: str, server_files: dict[str, str], endpoint: str, with_meta: bool) -> None:
    """Attack 1: a file object naming a server path is refused by every endpoint with one answer, whatever the
    path holds (no image read back, no "file not found" / "folder" oracle)."""
    meta = {"meta": FILE_META} if with_meta else {}
    answers = {name: send(url, endpoint, {"path": path, **meta}) for name, path in server_files.items()}
    assert_one_generic_refusal(answers, server_files, "image", NOT_UPLOADED, with_meta)


def test_server_file_read_after_an_example_is_loaded(url: str, server_files: dict[str, str]) -> None:
    """Attack 1 in a session whose Photo input gradio has re-created from its class (loading an example sends
    an update): the guard still holds there."""
    session_hash, _ = join(url, fn_index(url, "load_example"), [0])
    assert outcome(queue_messages(url, session_hash, {"process_completed"}, 30)[-1])[0] == "complete"
    join(url, fn_index(url, "analyze"), [{"path": server_files["image"]}, False], session_hash)
    kind, message = outcome(queue_messages(url, session_hash, {"process_completed"}, 30)[-1])
    assert kind == "error" and str(message).startswith(NOT_UPLOADED), (kind, str(message)[:200])


def test_url_file_objects_are_downloaded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found with attack 1: a file object whose path is a public http(s) URL is downloaded by gradio into its
    cache (no size limit) and was then read as an upload. No endpoint fetches a URL now. (The server runs in
    this process: gradio's download function is replaced by one that records the call and serves the photo.)"""
    fetched: list[str] = []

    async def download(address: str, cache_dir: str) -> str:
        fetched.append(address)
        copy = Path(cache_dir) / f"fetched-{time.time_ns()}" / "face.jpg"
        copy.parent.mkdir(parents=True)
        copy.write_bytes(ASTRONAUT.read_bytes())
        return str(copy)

    monkeypatch.setattr(gradio.processing_utils, "async_ssrf_protected_download", download)
    for endpoint in ENDPOINTS:
        kind, message = send(url, endpoint, {"path": "https://example.com/face.jpg", "meta": FILE_META})
        assert kind == "error" and str(message).startswith(NOT_UPLOADED), (endpoint, kind, str(message)[:200])
    assert fetched == []


def test_dropped_live_streams_hold_the_model(url: str) -> None:
    """Attack 2: two Live streams joined and dropped (no cancel) neither delay `predict` nor keep the stream
    slot for long: a new stream starts within twice the stream time limit."""
    live, frame = fn_index(url, "live"), {"url": data_url(ASTRONAUT.read_bytes())}
    for _ in range(2):
        drop_stream(url, live, [frame], read_s=1.0)
    kind, result = call(url, "predict", [uploaded(url, ASTRONAUT)], timeout=15)
    assert kind == "complete" and result[0]["face_found"] is True, f"predict behind two dropped streams: {kind}"
    session_hash, event_id = join(url, live, [frame])
    bound = 2 * app.LIVE_LIMIT_S + 5
    messages = queue_messages(url, session_hash, {"process_starts"}, timeout=bound)
    httpx.post(f"{url}gradio_api/stream/{event_id}/close", timeout=30)
    assert messages and messages[-1]["msg"] == "process_starts", f"no stream slot within {bound} s: {messages}"


def test_queue_bypass_through_the_run_routes(url: str) -> None:
    """Attack 3: /gradio_api/run/ and /api/ would run the model outside the queue and its limits."""
    image = uploaded(url, ASTRONAUT)
    every_event = [dependency["id"] for dependency in httpx.get(f"{url}config", timeout=30).json()["dependencies"]]
    assert len(every_event) >= 7  # predict, analyze, live, select_face, gradio's example loader, the 2 video events
    named = [("run/predict", None), ("api/predict", None), ("run/predict_video", None), ("api/predict_video", None)]
    for route, index in named + [("run/x", i) for i in every_event]:
        response = httpx.post(f"{url}gradio_api/{route}", json={"data": [image], "fn_index": index}, timeout=60)
        assert response.status_code == 404 and "join the queue" in response.text, (route, index, response.text)
    assert call(url, "predict", [image])[0] == "complete"  # the queue's own routes still answer


FOREIGN_FORMATS = ["PCX", "PPM", "TGA", "ICO", "64 MP PNG"]


@pytest.mark.parametrize("fmt", FOREIGN_FORMATS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_live_frames_skip_the_loader_guards(url: str, tmp_path: Path, endpoint: str, fmt: str) -> None:
    """Attack 4: formats outside the six, and images over 50 MP, are refused by every endpoint, uploaded or
    sent inline (the browser streams webcam frames as data: URLs)."""
    astronaut = Image.open(ASTRONAUT).convert("RGB").resize((256, 256))
    data = real_png_bomb(8000) if fmt == "64 MP PNG" else encoded(astronaut, fmt)
    path = tmp_path / f"frame.{fmt.split()[-1].lower()}"
    path.write_bytes(data)
    phrase = "too large" if fmt == "64 MP PNG" else "not an image file that can be read"
    for value in ({"url": data_url(data, "image/png")}, uploaded(url, path)):
        kind, message = send(url, endpoint, value)
        assert kind == "error" and phrase in str(message), (endpoint, fmt, kind, str(message)[:200])


def test_data_urls_bypass_the_upload_limit(url: str) -> None:
    """Attack 5: a 25 MB data: URL (a valid JPEG with padding) is refused like a 25 MB upload, before decoding:
    its request body is over the JSON limit (space.gate.BODY_LIMITS), answered 413 before it is read."""
    padded = ASTRONAUT.read_bytes() + b"\0" * (25 * 2**20)
    for route, body in [("call/predict", {"data": [{"url": data_url(padded)}]}),
                        ("queue/join", {"data": [{"url": data_url(padded)}], "fn_index": fn_index(url, "analyze"),
                                        "session_hash": "s"})]:
        response = httpx.post(f"{url}gradio_api/{route}", json=body, timeout=60)
        assert response.status_code == 413 and "images of at most 20 MB" in response.text, response.text[:200]


def test_bad_base64_gets_a_readable_error(url: str) -> None:
    """Minor: a data: URL that is not base64 says so, not the library's "Incorrect padding."."""
    for body in ("abc", "not*base64"):
        kind, message = send(url, "predict", {"url": f"data:image/jpeg;base64,{body}"})
        assert kind == "error" and "base64" in str(message) and "padding" not in str(message), message


def test_uploads_and_outputs_stay_in_the_cache(recognizer: EmotionRecognizer, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """Attack 6: uploads and annotated outputs are deleted from gradio's cache once older than its age limit
    (space.server.DELETE_CACHE, shortened here to a 1 s sweep of files older than 1 s). The examples' copies stay."""
    monkeypatch.setattr(space.server, "DELETE_CACHE", (1, 1))
    photo = tmp_path / f"photo-{time.time_ns()}.png"  # new content: gradio names cached files by their hash
    Image.open(ASTRONAUT).rotate(time.time_ns() % 360).save(photo)
    with launched_demo(recognizer) as demo:
        image = uploaded(demo.local_url, photo)
        kind, outputs = send(demo.local_url, "analyze", image)
        assert kind == "complete", outputs
        files = [Path(image["path"]), Path(outputs[0]["path"])]  # the upload and the annotated copy
        example = Path(uploaded(demo.local_url, ASTRONAUT)["path"])  # the same bytes as the example's copy
        deadline = time.monotonic() + 8
        while any(file.exists() for file in files) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not any(file.exists() for file in files), files
        assert example.is_file()  # kept while the app runs: the Photo tab's examples must still load


def test_cache_sweeps_stop_once_a_request_races_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 6 on a busy server: gradio 6.31's own delete_cache schedule ends for good the first time a request
    adds a file during a sweep (RuntimeError: set changed size), so the cache grew without bound under load
    (benchmarks/soak.py); the app's schedule runs the next sweep anyway. (The schedule alone, in-process.)"""
    ages: list[float] = []

    def sweep(blocks: object, age: float) -> None:
        ages.append(age)
        if len(ages) == 1:
            raise RuntimeError("Set changed size during iteration")

    monkeypatch.setattr(space.server, "delete_files_created_by_app", sweep)
    monkeypatch.setattr(space.server, "DELETE_CACHE", (0.1, 7))

    async def serve_for_a_second() -> None:
        async with space.server.sweep_cache(SimpleNamespace(get_blocks=lambda: None)):
            await asyncio.sleep(1.0)

    asyncio.run(serve_for_a_second())
    assert len(ages) >= 3 and set(ages) == {7}, ages


def test_every_session_keeps_its_inputs_in_memory(recognizer: EmotionRecognizer) -> None:
    """Attack 6, memory: gradio keeps each session's last inputs (a data: URL in full) for its 10,000 latest
    sessions, and every API call is a session; the app keeps SESSIONS_KEPT of them."""
    tiny = {"url": data_url(encoded(Image.new("L", (48, 48), 128), "JPEG"))}
    with launched_demo(recognizer) as demo, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: call(demo.local_url, "predict", [tiny])[0], range(app.SESSIONS_KEPT + 12)))
        assert answers == ["complete"] * (app.SESSIONS_KEPT + 12)
        assert len(demo.state_holder.session_data) <= app.SESSIONS_KEPT


def test_nameless_upload_is_a_client_error(url: str) -> None:
    """Minor: an upload with an empty file name is answered 400 with a reason, not 500."""
    response = httpx.post(f"{url}gradio_api/upload", files={"files": ("", b"\xff\xd8\xff")}, timeout=30)
    assert response.status_code == 400 and "file name" in response.text, (response.status_code, response.text)


def test_unknown_endpoints_are_a_client_error(url: str) -> None:
    """Minor: an unknown fn_index or api_name is answered 404 with a reason, not 500."""
    for route, body in [("queue/join", {"data": [], "fn_index": 999, "session_hash": "x"}),
                        ("run/predict", {"data": [], "fn_index": 999}), ("call/no_such_endpoint", {"data": []})]:
        response = httpx.post(f"{url}gradio_api/{route}", json=body, timeout=30)
        assert response.status_code == 404 and "endpoint" in response.text, (route, response.status_code,
                                                                             response.text)


def test_header_prints_the_model_server_path(recognizer: EmotionRecognizer, tiny_model_dir: Path) -> None:
    """Minor: the page names the model folder, not where it lies on the server."""
    with launched_demo(recognizer, str(tiny_model_dir)) as demo:
        page = httpx.get(f"{demo.local_url}config", timeout=30).text
    assert tiny_model_dir.name in page and str(tiny_model_dir.parent) not in page
