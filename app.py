"""FER-VGG16 Space: every face in a photo, a webcam stream or a video, boxed and labelled with its emotion.

    python app.py [--model HUB_ID_OR_FOLDER] [--tta none|flip|10crop] [--onnx MODEL.onnx | --no-onnx]
                  [--detector haar|haar-profile]

`demo` is built once, at import (as Spaces and `gradio app.py` expect), around the model from --model, else
FER_MODEL, else ../shared/models/fer-vgg16 if present, else the Hub model (space.model), run on its folder's int8
ONNX file when it has one (--no-onnx or FER_ONNX=none: PyTorch). fer_model does the work; this file is the UI, the
space/ package beside it its guards (README, Reliability). API: `predict` (an image file in, the faces as JSON out)
and `predict_video` (a video file in; the summary, the CSV, the annotated video and the timeline out).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import gradio as gr
from PIL import Image

from fer_model import DEFAULT_MODEL_ID, EmotionRecognizer
from fer_model.annotation import draw_faces, largest_face
from fer_model.faces import DEFAULT_DETECTOR, DETECTORS
from fer_model.image_processing import TTA_MODES
from fer_model.images import MAX_SIDE, fit_within
from space.model import LOCAL_RELEASE, ROOT, load_recognizer, model_header, model_title, resolve_model_source
from space.server import (
    CONCURRENCY,
    DELETE_CACHE,
    LAUNCH_OPTIONS,
    MAX_FILE_SIZE,
    MAX_QUEUE,
    SESSIONS_KEPT,
    queue_every_event,
    return_freed_memory,
)
from space.uploads import NOT_UPLOADED, UploadedImage, decode_data_url, read_upload
from space.video_tab import build_video_tab

__all__ = ["CONCURRENCY", "DELETE_CACHE", "LAUNCH_OPTIONS", "LOCAL_RELEASE", "MAX_FILE_SIZE", "MAX_QUEUE",
           "NOT_UPLOADED", "SESSIONS_KEPT", "build_demo", "decode_data_url", "load_recognizer", "model_title",
           "read_upload", "resolve_model_source"]  # what tests and benchmarks use from here

EXAMPLES = [ROOT / "examples" / name for name in ("astronaut.jpg", "group.jpg", "grace_hopper.jpg", "cameraman.jpg",
                                                 "cat.jpg")]
LIVE_EVERY_S = 0.5  # the webcam sends one frame every 0.5 s
LIVE_LIMIT_S = 10  # a stream holds its slot 10 s, then the browser queues again; a vanished client no longer
TABLE_HEADERS = ["face", "emotion", "confidence", "x", "y", "width", "height"]

def recognize(recognizer: EmotionRecognizer, image: Image.Image, whole_image: bool = False) -> dict[str, Any]:
    """recognizer.recognize; an unexpected failure reaches the user as a plain message, its traceback only the
    server log, whatever show_error says (exception texts can hold server paths)."""
    try:
        return recognizer.recognize(image, whole_image=whole_image)
    except Exception as error:
        raise gr.Error("Could not analyse this image: an internal error occurred (it is logged on the server). "
                       "Try another photo.", title="Analysis failed") from error


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
    described = {"haar": "OpenCV's frontal Haar cascade",
                 "haar-profile": "OpenCV's frontal and profile Haar cascades"}.get(name, "custom")
    return f"detector `{name}`: {described}"


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

    def analyze(image: Image.Image | None, whole_image: bool = False) -> tuple:
        if image is None:  # the input was cleared
            return None, None, None, None, ""
        image = fit_within(image, MAX_SIDE)  # what the browser shows: boxes in its pixels
        result = recognize(recognizer, image, whole_image)
        faces = result["faces"]
        if not faces:  # no face: no emotion, no box, an empty table
            return image, gr.Label(value=None, label="No face found"), [], result, status(result)
        best = largest_face(faces)
        title = f"Face {best + 1} (largest)" if result["face_found"] else "Whole image (no face found)"
        probabilities = gr.Label(value=faces[best]["scores"], label=title)
        boxes = draw_faces(image, faces, labels) if result["face_found"] else image  # no box around a whole image
        return boxes, probabilities, table_rows(faces), result, status(result)

    def live(frame: Image.Image | None) -> tuple:
        if frame is None:
            return None, None
        image = fit_within(frame, MAX_SIDE)
        result = recognize(recognizer, image)
        faces = result["faces"]
        scores = faces[largest_face(faces)]["scores"] if faces else None
        return draw_faces(image, faces, labels), scores

    model_events = dict(concurrency_limit=CONCURRENCY, concurrency_id="model")
    with gr.Blocks(title="FER-VGG16: facial emotion recognition") as demo:
        gr.Markdown("# FER-VGG16: facial emotion recognition\n"
                    f"Finds every face ({detector_title(recognizer)}) and classifies its emotion among "
                    f"{', '.join(labels)} with a VGG16 trained on FER2013. {model_header(model_source, recognizer)}")
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
        with gr.Tab("Video"):
            build_video_tab(recognizer)
        api_image, api_result = UploadedImage(type="pil", visible=False), gr.JSON(label="faces", visible=False)

        gr.on([photo.change, whole_image.change], analyze, [photo, whole_image],
              [annotated, probabilities, table, result_json, message], api_visibility="private", **model_events)
        table.select(select_face, result_json, probabilities, api_visibility="private")
        webcam.stream(live, webcam, [live_annotated, live_probabilities], stream_every=LIVE_EVERY_S,
                      time_limit=LIVE_LIMIT_S, concurrency_limit=1, concurrency_id="live",
                      api_visibility="private", show_progress="hidden")
        gr.on([], predict, api_image, api_result, api_name="predict", **model_events)  # the API, no UI trigger
    return queue_every_event(demo)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Hub id or local folder (default: FER_MODEL, "
                        f"../shared/models/fer-vgg16 if present, else {DEFAULT_MODEL_ID})")
    parser.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS),
                        help="face detector (default %(default)s)")
    runtime = parser.add_mutually_exclusive_group()
    runtime.add_argument("--onnx", default=None, help="ONNX file to run with onnxruntime, 'auto' (the model folder's "
                         "model_int8.onnx when it has one) or 'none' (default: FER_ONNX, else auto)")
    runtime.add_argument("--no-onnx", dest="no_onnx", action="store_true", help="run the PyTorch model")
    return parser.parse_args(argv)


return_freed_memory()
ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])  # imported (tests, reload mode): env defaults
MODEL_SOURCE = resolve_model_source(ARGS.model)
demo = build_demo(load_recognizer(MODEL_SOURCE, ARGS.tta, ARGS.onnx, ARGS.no_onnx, ARGS.detector), MODEL_SOURCE)

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
