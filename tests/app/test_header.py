"""The header states what is served: the model's name (never a server path), its runtime, each part's TTA and the
test accuracy metrics.json records for that runtime and TTA, or which figure it shows instead."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file

import app
from fer_model import EmotionRecognizer
from space.header import model_header, read_metrics, served_accuracy, tta_summary
from space.tta import TTA_DEFAULTS, serving_modes, with_tta
from tests.helpers.app_server import launched_demo
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model

METRICS = {"split": "test", "accuracy": 0.669824, "tta": {"flip": {"accuracy": 0.673447}},
           "int8": {"file": "model_int8.onnx", "test_accuracy": 0.667595}}
INT8 = Path("model_int8.onnx")


def test_header_names_the_model_runtime_tta_and_accuracy(recognizer: EmotionRecognizer, tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "cpu36")
    everywhere = "no TTA in every tab and the API"
    assert model_header(str(folder), recognizer) == f"Model: `cpu36`, run by PyTorch; {everywhere}."  # no metrics
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    assert model_header(str(folder), recognizer) == (f"Model: `cpu36`, run by PyTorch; {everywhere}. Test accuracy "
                                                     "66.98 % (PyTorch, no TTA).")
    header = model_header(str(folder), recognizer, {"photo": "10crop", "api": "10crop", "live": "flip",
                                                     "video": "none"})
    assert "Photo and API: ten-crop TTA; Live: flip TTA; Video: no TTA." in header
    assert "66.98 % (PyTorch without TTA: metrics.json has no 10crop TTA figure)" in header
    assert "67.34 % (PyTorch, flip TTA)" in model_header(str(folder), recognizer, serving_modes("flip"))
    (folder / "metrics.json").write_text(json.dumps({**METRICS, "split": "validation"}))
    assert "accuracy" not in model_header(str(folder), recognizer)  # another split's figure is not a test accuracy
    (folder / "metrics.json").write_text("{not json")
    assert "accuracy" not in model_header(str(folder), recognizer) and str(tmp_path) not in model_header(
        str(folder), recognizer)


@pytest.mark.parametrize("onnx_file, tta, expected, says", [
    (None, "none", 0.669824, "PyTorch, no TTA"),
    (None, "flip", 0.673447, "PyTorch, flip TTA"),
    (None, "10crop", 0.669824, "metrics.json has no 10crop TTA figure"),
    (INT8, "none", 0.667595, "int8, no TTA"),
    (INT8, "10crop", 0.667595, "metrics.json has no int8 figure with 10crop TTA"),
    (Path("other.onnx"), "none", 0.669824, "metrics.json has no figure for other.onnx"),
])
def test_the_figure_is_metrics_json_for_the_runtime_and_tta_served(onnx_file: Path | None, tta: str,
                                                                   expected: float, says: str) -> None:
    assert served_accuracy(METRICS, onnx_file, tta) == (expected, served_accuracy(METRICS, onnx_file, tta)[1])
    assert says in served_accuracy(METRICS, onnx_file, tta)[1]


def header_of(demo: gr.Blocks) -> str:
    return next(block.value for block in demo.blocks.values() if isinstance(block, gr.Markdown))


@needs_released_model
def test_the_app_header_gives_metrics_json_figure_for_the_runtime_in_use() -> None:
    """app.demo (built at import on the released model when present): its figure is metrics.json's for its runtime."""
    if app.MODEL_SOURCE != str(RELEASED_MODEL_DIR):
        pytest.skip(f"app.py serves {app.MODEL_SOURCE}, not the released model")
    metrics, header = read_metrics(app.MODEL_SOURCE), header_of(app.demo)
    runtime = "int8" if "onnxruntime (`model_int8.onnx`)" in header else "PyTorch"
    figure = metrics["int8"]["test_accuracy"] if runtime == "int8" else metrics["accuracy"]
    assert f"Test accuracy {100 * figure:.2f} % ({runtime}" in header, header
    assert tta_summary(serving_modes()) in header  # each part's TTA (app.py without --tta: TTA_DEFAULTS)


def test_each_part_serves_its_tta(recognizer: EmotionRecognizer) -> None:
    """The API's views reach the model: 10 per face under ten-crop, 2 under flip; the Live and Video parts get
    copies sharing the one model (no second copy in memory)."""
    assert TTA_DEFAULTS["photo"] in ("none", "flip", "10crop") and set(TTA_DEFAULTS) == {"photo", "api", "live",
                                                                                         "video"}
    batches: list[int] = []
    runtime = recognizer.runtime
    recognizer.runtime = lambda x: batches.append(x.shape[0]) or runtime(x)
    try:
        for tta, views in (("10crop", 10), ("flip", 2)):
            modes = {"photo": "none", "api": tta, "live": "none", "video": "none"}
            with launched_demo(recognizer, "tiny", modes) as demo:
                batches.clear()
                faces, _ = Client(demo.local_url, verbose=False).predict(handle_file(ASTRONAUT), api_name="/predict")
                assert len(faces["faces"]) == 1 and batches == [views], (tta, batches)
    finally:
        recognizer.runtime = runtime
    flip = with_tta(recognizer, "flip")
    assert flip.tta == "flip" and recognizer.tta == "none" and flip.model is recognizer.model
    assert with_tta(recognizer, "none") is recognizer
    with pytest.raises(ValueError, match="tta='5crop'"):
        serving_modes("5crop")
