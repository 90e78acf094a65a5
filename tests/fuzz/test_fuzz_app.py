"""Fuzzing and hardening checks of the Space (app.py) on 127.0.0.1, through HTTP as a user or a script would.

Damaged and random files go to the `predict` endpoint both through gradio_client (the real HTTP path: upload,
queue, SSE) and, for more examples per second, in-process: the endpoint's input component's preprocessing (the
app's guard and loader) on a file in gradio's upload folder, then its function. Every failure
must be a gradio error with a readable message (no server path, no stack trace) within 2 s, and the app
must still answer a good photo afterwards. Also: decompression bombs over the API, the upload size limit
and the queue limit over HTTP, internal errors, URLs and server paths sent instead of uploads, and that
nothing in the UI or the API lets a user choose the model.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio.data_classes import ImageData
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app
import space.server
from fer_model import EmotionRecognizer
from fer_model.images import load_image
from tests.helpers.app_server import launched_demo
from tests.helpers.fuzz_inputs import (
    BOMB_WRITERS,
    COUNTS,
    PER_CALL_LIMIT_S,
    FuzzFile,
    assert_user_readable,
    check_schema,
    damaged_files,
    peak_rss_mb,
    random_bytes,
    real_png_bomb,
    record_counts,
)
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.network import free_port

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])
SECRET_DIR = "client-side-folder-51c9"
READABLE_PREFIXES = ("Cannot use this file: ", "Not an uploaded image: ")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # PIL warns about each corrupt block


@pytest.fixture(scope="module", autouse=True)
def counts() -> Iterator[None]:
    yield
    print("\nfuzz inputs tried:", record_counts())


@pytest.fixture(scope="module")
def demo(recognizer: EmotionRecognizer) -> Iterator[gr.Blocks]:
    with launched_demo(recognizer) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(demo: gr.Blocks) -> Client:
    return Client(demo.local_url, verbose=False)


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uploads") / SECRET_DIR
    folder.mkdir()
    return folder


def predict_in_process(demo: gr.Blocks, payload: dict) -> dict:
    """The `predict` endpoint without HTTP: its input component's preprocessing, then its function; the faces JSON
    of its (faces, annotated image)."""
    (block_fn,) = [fn for fn in demo.fns.values() if fn.api_name == "predict"]
    (component,) = block_fn.inputs
    return block_fn.fn(component.preprocess(ImageData(**payload)))[0]


@pytest.fixture(scope="module")
def received_dir() -> Iterator[Path]:
    """A folder inside gradio's upload folder: where the server finds what it received."""
    folder = Path(get_upload_folder()) / f"fuzz-{os.getpid()}" / SECRET_DIR
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    shutil.rmtree(folder.parent, ignore_errors=True)


def assert_answers_a_good_photo(client: Client) -> None:
    assert client.predict(handle_file(ASTRONAUT), api_name="/predict")[0]["face_found"] is True


def fuzz_inputs(max_side: int) -> st.SearchStrategy[FuzzFile]:
    """Damaged image files, and random bytes dressed as a file."""
    junk = st.builds(lambda data: FuzzFile("bytes", "-", (0, 0), "random", data), random_bytes())
    return st.one_of(damaged_files(max_side=max_side), junk)


def test_predict_over_http_on_damaged_and_random_files(client: Client, recognizer: EmotionRecognizer,
                                                       upload_dir: Path) -> None:
    @settings(max_examples=60, **FUZZ)
    @given(fuzz_inputs(max_side=300))
    def fuzz(file: FuzzFile) -> None:
        COUNTS["app over HTTP (gradio_client): damaged files / random bytes"] += 1
        path = upload_dir / f"upload.{file.fmt.lower()}"
        path.write_bytes(file.data)
        start = time.perf_counter()
        try:
            result = client.predict(handle_file(path), api_name="/predict")[0]
        except AppError as error:
            message = str(error)
            assert message.startswith(READABLE_PREFIXES), message
            assert_user_readable(message, upload_dir, SECRET_DIR)
            assert file.damage != "intact", message
        else:
            check_schema(result, recognizer.labels, load_image(path).size)  # boxes in the upload's pixels
        elapsed = time.perf_counter() - start
        assert elapsed < PER_CALL_LIMIT_S, f"{file}: {elapsed:.2f} s"

    fuzz()
    assert_answers_a_good_photo(client)


