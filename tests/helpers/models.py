"""Small random-init models saved the way train.py saves them."""

from __future__ import annotations

from pathlib import Path

import torch

from fer_model import FerConfig, FerForImageClassification, FerImageProcessor


def save_random_model(folder: Path, seed: int = 0, **config_kwargs) -> Path:
    """A random-init model + its processor, saved the way train.py saves them."""
    torch.manual_seed(seed)
    config = FerConfig(**config_kwargs)
    FerForImageClassification(config).eval().save_pretrained(folder)
    FerImageProcessor.from_model_config(config).save_pretrained(folder)
    return folder
