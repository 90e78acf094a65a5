"""FER-VGG16 Space: every face in a photo or a webcam stream, boxed and labelled with its emotion.

    python app.py [--model HUB_ID_OR_FOLDER] [--tta none|flip|10crop] [--onnx MODEL.onnx]

The model is loaded once at start-up from --model, else FER_MODEL, else ../shared/models/fer-vgg16
when that folder exists, else the project's Hub model (fer_model.DEFAULT_MODEL_ID). All the work is
done by fer_model (images.load_image -> EmotionRecognizer.recognize); this file is the UI only.
API: the endpoint `predict` takes an image file and returns the recognizer's JSON (see README).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import FileData
from PIL import Image, ImageDraw, ImageFont

from fer_model import DEFAULT_MODEL_ID, EmotionRecognizer
from fer_model.images import MAX_SIDE, ImageLoadError, fit_within, load_image
from fer_model.tta import TTA_MODES

ROOT = Path(__file__).resolve().parent
LOCAL_RELEASE = ROOT.parent / "shared" / "models" / "fer-vgg16"
EXAMPLES = [ROOT / "examples" / name for name in ("astronaut.jpg", "group.jpg", "grace_hopper.jpg", "coffee.jpg")]
CONCURRENCY = 2  # requests run at once: the model already uses every core of a small CPU Space
MAX_QUEUE = 32  # requests waiting beyond this are refused with "queue full" rather than piling up
MAX_FILE_SIZE = "20mb"  # uploads above this are refused before they reach the model
LIVE_EVERY_S, LIVE_LIMIT_S = 0.5, 120  # webcam: one frame every 0.5 s, at most 2 minutes per stream
TABLE_HEADERS = ["face", "emotion", "confidence", "x", "y", "width", "height"]
COLOURS = {"angry": "#e6194b", "disgust": "#3cb44b", "fear": "#911eb4", "happy": "#ffd21e",
           "neutral": "#a9a9a9", "sad": "#4363d8", "surprise": "#f58231"}
PALETTE = list(COLOURS.values())  # for models whose labels are not the FER2013 names


def resolve_model_source(cli_value: str | None = None) -> str:
    """--model, else FER_MODEL, else the shared release folder when present, else the Hub model."""
    if cli_value:
        return cli_value
    if os.environ.get("FER_MODEL"):
        return os.environ["FER_MODEL"]
    return str(LOCAL_RELEASE) if (LOCAL_RELEASE / "config.json").is_file() else DEFAULT_MODEL_ID


# ---------------------------------------------------------------- pure functions (no UI state)

def read_upload(payload: FileData | dict | Image.Image | None) -> Image.Image:
    """A Gradio file payload (or a PIL image, in-process) -> upright RGB image, or gr.Error saying why not."""
    if isinstance(payload, Image.Image):
        return payload.convert("RGB")
    if isinstance(payload, FileData):
        payload = payload.model_dump()
    url = str(payload.get("url") or "") if isinstance(payload, dict) else ""
    if not isinstance(payload, dict) or not (payload.get("path") or url.startswith("data:")):  # URLs are not fetched
        raise gr.Error("No image received: upload a file, or from gradio_client send "
                       "handle_file('photo.jpg') rather than a plain path or URL string.", print_exception=False)
    try:
        source = base64.b64decode(url.partition(",")[2], validate=True) if url.startswith("data:") else payload["path"]
        return load_image(source)
    except (ImageLoadError, binascii.Error) as error:
        raise gr.Error(f"Cannot use this file: {error}.", title="Unreadable image", print_exception=False) from None


def recognize(recognizer: EmotionRecognizer, image: Image.Image) -> dict[str, Any]:
    """recognizer.recognize; an unexpected failure reaches the user as a plain message, its traceback only the
    server log, whatever show_error says (exception texts can hold server paths)."""
    try:
        return recognizer.recognize(image)
    except Exception as error:
        raise gr.Error("Could not analyse this image: an internal error occurred (it is logged on the server). "
                       "Try another photo.", title="Analysis failed") from error


def annotate(image: Image.Image, faces: list[dict[str, Any]], labels: list[str]) -> Image.Image:
    """A copy of the image with a box and "n label 93%" per face, one colour per emotion."""
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    font = ImageFont.load_default(size=max(12, side // 40))
    width = max(2, side // 250)
    for number, face in enumerate(faces, 1):
        x, y, w, h = face["box"]
        colour = COLOURS.get(face["label"], PALETTE[labels.index(face["label"]) % len(PALETTE)])
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=width)
        text = f"{number} {face['label']} {face['score']:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_y = y - (bottom - top) - 2 * width if y >= (bottom - top) + 2 * width else y + h
        draw.rectangle((x, text_y, x + right - left + 2 * width, text_y + bottom - top + 2 * width), fill=colour)
        draw.text((x + width - left, text_y + width - top), text, fill="black", font=font)
    return canvas


def largest(faces: list[dict[str, Any]]) -> int:
    """Index of the face with the largest box (the one whose probabilities are shown first)."""
    return max(range(len(faces)), key=lambda i: faces[i]["box"][2] * faces[i]["box"][3])


def table_rows(faces: list[dict[str, Any]]) -> list[list[Any]]:
    return [[i, f["label"], round(f["score"], 3), *f["box"]] for i, f in enumerate(faces, 1)]


def status(result: dict[str, Any]) -> str:
    count = len(result["faces"])
    if not result["face_found"]:
        return ("**No face found**: the whole image was classified instead, "
                "which only makes sense for a close-up face.")
    faces = f"{count} face{'s' if count > 1 else ''}"
    return f"**{faces} found** (numbered left to right). Select a row to see its probabilities."


# ---------------------------------------------------------------- the UI

def build_demo(recognizer: EmotionRecognizer, model_name: str = "") -> gr.Blocks:
    """The Blocks app around one loaded recognizer (tests pass a small random model)."""

    def predict(image: FileData) -> dict:
        """Faces in an image file: {"face_found": bool, "faces": [{"box": [x, y, w, h], "label", "score", "scores"}]}.

        Boxes are in the uploaded image's pixels (the recognizer downscales large images internally).
        """
        return recognize(recognizer, read_upload(image))

    def analyze(payload: dict | None) -> tuple:
        if payload is None:  # the input was cleared
            return None, None, None, None, ""
        image = fit_within(read_upload(payload), MAX_SIDE)  # what the browser shows: boxes in its pixels
        result = recognize(recognizer, image)
        faces = result["faces"]
        best = largest(faces)
        title = f"Face {best + 1} (largest)" if result["face_found"] else "Whole image (no face found)"
        probabilities = gr.Label(value=faces[best]["scores"], label=title)
        return annotate(image, faces, recognizer.labels), probabilities, table_rows(faces), result, status(result)

    def select_face(result: dict | None, event: gr.SelectData) -> Any:
        if not result or not result.get("faces"):
            return gr.Label()
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return gr.Label(value=result["faces"][row]["scores"], label=f"Face {row + 1}")

    def live(frame: np.ndarray | None) -> tuple:
        if frame is None:
            return None, None
        image = fit_within(Image.fromarray(frame).convert("RGB"), MAX_SIDE)
        result = recognize(recognizer, image)
        faces = result["faces"] if result["face_found"] else []
        scores = faces[largest(faces)]["scores"] if faces else None
        return annotate(image, faces, recognizer.labels), scores

    model_events = dict(concurrency_limit=CONCURRENCY, concurrency_id="model")
    with gr.Blocks(title="FER-VGG16: facial emotion recognition") as demo:
        gr.Markdown("# FER-VGG16: facial emotion recognition\n"
                    f"Finds every face (OpenCV Haar cascade) and classifies its emotion among "
                    f"{', '.join(recognizer.labels)} with a VGG16 trained on FER2013. Model: `{model_name}`.")
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(label="Photo (upload, paste or webcam snapshot)", type="filepath", image_mode=None,
                                     sources=["upload", "clipboard", "webcam"], elem_id="photo")
                    gr.Examples([[str(path)] for path in EXAMPLES if path.is_file()], inputs=photo,
                                label="Examples (public domain)", cache_examples=False)
                with gr.Column():
                    annotated = gr.Image(label="Faces", type="pil", format="png", interactive=False,
                                         elem_id="annotated")
                    message = gr.Markdown(elem_id="status")
                    probabilities = gr.Label(label="Probabilities", num_top_classes=len(recognizer.labels),
                                             elem_id="probabilities")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="All faces", interactive=False, elem_id="faces")
            result_json = gr.JSON(label="JSON (what the API returns)", elem_id="json")
        with gr.Tab("Live"):
            with gr.Row():
                webcam = gr.Image(label="Webcam", sources=["webcam"], type="numpy", streaming=True, elem_id="webcam",
                                  webcam_options=gr.WebcamOptions(mirror=False))  # shown as the model sees it
                with gr.Column():
                    live_annotated = gr.Image(label="Faces", interactive=False, elem_id="live-annotated")
                    live_probabilities = gr.Label(label="Largest face", num_top_classes=len(recognizer.labels),
                                                  elem_id="live-probabilities")
            gr.Markdown(f"One frame every {LIVE_EVERY_S} s is analysed, for at most {LIVE_LIMIT_S} s per stream.")

        photo.change(analyze, photo, [annotated, probabilities, table, result_json, message], preprocess=False,
                     api_visibility="private", **model_events)
        table.select(select_face, result_json, probabilities, api_visibility="private", queue=False)
        webcam.stream(live, webcam, [live_annotated, live_probabilities], stream_every=LIVE_EVERY_S,
                      time_limit=LIVE_LIMIT_S, api_visibility="private", show_progress="hidden", **model_events)
        gr.api(predict, api_name="predict", **model_events)
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=MAX_QUEUE)


def load_recognizer(source: str, tta: str = "none", onnx: str | None = None) -> EmotionRecognizer:
    """The recognizer, or exit with a message saying how to point the app at a model.

    `onnx` (or FER_ONNX): an exported file, e.g. the int8 one, run with onnxruntime (fastest on a CPU Space).
    """
    try:
        return EmotionRecognizer.from_pretrained(source, tta=tta, onnx=onnx or os.environ.get("FER_ONNX") or None)
    except (OSError, ValueError) as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}\n"
                 f"Example: FER_MODEL=path/to/fer-vgg16 python app.py   (or: python app.py --model path/to/folder)")


def __getattr__(name: str) -> gr.Blocks:
    """`demo` at module level, built on first access (gradio's reload mode and Spaces tooling look for it)."""
    if name != "demo":
        raise AttributeError(name)
    source = resolve_model_source()
    globals()["demo"] = build_demo(load_recognizer(source), source)
    return globals()["demo"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id or local folder (default: FER_MODEL, "
                        f"../shared/models/fer-vgg16 if present, else {DEFAULT_MODEL_ID})")
    parser.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    parser.add_argument("--onnx", default=None, help="run this exported ONNX file (python -m fer_model export-onnx) "
                        "with onnxruntime instead of PyTorch (default: FER_ONNX)")
    args = parser.parse_args(argv)
    source = resolve_model_source(args.model)
    demo = build_demo(load_recognizer(source, args.tta, args.onnx), source)
    demo.launch(max_file_size=MAX_FILE_SIZE)


if __name__ == "__main__":
    main()