@settings(max_examples=300, **FUZZ)
@given(file=fuzz_inputs(max_side=600))
def test_predict_in_process_on_damaged_and_random_files(demo: gr.Blocks, recognizer: EmotionRecognizer,
                                                        received_dir: Path, file: FuzzFile) -> None:
    COUNTS["app in-process (predict's preprocessing + function): damaged files / random bytes"] += 1
    path = received_dir / f"inproc.{file.fmt.lower()}"
    path.write_bytes(file.data)
    start = time.perf_counter()
    try:
        result = predict_in_process(demo, {"path": str(path)})
    except gr.Error as error:
        assert error.message.startswith(READABLE_PREFIXES[0]), error.message
        assert_user_readable(error.message, received_dir, SECRET_DIR)
        assert file.damage != "intact", error.message
    else:
        check_schema(result, recognizer.labels, load_image(path).size)
    assert time.perf_counter() - start < PER_CALL_LIMIT_S


@pytest.mark.parametrize("fmt", list(BOMB_WRITERS) + ["real png"])
def test_bombs_are_refused_over_the_api(client: Client, upload_dir: Path, fmt: str) -> None:
    """The app runs in this process, so its peak memory is ours: it must not jump by a decoded image."""
    COUNTS["bombs: app over HTTP"] += 1
    path = upload_dir / f"bomb.{fmt.split()[-1]}"
    path.write_bytes(real_png_bomb() if fmt == "real png" else BOMB_WRITERS[fmt](40_000, 40_000))
    peak_before = peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(AppError, match="Cannot use this file: the image is too large") as caught:
        client.predict(handle_file(path), api_name="/predict")
    assert time.perf_counter() - start < PER_CALL_LIMIT_S
    assert peak_rss_mb() - peak_before < 50
    assert "megapixels" in str(caught.value)
    assert_user_readable(str(caught.value), upload_dir)
    assert_answers_a_good_photo(client)


def test_uploads_over_the_limit_are_refused_by_the_server(demo: gr.Blocks, client: Client) -> None:
    """Straight to the upload route (gradio_client checks the size itself before sending): over the video limit
    (MAX_FILE_SIZE, the largest upload; images are held to 20 MB when read, test_security.py)."""
    body = b"\xff\xd8\xff" + b"\0" * (app.MAX_FILE_SIZE + 1024)
    response = httpx.post(f"{demo.local_url}gradio_api/upload", files={"files": ("big.jpg", body, "image/jpeg")},
                          timeout=60)
    assert response.status_code == 413
    assert f"File size exceeded maximum allowed size of {app.MAX_FILE_SIZE} bytes" in response.text
    assert_user_readable(response.text)
    assert_answers_a_good_photo(client)


@pytest.mark.parametrize("show_error", [False, True])
def test_internal_errors_reach_users_as_a_plain_message(demo: gr.Blocks, client: Client,
                                                        recognizer: EmotionRecognizer,
                                                        monkeypatch: pytest.MonkeyPatch, show_error: bool) -> None:
    """An unexpected failure inside the model (its text holding a server path) is not shown as is, even with
    show_error=True (gradio's default when the app is mounted in FastAPI rather than launched)."""
    def broken(image: object, **options: object) -> dict:
        raise RuntimeError("/srv/secret/model.safetensors: cv2 error in /io/opencv/resize.cpp")

    monkeypatch.setattr(demo, "show_error", show_error)
    monkeypatch.setattr(recognizer, "recognize", broken)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(ASTRONAUT), api_name="/predict")
    message = str(caught.value)
    assert message.startswith("Could not analyse this image: an internal error occurred")
    assert_user_readable(message, "/srv/secret", "resize.cpp")
    monkeypatch.undo()
    assert_answers_a_good_photo(client)


