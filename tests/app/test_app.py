"""The Gradio app launched on localhost and driven through gradio_client, as an API user would."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio.data_classes import ImageData
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from fer_model import EmotionRecognizer
from fer_model.annotation import draw_faces, label_colours, largest_face
from fer_model.images import ImageLoadError, load_image
from space.header import model_header
from space.uploads import MAX_IMAGE_SIZE
from tests.helpers.app_server import launched_demo
from tests.helpers.image_files import ASTRONAUT, CAT, GROUP, bad_files, no_face_images, odd_images
from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def demo(recognizer: EmotionRecognizer) -> Iterator:
    with launched_demo(recognizer) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(demo) -> Client:
    return Client(demo.local_url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("uploads")
    return bad_files(folder), odd_images(folder)


def check_result(result: dict, labels: list[str]) -> None:
    assert set(result) == {"face_found", "faces"} and isinstance(result["face_found"], bool)
    assert bool(result["faces"]) == result["face_found"], "the faces found, or none: no emotion without a face"
    for face in result["faces"]:
        assert set(face) == {"box", "label", "score", "scores"}
        assert len(face["box"]) == 4 and all(isinstance(v, int) and v >= 0 for v in face["box"])
        assert face["label"] in labels and list(face["scores"]) == labels
        assert 0 < face["score"] <= 1 and sum(face["scores"].values()) == pytest.approx(1, abs=1e-4)


def test_only_predict_and_predict_video_are_public_endpoints(client: Client) -> None:
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/predict",
                                                                                              "/predict_video"}


@pytest.mark.parametrize("photo, faces, found", [(ASTRONAUT, 1, True), (GROUP, 2, True), (CAT, 0, False)])
def test_predict_returns_the_json_schema(client: Client, recognizer: EmotionRecognizer, photo: Path, faces: int,
                                         found: bool) -> None:
    result, annotated = client.predict(handle_file(photo), api_name="/predict")
    check_result(result, recognizer.labels)
    assert len(result["faces"]) == faces and result["face_found"] is found
    assert Image.open(annotated).size == Image.open(photo).size  # the examples are under 1280 px a side


@pytest.mark.parametrize("name", ["text.jpg", "empty.png", "truncated.jpg", "corrupt.png", "bomb.png", "big.png"])
def test_bad_uploads_give_a_readable_error_and_the_app_keeps_answering(client: Client, files: tuple[dict, dict],
                                                                       name: str) -> None:
    path, phrase = files[0][name]
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(path), api_name="/predict")
    message = str(caught.value)
    assert phrase in message and message.startswith("Cannot use this file")
    assert "/tmp" not in message and "Traceback" not in message
    assert client.predict(handle_file(ASTRONAUT), api_name="/predict")[0]["face_found"] is True


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "rgba.png", "palette.png", "animated.gif", "rotated.jpg"])
def test_unusual_encodings_still_find_the_face(client: Client, files: tuple[dict, dict], name: str) -> None:
    result = client.predict(handle_file(files[1][name]), api_name="/predict")[0]
    assert result["face_found"] is True and len(result["faces"]) == 1


def test_large_photos_are_boxed_in_their_own_pixels(client: Client, tmp_path: Path) -> None:
    Image.open(ASTRONAUT).resize((2560, 2560), Image.Resampling.BICUBIC).save(tmp_path / "large.jpg", quality=90)
    small = client.predict(handle_file(ASTRONAUT), api_name="/predict")[0]["faces"][0]["box"]
    result, annotated = client.predict(handle_file(tmp_path / "large.jpg"), api_name="/predict")
    (face,) = result["faces"]
    np.testing.assert_allclose(face["box"], np.array(small) * 5, atol=25)
    assert Image.open(annotated).size == (1280, 1280)  # the annotated copy is at most 1280 px a side


def test_plain_path_strings_are_refused_with_a_hint(client: Client) -> None:
    with pytest.raises(AppError, match="handle_file"):
        client.predict(str(ASTRONAUT), api_name="/predict")


def test_image_uploads_over_the_image_limit_are_refused(client: Client, tmp_path: Path) -> None:
    """The server takes uploads of up to 50 MB (videos); an image over 20 MB is refused before it is decoded."""
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(ASTRONAUT.read_bytes() + bytes(21 * 2**20))  # a valid JPEG, 21 MB with the padding
    with pytest.raises(AppError, match="the image is too large: 21 MB \\(the limit is 20 MB\\)"):
        client.predict(handle_file(huge), api_name="/predict")
    assert client.predict(handle_file(ASTRONAUT), api_name="/predict")[0]["face_found"] is True


def test_queue_is_bounded(demo) -> None:
    """Photo and API share the model's group; the Live stream has its own group of one and a short time limit."""
    guard = demo._queue.queue_guard  # space.queue_guard: one waiting line per group, videos capped per client
    assert guard.waiting["model"] == app.MAX_QUEUE and demo._queue.max_size == sum(guard.waiting.values())
    assert demo.api_open is False  # no /run/ route around the queue
    assert demo._queue.default_concurrency_limit == app.CONCURRENCY
    groups = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values() if fn.queue}
    assert groups["predict"] == groups["analyze"] == ("model", app.CONCURRENCY)
    assert groups["live"] == ("live", 1) and groups["predict_video"] == groups["analyze_clip"] == ("video", 1)
    (live,) = [fn for fn in demo.fns.values() if fn.api_name == "live"]
    assert live.time_limit == app.LIVE_LIMIT_S <= 15 and live.stream_every == app.LIVE_EVERY_S


