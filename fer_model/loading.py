"""load_model: one call that gives a ready-to-run model and its processor from a Hub id or a folder."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .image_processing import FerImageProcessor
from .modeling import FerForImageClassification

# The project's released model on the Hugging Face Hub; the app and CLI default to it.
DEFAULT_MODEL_ID = "fer-vgg16/fer-vgg16"


def load_model(
    source: str | os.PathLike = DEFAULT_MODEL_ID, device: str | torch.device = "cpu"
) -> tuple[FerForImageClassification, FerImageProcessor]:
    """Model (eval mode, on `device`) and processor from a local folder or a Hub repo id.

    Raises OSError naming the source, and how to point at another model, when it cannot be loaded.
    """
    source = str(Path(source).expanduser()) if str(source).startswith("~") else str(source)
    if not is_hub_id(source) and not Path(source).exists():
        raise OSError(f"There is no model folder at {source!r}. Point --model (or the FER_MODEL environment "
                      "variable) at a folder written by train/train.py or save_pretrained(), or at a Hub repo id.")
    try:
        model = FerForImageClassification.from_pretrained(source)
        processor = FerImageProcessor.from_pretrained(source)
    except OSError as error:
        raise OSError(
            f"Could not load a FER model from {source!r}: {error}\n"
            "Point --model (or the FER_MODEL environment variable) at a local folder written by "
            "train/train.py or save_pretrained(), or at a Hub repo id that is reachable."
        ) from error
    return model.to(device).eval(), processor


def is_hub_id(source: str | os.PathLike) -> bool:
    """Whether `source` names a Hub repo ("name" or "owner/name", by huggingface_hub's own rules) rather than
    a local path: an existing path, or anything a repo id cannot be ("./x", "/x", "~/x", "a/b/c"), is local."""
    if Path(source).expanduser().exists():
        return False
    try:
        validate_repo_id(str(source))
    except HFValidationError:
        return False
    return True