def test_urls_are_not_fetched(demo: gr.Blocks, client: Client) -> None:
    """A URL sent instead of a file is not downloaded by the server (no request reaches a loopback server)."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requests.append(format % args)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler,
                                                                                directory=str(ASTRONAUT.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{ASTRONAUT.name}"
    try:
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(url), api_name="/predict")
        assert_user_readable(str(caught.value))
        with pytest.raises(gr.Error, match="Not an uploaded image"):
            predict_in_process(demo, {"path": None, "url": url})
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []
    assert_answers_a_good_photo(client)


def test_server_paths_sent_as_files_are_refused_without_showing_them(demo: gr.Blocks, tmp_path: Path) -> None:
    """A raw API call naming a server file (not an upload) is refused by gradio; the error names no path."""
    secret = tmp_path / "private.jpg"
    secret.write_bytes(ASTRONAUT.read_bytes())
    for path in (str(secret), "/etc/passwd", "../../etc/passwd"):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
        event_id = httpx.post(f"{demo.local_url}gradio_api/call/predict", json=payload, timeout=30).json()["event_id"]
        stream = httpx.get(f"{demo.local_url}gradio_api/call/predict/{event_id}", timeout=30).text
        assert stream.startswith("event: error"), stream
        assert "face_found" not in stream and path not in stream and "private" not in stream
        assert_user_readable(stream)


def test_a_full_queue_refuses_with_a_message(recognizer: EmotionRecognizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_QUEUE is enforced: with the queue shrunk to 2 and one slow worker, the surplus is refused at once."""
    monkeypatch.setattr(space.server, "MAX_QUEUE", 2)  # read by queue_every_event
    monkeypatch.setattr(app, "CONCURRENCY", 1)
    original = recognizer.recognize

    def slow(image: object, **options: object) -> dict:
        time.sleep(1.0)  # long enough that all 6 requests arrive while the first still runs
        return original(image, **options)

    monkeypatch.setattr(recognizer, "recognize", slow)
    demo = app.build_demo(recognizer, "slow")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        jobs = [client.submit(handle_file(ASTRONAUT), api_name="/predict") for _ in range(6)]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(job.result(timeout=30)[0]["face_found"])
            except Exception as error:  # gradio_client raises QueueError (not an AppError) for a full queue
                outcomes.append(str(error))
    finally:
        demo.close()
    assert outcomes.count(True) >= 3  # one running + two waiting
    refused = [o for o in outcomes if o is not True]
    assert refused and all(o == "Queue is full! Please try again." for o in refused), outcomes


def test_no_ui_or_api_input_chooses_the_model(demo: gr.Blocks, client: Client) -> None:
    """The model is fixed at start-up (--model / FER_MODEL): the only inputs are images, the examples, the results
    JSON (whose row selection shows another face's probabilities) and the Photo tab's whole-image checkbox."""
    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == ["/predict", "/predict_video"] and not api["unnamed_endpoints"]
    for name, parameter_name in [("/predict", "image"), ("/predict_video", "video")]:
        (parameter,) = api["named_endpoints"][name]["parameters"]
        assert parameter["parameter_name"] == parameter_name and parameter["python_type"]["type"] == "filepath"
    config = demo.get_config_file()
    types = {component["id"]: component["type"] for component in config["components"]}
    checkboxes = [c["props"].get("elem_id") for c in config["components"] if c["type"] == "checkbox"]
    assert checkboxes == ["whole-image"]  # one yes/no: classify the whole image when no face is found
    free_text = {"textbox", "dropdown", "radio", "checkboxgroup", "number", "slider", "code",
                 "uploadbutton", "multimodaltextbox"}  # a "file" is only an output (the Video tab's CSV): inputs below
    assert not free_text & set(types.values()), sorted(set(types.values()))
    inputs = {types[i] for dependency in config["dependencies"] for i in dependency["inputs"] if i in types}
    assert inputs <= {"image", "video", "json", "dataset", "api", "checkbox"}, inputs  # dataset: gr.Examples