def test_ui_outputs_for_a_group_photo(recognizer: EmotionRecognizer) -> None:
    image = load_image(GROUP)
    result = recognizer.recognize(image)
    annotated = draw_faces(image, result["faces"], recognizer.labels)
    assert annotated.size == image.size and annotated is not image
    rows = app.table_rows(result["faces"])
    assert [row[0] for row in rows] == [1, 2] and [row[3:] for row in rows] == [f["box"] for f in result["faces"]]
    assert largest_face(result["faces"]) == 1  # Grace Hopper's face is the larger one
    assert "2 faces found" in app.status(result)
    x, y, w, h = result["faces"][0]["box"]
    colour = label_colours(recognizer.labels)[result["faces"][0]["label"]]
    assert np.asarray(annotated)[y + h // 2, x].tolist() == [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


@pytest.mark.parametrize("name", ["blank", "cartoon", "cat photo"])
def test_no_face_through_the_api_gives_no_emotion(client: Client, tmp_path: Path, name: str) -> None:
    no_face_images()[name].save(tmp_path / "picture.png")
    faces, annotated = client.predict(handle_file(tmp_path / "picture.png"), api_name="/predict")
    assert faces == {"face_found": False, "faces": []} and Path(annotated).is_file()


def photo_tab(demo: gr.Blocks):
    """The Photo tab's handler (image, whole_image) -> (annotated, probabilities, table, JSON, status)."""
    (analyze,) = [fn.fn for fn in demo.fns.values() if fn.api_name == "analyze"]
    return analyze


@pytest.mark.parametrize("name", ["blank", "cartoon", "cat photo"])
def test_photo_tab_says_no_face_found_without_emotion_or_box(demo, name: str) -> None:
    image = no_face_images()[name]
    annotated, probabilities, rows, result, message = photo_tab(demo)(image, False)
    assert result == {"face_found": False, "faces": []} and rows == []
    assert message.startswith("**No face found**, so no emotion")
    assert not probabilities.value and probabilities.label == "No face found"  # an empty Label: no emotion
    assert np.array_equal(np.asarray(annotated), np.asarray(image)), "no box drawn"


def test_photo_tab_classifies_the_whole_image_only_when_ticked(demo, recognizer: EmotionRecognizer) -> None:
    image = load_image(CAT)
    annotated, probabilities, rows, result, message = photo_tab(demo)(image, True)
    assert result["face_found"] is False and result["whole_image"] is True and len(rows) == 1
    assert "the whole image was classified instead, as asked" in message
    assert probabilities.label == "Whole image (no face found)"
    assert {item["label"] for item in probabilities.value["confidences"]} == set(recognizer.labels)
    assert np.array_equal(np.asarray(annotated), np.asarray(image)), "no box around the whole image"


def test_read_upload_reads_only_what_gradio_received(tmp_path: Path) -> None:
    """In-process: data: URLs and files in gradio's upload folder are read; any other path gets one answer."""
    data = base64.b64encode(ASTRONAUT.read_bytes()).decode()
    assert app.read_upload(ImageData(url=f"data:image/jpeg;base64,{data}")).size == (512, 512)
    with pytest.raises(gr.Error, match="not valid base64"):
        app.read_upload(ImageData(url="data:image/jpeg;base64,not*base64"))
    for size in (MAX_IMAGE_SIZE - 1, MAX_IMAGE_SIZE):  # the limit itself is allowed, to the byte
        assert len(app.decode_data_url("data:;base64," + base64.b64encode(b"\0" * size).decode())) == size
    with pytest.raises(ImageLoadError, match="too large"):
        app.decode_data_url("data:;base64," + base64.b64encode(b"\0" * (MAX_IMAGE_SIZE + 1)).decode())
    received = Path(get_upload_folder()) / f"test-{os.getpid()}" / "astronaut.jpg"
    received.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ASTRONAUT, received)
    try:
        assert app.read_upload(ImageData(path=str(received))).mode == "RGB"
    finally:
        shutil.rmtree(received.parent)
    for path in (ASTRONAUT, tmp_path / "missing.jpg", tmp_path, received, f"{get_upload_folder()}/../etc/passwd"):
        with pytest.raises(gr.Error) as caught:
            app.read_upload(ImageData(path=str(path)))
        assert caught.value.message == app.NOT_UPLOADED


