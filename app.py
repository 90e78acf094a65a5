"""FER-VGG16 Space: every face in a photo or a webcam stream, boxed and labelled with its emotion.

    python app.py [--model HUB_ID_OR_FOLDER] [--tta none|flip|10crop] [--onnx MODEL.onnx]

`demo` is built once, at import (as Spaces and `gradio app.py` expect), around the model from --model, else
FER_MODEL, else ../shared/models/fer-vgg16 if present, else the Hub model. fer_model does the work; this file
is the UI and its guards (README, Reliability). API: `predict`, an image file in, the faces as JSON out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import ctypes
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import gradio as gr
from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from gradio.data_classes import ImageData
from gradio.route_utils import FnIndexInferError, delete_files_created_by_app
from gradio.utils import get_upload_folder, is_in_or_equal
from gradio_client.utils import is_http_url_like
from PIL import Image
from pydantic import ConfigDict, model_validator

from fer_model import DEFAULT_MODEL_ID, EmotionRecognizer
from fer_model.annotation import draw_faces, largest_face
from fer_model.images import MAX_SIDE, ImageLoadError, fit_within, load_image
from fer_model.tta import TTA_MODES

ROOT = Path(__file__).resolve().parent
LOCAL_RELEASE = ROOT.parent / "shared" / "models" / "fer-vgg16"
EXAMPLES = [ROOT / "examples" / name for name in ("astronaut.jpg", "group.jpg", "grace_hopper.jpg", "coffee.jpg")]
CONCURRENCY = 2  # photo/API requests run at once: the model already uses every core of a small CPU Space
MAX_QUEUE = 32  # requests waiting beyond this are refused with "queue full" rather than piling up
MAX_FILE_SIZE = 20 * 2**20  # bytes: larger uploads are refused by gradio, larger data: URLs before decoding
LIVE_EVERY_S = 0.5  # the webcam sends one frame every 0.5 s
LIVE_LIMIT_S = 10  # a stream holds its slot 10 s, then the browser queues again; a vanished client no longer
SESSIONS_KEPT = 8  # gradio keeps each session's last inputs (a data: URL in full) for its 10,000 latest by default
DELETE_CACHE = (60, 300)  # every 60 s, the uploads and outputs gradio cached over 5 minutes ago are deleted
TABLE_HEADERS = ["face", "emotion", "confidence", "x", "y", "width", "height"]
NOT_UPLOADED = ("Not an uploaded image: send the image itself (from gradio_client: handle_file('photo.jpg')); "
                "server paths and URLs are not read.")


def resolve_model_source(cli_value: str | None = None) -> str:
    """--model, else FER_MODEL, else the shared release folder when present, else the Hub model."""
    local = str(LOCAL_RELEASE) if (LOCAL_RELEASE / "config.json").is_file() else DEFAULT_MODEL_ID
    return cli_value or os.environ.get("FER_MODEL") or local


def model_title(source: str) -> str:
    """How the page names the model: a Hub id as is, a local folder by its name only (never a server path)."""
    return Path(source).name if Path(source).exists() else source


def read_upload(payload: ImageData) -> Image.Image:
    """An input gradio validated -> upright RGB image (fer_model.images.load_image), or gr.Error saying why not.
    Read: a data: URL (the webcam's frames) or a file in gradio's upload folder (what it received: uploads, snapshots,
    the examples' copies). Anything else (a server path without `meta`) gets NOT_UPLOADED, whether it exists or not.
    """
    url = payload.url or ""
    try:
        if url.startswith("data:"):
            return load_image(decode_data_url(url))
        if payload.path and is_in_or_equal(payload.path, get_upload_folder()) and os.path.isfile(payload.path):
            return load_image(payload.path)
    except ImageLoadError as error:
        raise gr.Error(f"Cannot use this file: {error}.", title="Unreadable image", print_exception=False) from None
    raise gr.Error(NOT_UPLOADED, title="Not an uploaded image", print_exception=False)


def decode_data_url(url: str) -> bytes:
    """The bytes of an inline image, refused before decoding when over MAX_FILE_SIZE (like an upload)."""
    encoded = url.partition(",")[2]
    size = len(encoded) * 3 // 4 - encoded[-2:].count("=")  # the decoded size, exactly (when valid)
    if size > MAX_FILE_SIZE:
        raise ImageLoadError(f"the image is too large: {size / 2**20:.0f} MB (the limit is {MAX_FILE_SIZE >> 20} MB)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageLoadError("the data: URL is not valid base64") from None


class UploadData(ImageData):
    """gradio's ImageData; a bare string (a path or URL, not a file object) is read as a path: read_upload's hint."""

    model_config = ConfigDict(json_schema_extra={"description": "An image file (handle_file) or a data: URL."})

    @model_validator(mode="before")
    @classmethod
    def string_as_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class UploadedImage(gr.Image):
    """gr.Image whose preprocessing is read_upload: the function gets an RGB PIL image (or None when cleared).
    gradio first refuses file objects (with `meta`) outside its upload folder; this class never downloads a URL
    nor lets PIL's other decoders see the data (gradio's own preprocessing would). A subclass, not a patched
    instance: gradio re-creates a component from its class for a session's updates (it writes app.pyi for it).
    """

    is_template = True  # the browser draws it as a gr.Image
    data_model = UploadData

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):  # gradio would download it
            raise gr.Error(NOT_UPLOADED, title="Not an uploaded image", print_exception=False)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def preprocess(self, payload: ImageData | None) -> Image.Image | None:
        return None if payload is None else read_upload(payload)


def recognize(recognizer: EmotionRecognizer, image: Image.Image) -> dict[str, Any]:
    """recognizer.recognize; an unexpected failure reaches the user as a plain message, its traceback only the
    server log, whatever show_error says (exception texts can hold server paths)."""
    try:
        return recognizer.recognize(image)
    except Exception as error:
        raise gr.Error("Could not analyse this image: an internal error occurred (it is logged on the server). "
                       "Try another photo.", title="Analysis failed") from error


def table_rows(faces: list[dict[str, Any]]) -> list[list[Any]]:
    return [[i, f["label"], round(f["score"], 3), *f["box"]] for i, f in enumerate(faces, 1)]


def status(result: dict[str, Any]) -> str:
    if not result["face_found"]:
        return "**No face found**: the whole image was classified instead, which only makes sense for a close-up face."
    count = len(result["faces"])
    faces = f"{count} face{'s' if count > 1 else ''}"
    return f"**{faces} found** (numbered left to right). Select a row to see its probabilities."


def select_face(result: dict | None, event: gr.SelectData) -> Any:
    """The probabilities of the face in the selected row of the table."""
    if not result or not result.get("faces"):
        return gr.Label()
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    return gr.Label(value=result["faces"][row]["scores"], label=f"Face {row + 1}")


def build_demo(recognizer: EmotionRecognizer, model_source: str = "") -> gr.Blocks:
    """The Blocks app around one loaded recognizer (tests pass a small random model)."""
    labels = recognizer.labels

    def predict(image: Image.Image) -> dict:
        """Faces in an image file: {"face_found": bool, "faces": [{"box": [x, y, w, h], "label", "score", "scores"}]}.

        Boxes are in the uploaded image's pixels (the recognizer downscales large images internally).
        """
        return recognize(recognizer, image)

    def analyze(image: Image.Image | None) -> tuple:
        if image is None:  # the input was cleared
            return None, None, None, None, ""
        image = fit_within(image, MAX_SIDE)  # what the browser shows: boxes in its pixels
        result = recognize(recognizer, image)
        faces = result["faces"]
        best = largest_face(faces)
        title = f"Face {best + 1} (largest)" if result["face_found"] else "Whole image (no face found)"
        probabilities = gr.Label(value=faces[best]["scores"], label=title)
        return draw_faces(image, faces, labels), probabilities, table_rows(faces), result, status(result)

    def live(frame: Image.Image | None) -> tuple:
        if frame is None:
            return None, None
        image = fit_within(frame, MAX_SIDE)
        result = recognize(recognizer, image)
        faces = result["faces"] if result["face_found"] else []
        scores = faces[largest_face(faces)]["scores"] if faces else None
        return draw_faces(image, faces, labels), scores

    model_events = dict(concurrency_limit=CONCURRENCY, concurrency_id="model")
    with gr.Blocks(title="FER-VGG16: facial emotion recognition") as demo:
        gr.Markdown("# FER-VGG16: facial emotion recognition\n"
                    f"Finds every face (OpenCV Haar cascade) and classifies its emotion among {', '.join(labels)} "
                    f"with a VGG16 trained on FER2013. Model: `{model_title(model_source)}`.")
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    photo = UploadedImage(label="Photo (upload, paste or webcam snapshot)", type="pil",
                                          sources=["upload", "clipboard", "webcam"], elem_id="photo")
                    gr.Examples([[str(path)] for path in EXAMPLES if path.is_file()], inputs=photo,
                                label="Examples (public domain)", cache_examples=False, api_visibility="private")
                with gr.Column():
                    annotated = gr.Image(label="Faces", type="pil", format="png", interactive=False,
                                         elem_id="annotated")
                    message = gr.Markdown(elem_id="status")
                    probabilities = gr.Label(label="Probabilities", num_top_classes=len(labels),
                                             elem_id="probabilities")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="All faces", interactive=False, elem_id="faces")
            result_json = gr.JSON(label="JSON (what the API returns)", elem_id="json")
        with gr.Tab("Live"):
            with gr.Row():
                webcam = UploadedImage(label="Webcam", sources=["webcam"], type="pil", streaming=True,
                                       elem_id="webcam", webcam_options=gr.WebcamOptions(mirror=False))
                with gr.Column():
                    live_annotated = gr.Image(label="Faces", interactive=False, elem_id="live-annotated")
                    live_probabilities = gr.Label(label="Largest face", num_top_classes=len(labels),
                                                  elem_id="live-probabilities")
            gr.Markdown(f"One frame every {LIVE_EVERY_S} s is analysed. One stream at a time: each holds the "
                        f"model {LIVE_LIMIT_S} s, then queues again, so viewers take turns.")
        api_image, api_result = UploadedImage(type="pil", visible=False), gr.JSON(label="faces", visible=False)

        photo.change(analyze, photo, [annotated, probabilities, table, result_json, message],
                     api_visibility="private", **model_events)
        table.select(select_face, result_json, probabilities, api_visibility="private")
        webcam.stream(live, webcam, [live_annotated, live_probabilities], stream_every=LIVE_EVERY_S,
                      time_limit=LIVE_LIMIT_S, concurrency_limit=1, concurrency_id="live",
                      api_visibility="private", show_progress="hidden")
        gr.on([], predict, api_image, api_result, api_name="predict", **model_events)  # the API, no UI trigger
    for event in demo.fns.values():  # gradio's example loader is made with queue=False: no route around the queue
        event.queue = True
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=MAX_QUEUE, api_open=False)


ENDPOINT_ROUTES = re.compile(r"/gradio_api/(queue/join|run/|api/|call/)")


def client_error(request: Request, error: Exception) -> Response:
    """gradio 6.31 answers an unknown fn_index or api_name (KeyError, FnIndexInferError) and an upload without a
    file name (TypeError) with HTTP 500: say what was wrong instead. Anything else stays a logged 500."""
    if isinstance(error, (KeyError, FnIndexInferError)) and ENDPOINT_ROUTES.search(request.url.path):
        return JSONResponse({"detail": "No such endpoint: unknown api_name or fn_index (see the API page)."}, 404)
    if isinstance(error, TypeError) and request.url.path.endswith("/gradio_api/upload"):
        return JSONResponse({"detail": "Upload refused: each file needs a file name."}, 400)
    logging.getLogger(__name__).error("%s %s failed", request.method, request.url.path, exc_info=error)
    return PlainTextResponse("Internal Server Error", status_code=500)


@contextlib.asynccontextmanager
async def sweep_cache(server: Any) -> AsyncIterator[None]:
    """gradio's delete_files_created_by_app every DELETE_CACHE[0] s. Not Blocks(delete_cache=...): in gradio 6.31 its
    schedule dies when a request adds a file during a sweep (set changed size), soon on a busy server."""
    async def sweep() -> None:
        while True:
            await asyncio.sleep(DELETE_CACHE[0])
            with contextlib.suppress(RuntimeError):
                await anyio.to_thread.run_sync(delete_files_created_by_app, server.get_blocks(), DELETE_CACHE[1])

    task = asyncio.create_task(sweep())
    yield
    task.cancel()


LAUNCH_OPTIONS = dict(max_file_size=MAX_FILE_SIZE, state_session_capacity=SESSIONS_KEPT, app_kwargs={
    "lifespan": sweep_cache,
    "exception_handlers": {KeyError: client_error, TypeError: client_error, FnIndexInferError: client_error}})


def return_freed_memory() -> None:
    """glibc keeps freed blocks under 32 MB in per-thread arenas: each decoded photo or data: URL would raise the
    server's memory for good (benchmarks/soak.py). Mmap blocks of 1 MB+ (freed for real), 2 arenas; glibc only."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 2**20)  # M_MMAP_THRESHOLD: 1 MB, fixed
        libc.mallopt(-8, 2)  # M_ARENA_MAX


def load_recognizer(source: str, tta: str = "none", onnx: str | None = None) -> EmotionRecognizer:
    """The recognizer, or exit saying how to point the app at a model. `onnx`/FER_ONNX: that export, if given."""
    onnx = onnx or os.environ.get("FER_ONNX")
    try:
        return EmotionRecognizer.from_pretrained(source, tta=tta, **({"onnx": onnx} if onnx else {}))
    except (OSError, ValueError) as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}\n"
                 f"Example: FER_MODEL=path/to/fer-vgg16 python app.py   (or: python app.py --model path/to/folder)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id or local folder (default: FER_MODEL, "
                        f"../shared/models/fer-vgg16 if present, else {DEFAULT_MODEL_ID})")
    parser.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    parser.add_argument("--onnx", default=None, help="an ONNX export to run with onnxruntime (default: FER_ONNX)")
    return parser.parse_args(argv)


return_freed_memory()
ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])  # imported (tests, reload mode): env defaults
MODEL_SOURCE = resolve_model_source(ARGS.model)
demo = build_demo(load_recognizer(MODEL_SOURCE, ARGS.tta, ARGS.onnx), MODEL_SOURCE)

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
