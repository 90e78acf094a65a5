"""EmotionRecognizer: an image -> every face found, each with a box, a label and all 7 probabilities.

Pipeline: an 8-bit working copy (at most `max_side` px, so a 24 MP photo costs what a 1.6 MP one does) for
face DETECTION only -> face boxes (fer_model.faces: RetinaFace, or Haar) -> crops cut from the INPUT image
(eyes levelled where the detector gives them) -> FerImageProcessor (the pixel module: the same grey conversion,
resize kernel and crops as training) -> the model, 32 faces per forward (one for a typical photo). When
no face is found the result says so and gives no emotion (`face_found: false, faces: []`): a confident label on a
coffee cup is worse than none. Only when asked (`whole_image=True`, for tight face crops like FER2013's own) is the
whole image classified then (the working copy, if the input is larger than max_side), and the result says
`whole_image: true`.
Boxes are reported in the coordinates of the image passed in; faces are sorted left to right.
`recognize_many` does the same for a stream of images, with one forward per `batch_size` model inputs ACROSS
images (a folder of one-face photos costs one forward per 32 photos rather than one per photo).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .face_boxes import Eyes, levelled_crop
from .faces import Box, Detector, make_detector
from .image_processing import (
    TTA_MODES,
    FerImageProcessor,
    array_to_uint8,
    flatten_mode,
    logits_with_tta,
    resize_array,
    resize_image,
    tta_views,
)
from .images import MAX_SIDE
from .loading import DEFAULT_MODEL_ID, load_model
from .modeling import FerForImageClassification

# recognize_many: model inputs (faces x TTA views) of consecutive images classified in one forward pass. On a
# CPU, VGG16 at 48 px costs 16.8 ms for 1 face, 6.7 ms a face from 16 to 64, then 15-19 ms a face from ~96 on
# (the activations outgrow the caches); int8 ONNX 2.1 ms for 1 face, 1.7 ms a face from 16 on.
FACES_PER_FORWARD = 32
ImageInput = Image.Image | np.ndarray


class EmotionRecognizer:
    """Face detector + FER model. `recognize(image)` -> {"face_found": bool, "faces": [...]} (JSON-ready)."""

    def __init__(
        self,
        model: FerForImageClassification,
        processor: FerImageProcessor,
        detector: str | Detector | None = None,
        tta: str = "none",
        max_side: int = MAX_SIDE,
        runtime: Callable[[torch.Tensor], torch.Tensor] | None = None,
        whole_image: bool = False,
    ) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"tta={tta!r} is not one of {TTA_MODES}")
        self.model = model.eval()
        self.processor = processor
        self.detector = make_detector(detector)  # a name in fer_model.faces.DETECTORS, or any Detector
        self.tta = tta
        self.max_side = max_side
        self.whole_image = whole_image  # the default of recognize(): classify the whole image when no face is found
        # pixel_values -> logits: the PyTorch model, or an OnnxClassifier (int8) for fast CPU serving
        self.runtime = runtime or (lambda x: self.model(pixel_values=x.to(self.model.device, self.model.dtype)).logits)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike = DEFAULT_MODEL_ID,
        tta: str = "none",
        device: str = "cpu",
        onnx: str | os.PathLike | None = "auto",
        **kwargs: Any,
    ) -> EmotionRecognizer:
        """From a local model folder or a Hub id (OSError with a how-to-fix message when unreachable).

        `onnx`: "auto" (default) runs the folder's int8 `model_int8.onnx` with onnxruntime when it has one and
        the model is on the CPU, unless its fingerprint says it belongs to other weights; a file path runs that
        file (refused if it belongs to other weights); None or "none" runs PyTorch (see
        `fer_model.onnx_runtime.onnx_runtime_for`). The folder still supplies the config (labels, temperature)
        and the processor.
        """
        from .onnx_runtime import onnx_runtime_for

        model, processor = load_model(source, device=device)
        runtime = onnx_runtime_for(model, source, onnx)
        if runtime is not None:
            kwargs["runtime"] = runtime
        return cls(model, processor, tta=tta, **kwargs)

    @property
    def onnx_file(self) -> Path | None:
        """The ONNX file onnxruntime runs the model from, or None when PyTorch runs it."""
        path = getattr(self.runtime, "path", None)
        return Path(path) if path else None

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def recognize(self, image: ImageInput, whole_image: bool | None = None) -> dict[str, Any]:
        """Faces (box, label, score, scores) in a PIL image or an HxW(xC) array; none (`faces: []`) if none is
        found, unless `whole_image` (default: the recognizer's) asks for the whole image to be classified then."""
        return next(self.recognize_many([image], batch_size=None, whole_image=whole_image))

    def recognize_many(self, images: Iterable[ImageInput], batch_size: int | None = FACES_PER_FORWARD,
                       whole_image: bool | None = None) -> Iterator[dict[str, Any]]:
        """recognize() of each image, in order, with the faces of consecutive images classified together.

        Faces are found image by image (only their crops are kept, so `images` may be a generator over a
        large folder); once they make `batch_size` model inputs (a face is one per TTA view; None: at the end)
        they go through the model in one forward pass and their images' results are yielded.
        """
        # model inputs per face (one per TTA view); recognize() (batch_size None) never needs the count
        views = 1 if batch_size is None else len(tta_views(torch.zeros(1, 3, 48, 48), self.tta))
        pending: list[tuple[bool, list[Box], list[ImageInput]]] = []
        for image in images:
            pending.append(self.locate(image, self.whole_image if whole_image is None else whole_image))
            if batch_size is not None and views * sum(len(boxes) for _, boxes, _ in pending) >= batch_size:
                yield from self._classified(pending)
                pending = []
        yield from self._classified(pending)

    def locate(self, image: ImageInput, whole_image: bool = False) -> tuple[bool, list[Box], list[ImageInput]]:
        """(face_found, boxes, crops) of one image: every face found; if none, nothing, or with `whole_image`
        the whole image as one "face"."""
        width, height = _size(image)
        working, scale = self.working_image(image)
        faces = (self.detector.faces(working) if getattr(self.detector, "level_eyes", False)
                 else [(box, None) for box in self.detector.detect(working)])
        boxes = [_scale_box(box, scale, (width, height)) for box, _ in faces]
        if boxes:
            eyes = [None if pair is None else tuple((x / scale, y / scale) for x, y in pair) for _, pair in faces]
            return True, boxes, [self._face_crop(image, box, pair) for box, pair in zip(boxes, eyes, strict=True)]
        if not whole_image:
            return False, [], []
        # the whole input, exactly: scaling the working copy's size back could lose a pixel
        return False, [(0, 0, width, height)], [image if scale == 1.0 else working]

    def _face_crop(self, image: ImageInput, box: Box, eyes: Eyes | None) -> ImageInput:
        """The detector's crop of a face, turned so that the eyes are level when the detector gives them."""
        crop_box = self.detector.expand(box, _size(image)[::-1])
        return _crop(image, crop_box) if eyes is None else levelled_crop(image, crop_box, eyes)

    def _classified(self, located: list[tuple[bool, list[Box], list[ImageInput]]]) -> Iterator[dict[str, Any]]:
        """The results of located images, their faces classified in one forward pass."""
        if not located:
            return
        crops = [crop for _, _, crops in located for crop in crops]
        probabilities = iter(self.classify(crops) if crops else [])
        for face_found, boxes, _ in located:
            result = {"face_found": face_found, "faces": [self._face(box, next(probabilities)) for box in boxes]}
            yield result if face_found or not boxes else {**result, "whole_image": True}

    def working_image(self, image: Image.Image | np.ndarray) -> tuple[np.ndarray, float]:
        """uint8 copy (HxW for a grey input, else HxWx3 RGB) at most max_side px on its longest side, and its
        scale w.r.t. the input.

        For face detection (and for classifying a whole image larger than max_side) only: the crops of
        found faces are cut from the input itself. Shrunk with the pixel module's one resize kernel.
        """
        width, height = _size(image)
        scale = min(1.0, self.max_side / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if isinstance(image, Image.Image):  # shrink the 8-bit image
            return np.asarray(resize_image(image, size) if scale < 1.0 else flatten_mode(image)), scale
        pixels = array_to_uint8(image)
        return (pixels if scale == 1.0 else resize_array(pixels, size[::-1])), scale

    @torch.inference_mode()
    def classify(self, crops: list[Image.Image | np.ndarray], batch_size: int = FACES_PER_FORWARD) -> np.ndarray:
        """Probabilities (N, num_labels) for N face crops (any image input), `batch_size` faces per forward pass
        (TTA included): a photo of 700 faces costs what 22 photos of 32 do, not +0.8 GB in one forward.

        The processor gives the whole faces; a model trained on crops sees their centre crop, or TTA's crops.
        """
        if len(crops) > batch_size:
            return np.concatenate([self.classify(crops[start : start + batch_size], batch_size)
                                   for start in range(0, len(crops), batch_size)])
        faces = self.processor(crops, return_tensors="pt", do_center_crop=False)["pixel_values"]
        logits = logits_with_tta(self.runtime, faces, self.tta, self.processor.crop_size)
        return logits.float().softmax(-1).cpu().numpy()

    def _face(self, box: Box, probabilities: np.ndarray) -> dict[str, Any]:
        best = int(probabilities.argmax())
        return {
            "box": list(box),
            "label": self.labels[best],
            "score": round(float(probabilities[best]), 6),
            "scores": {label: round(float(p), 6) for label, p in zip(self.labels, probabilities, strict=True)},
        }


def _size(image: Image.Image | np.ndarray) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray) and image.ndim in (2, 3) and image.shape[0] and image.shape[1]:
        return image.shape[1], image.shape[0]
    raise ValueError(f"expected a PIL image or an HxW / HxWxC array; got {type(image).__name__} "
                     f"{getattr(image, 'shape', '')}")


def _crop(image: Image.Image | np.ndarray, box: Box) -> Image.Image | np.ndarray:
    x, y, w, h = box
    return image.crop((x, y, x + w, y + h)) if isinstance(image, Image.Image) else image[y : y + h, x : x + w]


def _scale_box(box: Box, scale: float, size: tuple[int, int]) -> Box:
    """A box on the working copy -> the input image's pixels (clipped to its `size`, (width, height))."""
    if scale == 1.0:
        return box
    width, height = size
    x, y = min(round(box[0] / scale), width - 1), min(round(box[1] / scale), height - 1)
    return x, y, min(round(box[2] / scale), width - x), min(round(box[3] / scale), height - y)