def test_model_title_never_shows_a_server_path(tiny_model_dir: Path) -> None:
    assert app.model_title(str(tiny_model_dir)) == tiny_model_dir.name
    assert app.model_title("fer-vgg16/fer-vgg16") == "fer-vgg16/fer-vgg16"  # a Hub id, as given


def test_model_source_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The app resolves its model as the CLI does (fer_model.model_source: tests/model/test_model_source.py)."""
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "env"))
    assert app.resolve_model_source(str(tmp_path / "cli")) == str(tmp_path / "cli")
    assert app.resolve_model_source() == str(tmp_path / "env")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="cannot start without a model(.|\n)*Tried, in order: --model "):
        app.resolve_model_source("nobody/not-cached-model")


def test_cached_hub_snapshots_are_titled_by_their_repo_id(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--owner--name" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert app.model_title(str(snapshot)) == "owner/name"


def test_module_level_demo_is_built_once_at_import() -> None:
    """`demo` exists at import (Spaces, `gradio app.py`), around the model resolve_model_source() names."""
    assert isinstance(app.demo, gr.Blocks) and app.MODEL_SOURCE == app.resolve_model_source()
    header = next(block.value for block in app.demo.blocks.values() if isinstance(block, gr.Markdown))
    assert f"Model: `{app.model_title(app.MODEL_SOURCE)}`" in header
    assert {fn.api_name for fn in app.demo.fns.values() if fn.api_visibility == "public"} == {"predict",
                                                                                             "predict_video"}


def test_app_without_a_model_stops_with_instructions(tmp_path: Path) -> None:
    env = {**os.environ, "FER_MODEL": str(tmp_path / "no-model-here"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(REPO / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no-model-here" in done.stderr and "FER_MODEL" in done.stderr and "--model" in done.stderr


def test_app_serves_the_folders_int8_onnx_by_default(tiny_model_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the CLI: the folder's model_int8.onnx (when it belongs to its weights) unless --no-onnx or FER_ONNX=none;
    the header says which runs."""
    from fer_model.loading import load_model
    from fer_model.onnx_runtime import INT8_FILENAME, OnnxClassifier, export_onnx

    folder = shutil.copytree(tiny_model_dir, tmp_path / "with-onnx")
    export_onnx(load_model(folder)[0], folder / INT8_FILENAME)  # fingerprinted (fp32 here: quicker, same policy)
    monkeypatch.delenv("FER_ONNX", raising=False)
    served = app.load_recognizer(str(folder))
    assert isinstance(served.runtime, OnnxClassifier) and "run by onnxruntime (`model_int8.onnx`)" in \
        model_header(str(folder), served)
    args = app.parse_args(["--model", str(folder), "--no-onnx"])
    assert not isinstance(app.load_recognizer(str(folder), "none", args.onnx, args.no_onnx).runtime, OnnxClassifier)
    monkeypatch.setenv("FER_ONNX", "none")
    assert not isinstance(app.load_recognizer(str(folder)).runtime, OnnxClassifier)
    with pytest.raises(SystemExit):
        app.parse_args(["--onnx", "x.onnx", "--no-onnx"])  # one or the other
