"""EmotionRecognizer end to end on real photos with a small random model (and the release, if present)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer_model import EmotionRecognizer
from fer_model.images import load_image
from tests.helpers.image_files import ASTRONAUT, ASTRONAUT_FACE_REGION, gradient, no_face_images, tile_2x2
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model


def forward_batches(recognizer: EmotionRecognizer) -> list[int]:
    """Batch sizes of every model forward from now on (a hook records them)."""
    sizes: list[int] = []
    def record(module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        sizes.append(kwargs["pixel_values"].shape[0])

    recognizer.model.register_forward_hook(record, with_kwargs=True)
    return sizes


def check_schema(result: dict, labels: list[str], image_size: tuple[int, int]) -> None:
    assert json.loads(json.dumps(result)) == result  # JSON-serialisable as is
    assert set(result) - {"whole_image"} == {"face_found", "faces"} and isinstance(result["face_found"], bool)
    assert result["face_found"] or not result["faces"] or result["whole_image"] is True
    for face in result["faces"]:
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"])
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= image_size[0] and y + h <= image_size[1]
        assert list(face["scores"]) == labels and face["label"] in labels
        assert face["score"] == max(face["scores"].values()) == face["scores"][face["label"]]
        assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_astronaut_one_face_inside_her_head(recognizer: EmotionRecognizer) -> None:
    result = recognizer.recognize(load_image(ASTRONAUT))
    check_schema(result, recognizer.labels, (512, 512))
    assert result["face_found"] and len(result["faces"]) == 1
    x, y, w, h = result["faces"][0]["box"]
    x0, y0, x1, y1 = ASTRONAUT_FACE_REGION
    assert x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1


def test_tile_gives_four_faces_in_one_batch(tiny_model_dir: Path) -> None:
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir)
    batches = forward_batches(recognizer)
    result = recognizer.recognize(tile_2x2(load_image(ASTRONAUT)))
    check_schema(result, recognizer.labels, (1024, 1024))
    assert len(result["faces"]) == 4 and batches == [4]
    assert [face["box"][0] for face in result["faces"]] == sorted(face["box"][0] for face in result["faces"])
    scores = [face["scores"] for face in result["faces"]]
    assert all(s == pytest.approx(scores[0], abs=0.02) for s in scores)  # the same face, the same prediction


@pytest.mark.parametrize("name", ["blank", "cartoon", "cat photo"])
def test_no_face_gives_no_emotion(recognizer: EmotionRecognizer, name: str) -> None:
    image = no_face_images()[name]
    sizes = forward_batches(recognizer)
    assert recognizer.recognize(image) == {"face_found": False, "faces": []}
    assert recognizer.recognize(np.asarray(image)) == {"face_found": False, "faces": []}
    assert sizes == [], "nothing to classify: the model is not run"


def test_whole_image_is_classified_only_when_asked(tiny_model_dir: Path) -> None:
    image = gradient(640, 480)
    for recognizer, kwargs in ((EmotionRecognizer.from_pretrained(tiny_model_dir), {"whole_image": True}),
                               (EmotionRecognizer.from_pretrained(tiny_model_dir, whole_image=True), {})):
        result = recognizer.recognize(image, **kwargs)
        check_schema(result, recognizer.labels, image.size)
        assert result["face_found"] is False and result["whole_image"] is True
        assert [face["box"] for face in result["faces"]] == [[0, 0, image.width, image.height]]
    assert recognizer.recognize(image, whole_image=False) == {"face_found": False, "faces": []}
    assert "whole_image" not in recognizer.recognize(load_image(ASTRONAUT))  # faces found: the option is moot


def test_large_images_work_on_a_copy_and_report_original_coordinates(recognizer: EmotionRecognizer) -> None:
    small = recognizer.recognize(load_image(ASTRONAUT))["faces"][0]["box"]
    large = load_image(ASTRONAUT).resize((2560, 2560), Image.Resampling.BICUBIC)
    (face,) = recognizer.recognize(large)["faces"]
    np.testing.assert_allclose(face["box"], np.array(small) * 5, atol=25)


def test_arrays_and_images_agree(recognizer: EmotionRecognizer) -> None:
    image = load_image(ASTRONAUT)
    assert recognizer.recognize(np.asarray(image)) == recognizer.recognize(image)


def test_flip_tta_runs_both_views_in_one_forward(tiny_model_dir: Path) -> None:
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, tta="flip")
    batches = forward_batches(recognizer)
    result = recognizer.recognize(tile_2x2(load_image(ASTRONAUT)))
    assert len(result["faces"]) == 4 and batches == [8]
    with pytest.raises(ValueError, match="tta"):
        EmotionRecognizer(recognizer.model, recognizer.processor, tta="mirror")


def test_classify_matches_the_model_on_the_processed_crop(recognizer: EmotionRecognizer) -> None:
    crop = np.asarray(load_image(ASTRONAUT).convert("L"))[60:170, 165:285]
    with torch.inference_mode():
        logits = recognizer.model(**recognizer.processor(crop, return_tensors="pt")).logits
    np.testing.assert_allclose(recognizer.classify([crop]), logits.softmax(-1).numpy(), atol=1e-6)


@needs_released_model
def test_released_model_sees_a_happy_astronaut() -> None:
    recognizer = EmotionRecognizer.from_pretrained(RELEASED_MODEL_DIR)
    (face,) = recognizer.recognize(load_image(ASTRONAUT))["faces"]
    assert face["label"] == "happy", face["scores"]


def test_many_faces_go_through_the_model_32_at_a_time(tiny_model_dir: Path) -> None:
    """A photo of hundreds of faces costs bounded memory: forwards of at most 32 faces, the same probabilities."""
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, tta="flip")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (60, 60, 3), dtype=np.uint8) for _ in range(70)]
    sizes = forward_batches(recognizer)
    chunked = recognizer.classify(crops)
    assert sizes == [64, 64, 12]  # 32 + 32 + 6 faces, two TTA views each
    np.testing.assert_allclose(chunked, recognizer.classify(crops, batch_size=100), atol=1e-5)
    assert chunked.shape == (70, len(recognizer.labels))
