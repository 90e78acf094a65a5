"""Tiny synthetic FER2013 look-alikes, written in every source form that fer_model.data reads.

Images are learnable on purpose: class k is a bright band at rows 6k..6k+5 on a noisy background, so a
couple of epochs already move accuracy away from chance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from fer_model import FER2013_LABELS

KAGGLE_EMOTION_CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIZES = {"train": 28, "validation": 14, "test": 13}


def faces(count: int, seed: int = 0, offset: int = 0, labels: list[int] | None = None) -> tuple[np.ndarray, list[int]]:
    """(count, 48, 48) uint8 images and their labels (cycling through the 7 classes unless given)."""
    rng = np.random.default_rng(seed)
    labels = [(offset + i) % len(FER2013_LABELS) for i in range(count)] if labels is None else list(labels)
    if len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} faces")
    images = rng.integers(0, 90, size=(count, 48, 48), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[6 * label : 6 * label + 6] = 230
    return images, labels


def split_arrays(sizes: dict[str, int] = SIZES, labels: dict[str, list[int]] | None = None,
                 ) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Each split's faces; `labels` (optional, per split) sets the classes, e.g. an imbalanced train split."""
    labels = labels or {}
    return {split: faces(n, seed=i, offset=i, labels=labels.get(split)) for i, (split, n) in enumerate(sizes.items())}


def hub_dataset(sizes: dict[str, int] = SIZES, labels: dict[str, list[int]] | None = None) -> DatasetDict:
    features = Features({"image": Image(), "label": ClassLabel(names=list(FER2013_LABELS)), "id": Value("string")})
    return DatasetDict({
        split: Dataset.from_dict({"image": [PILImage.fromarray(a) for a in images], "label": split_labels,
                                  "id": [f"{split}_{i}" for i in range(len(split_labels))]}, features=features)
        for split, (images, split_labels) in split_arrays(sizes, labels).items()
    })


def write_hub_folder(root: Path, sizes: dict[str, int] = SIZES, labels: dict[str, list[int]] | None = None) -> Path:
    """A Hub-style dataset folder (data/<split>-00000-of-00001.parquet), like ../shared/fer2013."""
    for split, dataset in hub_dataset(sizes, labels).items():
        (root / "data").mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def write_kaggle_csv(path: Path, sizes: dict[str, int] = SIZES, extra_rows: list[list[str]] | None = None) -> Path:
    """The original fer2013.csv layout: emotion (Kaggle codes), pixels, Usage."""
    usage = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["emotion", "pixels", "Usage"])
        for split, (images, labels) in split_arrays(sizes).items():
            for image, label in zip(images, labels, strict=True):
                code = KAGGLE_EMOTION_CODES.index(FER2013_LABELS[label])
                writer.writerow([code, " ".join(map(str, image.ravel())), usage[split]])
        for row in extra_rows or []:
            writer.writerow(row)
    return path


def write_image_folder(root: Path, sizes: dict[str, int] = SIZES, prefixes: bool = True, side: int = 48,
                       mode: str = "L", suffix: str = ".png") -> Path:
    """The Kaggle image-folder release: train/<Label>/*.jpg, test/<Label>/{PublicTest,PrivateTest}_*.jpg.

    `side` / `mode` / `suffix` write the faces as another face dataset might ship them (e.g. 96 px RGB JPEGs).
    """
    arrays = split_arrays(sizes)
    for split, (images, labels) in arrays.items():
        folder = "train" if split == "train" else "test"
        prefix = {"train": "Training_", "validation": "PublicTest_", "test": "PrivateTest_"}[split] if prefixes else ""
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            path = root / folder / FER2013_LABELS[label].capitalize() / f"{prefix}{split}{i:04d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            face = PILImage.fromarray(image)
            face = face if side == 48 else face.resize((side, side), PILImage.Resampling.BICUBIC)
            face.convert(mode).save(path)
    return root
