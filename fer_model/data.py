"""load_fer2013: FER2013 from any of its common forms -> one DatasetDict schema.

Sources (`source` argument):

1. a Hub dataset id, or a local Hub-style dataset folder (`load_dataset(path)`, e.g. ``../shared/fer2013``),
   or a folder written by ``DatasetDict.save_to_disk``;
2. the original Kaggle ``fer2013.csv`` (columns emotion, pixels, Usage = Training / PublicTest / PrivateTest);
3. the Kaggle image-folder release (``train/<label>/*.jpg``, ``test/<label>/*.jpg``): ``test`` is split
   into validation / test by the ``PublicTest_`` / ``PrivateTest_`` file-name prefixes; without prefixes,
   validation is carved from train with a fixed seed;
4. any ``datasets.Dataset(Dict)`` with an image column (or a Kaggle-style ``pixels`` column) and a label
   column, detected or named by ``image_column`` / ``label_column``; label names are matched to the FER
   names case-insensitively.

A source with train and test splits but no validation split gets one carved from train (stratified,
fixed seed, 10 %); a source without a train or test split is an error.

Output: ``DatasetDict(train, validation, test)`` with ``image`` (48x48 grayscale PIL), ``label``
(ClassLabel with `FER2013_LABELS`) and ``id`` (the original id, file stem or CSV line).

Every row is checked once (label known, image readable). A bad row raises `DataError` naming the split,
the row / file / label and the problem; with ``skip_bad_rows=True`` (``--skip_bad_rows``) bad rows are
dropped and their count is printed, so nothing disappears silently.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset, load_from_disk
from PIL import Image as PILImage

from .configuration import FER2013_LABELS

# The project's FER2013 on the Hugging Face Hub (the same layout as ../shared/fer2013); `--dataset` default.
DEFAULT_DATASET = "fer-vgg16/fer2013"
IMAGE_SIZE = 48  # FER2013 faces are 48x48 grayscale; other images are converted to that
SPLITS = ("train", "validation", "test")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev", "publictest", "public_test"),
    "test": ("test", "privatetest", "private_test"),
}
# The original fer2013.csv: its `Usage` values and its emotion codes (not alphabetical: 4=Sad, 6=Neutral).
KAGGLE_USAGE = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
KAGGLE_EMOTION_CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Spellings used by other FER releases for the same seven classes.
LABEL_ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "happiness": "happy",
                 "sadness": "sad", "surprised": "surprise"}
LABEL_COLUMN_NAMES = ("label", "labels", "emotion", "emotions", "expression", "class", "target")
IMAGE_COLUMN_NAMES = ("image", "img", "face", "pixels")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 42
MAX_ERRORS_SHOWN = 3

FEATURES = Features({"image": Image(), "label": ClassLabel(names=list(FER2013_LABELS)), "id": Value("string")})
_CHECKED_FEATURES = Features({**FEATURES, "_where": Value("string"), "_error": Value("string")})


class DataError(ValueError):
    """Bad input data; the message names the split, row, file or label at fault."""


class MalformedPixels(ValueError):
    """A fer2013.csv `pixels` value that is not 48x48 integers in 0..255."""


def load_fer2013(
    source: str | os.PathLike | Dataset | DatasetDict = DEFAULT_DATASET,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    skip_bad_rows: bool = False,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = VALIDATION_SEED,
) -> DatasetDict:
    """FER2013 from `source` (see the module docstring) as DatasetDict(train, validation, test).

    Args:
        image_column / label_column: column names, when detection is ambiguous (kind 4).
        label_names: names of integer label codes for a plain integer label column (kind 4).
        skip_bad_rows: drop rows with an unknown label, unreadable image or malformed pixels (and print
            how many) instead of raising `DataError`.
        validation_fraction / seed: how validation is carved from train when the source has none.
    """
    options = {"image_column": image_column, "label_column": label_column, "label_names": label_names,
               "skip_bad_rows": skip_bad_rows}
    if isinstance(source, (Dataset, DatasetDict)):
        splits = _from_datasets(source, origin="the dataset", **options)
    else:
        splits = _from_path(str(source), **options)
    return _with_validation(splits, validation_fraction, seed)


def _from_path(source: str, **options: Any) -> dict[str, Dataset]:
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path}: a file source must be the Kaggle fer2013.csv (emotion, pixels, Usage)")
        try:
            table = load_dataset("csv", data_files=str(path), split="train")
        except Exception as error:  # pandas / pyarrow parse errors
            raise DataError(f"{path}: not a readable CSV file ({error})") from error
        return _from_datasets(table, origin=path.name, **options)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return _from_datasets(load_from_disk(str(path)), origin=str(path), **options)
        if _is_image_folder(path):
            return _from_image_folder(path, skip_bad_rows=options["skip_bad_rows"])
        try:
            folder = load_dataset(str(path))
        except Exception as error:  # no data files, mixed formats, ...
            raise DataError(f"{path} is not a dataset folder ({type(error).__name__}: {error}); expected a "
                            "Hub-style dataset folder, a save_to_disk folder, or the Kaggle image folder "
                            "(train/, test/)") from error
        return _from_datasets(folder, origin=str(path), **options)
    if source.startswith((".", "/", "~")) or path.suffix.lower() == ".csv" or source.count("/") > 1:
        raise FileNotFoundError(f"dataset source {source!r} does not exist")
    try:
        hub = load_dataset(source)
    except Exception as error:  # offline, unknown repo, gated repo: all raise differently
        raise OSError(
            f"Could not load the dataset {source!r} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Pass a local source instead: a Hub-style dataset folder, the Kaggle fer2013.csv, or the Kaggle "
            "image folder (train/<label>/*.jpg, test/<label>/*.jpg)."
        ) from error
    return _from_datasets(hub, origin=source, **options)


# --- kind 4 (and 1, 2): datasets ------------------------------------------------------------------


def _from_datasets(
    source: Dataset | DatasetDict,
    *,
    origin: str,
    image_column: str | None,
    label_column: str | None,
    label_names: Sequence[str] | None,
    skip_bad_rows: bool,
) -> dict[str, Dataset]:
    """Detect the columns, rename the splits, check and convert every row."""
    raw = _split_by_usage(source, origin, skip_bad_rows)
    first = next(iter(raw.values()))
    image_col = _image_column(first, image_column)
    label_col, names = _label_column(first, label_column, label_names, origin)
    id_col = "id" if "id" in first.column_names and image_col != "id" else None
    splits = {}
    for split, dataset in raw.items():
        missing = [c for c in (image_col, label_col) if c not in dataset.column_names]
        if missing:
            raise DataError(f"{split} split of {origin} has no column {missing[0]!r} (columns: {dataset.column_names})")
        splits[split] = _check_rows(dataset, split, image_col, label_col, names, id_col, origin, skip_bad_rows)
    return splits


def _split_by_usage(source: Dataset | DatasetDict, origin: str, skip_bad_rows: bool) -> dict[str, Dataset]:
    """Named splits, or (for fer2013.csv-style tables) splits made from the Usage column."""
    if isinstance(source, DatasetDict) and len(source) == 1:
        only = next(iter(source.values()))
        if _find_column(only, ("usage",)):
            source = only
    if isinstance(source, Dataset):
        usage = _find_column(source, ("usage",))
        if usage is None:
            raise DataError(f"{origin} is a single table without a Usage column: pass a DatasetDict with "
                            "train / validation / test (or train / test) splits")
        source = source.add_column("_row", list(range(len(source))))
        values = source[usage]
        unknown = [i for i, value in enumerate(values) if value not in KAGGLE_USAGE]
        if unknown:
            first = f"{_row_place(origin, unknown[0])}: unknown {usage} value {values[unknown[0]]!r} " \
                    f"(expected one of {list(KAGGLE_USAGE)})"
            if not skip_bad_rows:
                raise DataError(f"{len(unknown)} row(s) of {origin} belong to no split: {first}. "
                                "Fix the data, or pass --skip_bad_rows (skip_bad_rows=True) to drop them.")
            print(f"load_fer2013: skipped {len(unknown)} row(s) of {origin} that belong to no split: {first}",
                  file=sys.stderr)
        splits = {}
        for name, split in KAGGLE_USAGE.items():
            rows = [i for i, value in enumerate(values) if value == name]
            if not rows:
                raise DataError(f"{origin} has no rows with {usage}={name} (the {split} split)")
            splits[split] = source.select(rows)
        return splits
    found: dict[str, Dataset] = {}
    for name, dataset in source.items():
        split = next((s for s, aliases in SPLIT_ALIASES.items() if name.lower() in aliases), None)
        if split is None:
            print(f"load_fer2013: ignoring split {name!r} of {origin} (not train/validation/test)", file=sys.stderr)
        elif split in found:
            raise DataError(f"{origin} has two splits for {split}: rename one of them")
        else:
            found[split] = dataset
    for split in ("train", "test"):
        if split not in found:
            raise DataError(f"{origin} has no {split} split (splits found: {list(source)})")
    return found


def _row_place(origin: str, row: int) -> str:
    """How an error names a row: its line in a CSV file (header = line 1), else its index."""
    return f"{origin} line {row + 2}" if origin.lower().endswith(".csv") else f"row {row}"


def _find_column(dataset: Dataset, names: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in dataset.column_names}
    return next((lower[n] for n in names if n in lower), None)


def _image_column(dataset: Dataset, given: str | None) -> str:
    columns = dataset.column_names
    if given is not None:
        if given not in columns:
            raise DataError(f"image_column={given!r} is not a column (columns: {columns})")
        return given
    typed = [c for c, f in dataset.features.items() if isinstance(f, Image)]
    if len(typed) == 1:
        return typed[0]
    named = _find_column(dataset, IMAGE_COLUMN_NAMES)
    if named is not None and (not typed or named in typed):
        return named
    raise DataError(f"cannot tell which column holds the images (columns: {columns}); pass image_column=")


def _label_column(dataset: Dataset, given: str | None, label_names: Sequence[str] | None,
                  origin: str) -> tuple[str, list[str] | None]:
    """The label column and, for integer labels, the names of the codes (None: labels are strings)."""
    columns = dataset.column_names
    if given is not None and given not in columns:
        raise DataError(f"label_column={given!r} is not a column (columns: {columns})")
    column = given
    if column is None:
        typed = [c for c, f in dataset.features.items() if isinstance(f, ClassLabel)]
        column = typed[0] if len(typed) == 1 else _find_column(dataset, LABEL_COLUMN_NAMES)
    if column is None:
        raise DataError(f"cannot tell which column holds the labels (columns: {columns}); pass label_column=")
    feature = dataset.features[column]
    if label_names is not None:
        return column, list(label_names)
    if isinstance(feature, ClassLabel):
        return column, list(feature.names)
    if isinstance(feature, Value) and feature.dtype == "string":
        return column, None
    if isinstance(feature, Value) and "int" in feature.dtype:
        if column.lower() == "emotion" and _find_column(dataset, ("pixels",)):
            return column, list(KAGGLE_EMOTION_CODES)  # the original fer2013.csv coding
        raise DataError(f"label column {column!r} of {origin} holds integers without names: cast it to "
                        "ClassLabel(names=[...]) or pass label_names=")
    raise DataError(f"label column {column!r} of {origin} has type {feature}; expected ClassLabel, str or int")


# --- kind 3: the Kaggle image folder ---------------------------------------------------------------


def _is_image_folder(path: Path) -> bool:
    train = path / "train"
    return train.is_dir() and any(child.is_dir() for child in train.iterdir())


def _from_image_folder(root: Path, *, skip_bad_rows: bool) -> dict[str, Dataset]:
    """train/<label>/*.jpg and test/<label>/*.jpg (+ optional validation/ or val/) -> checked splits."""
    if not (root / "test").is_dir():
        raise DataError(f"image folder {root} has no test/ folder "
                        "(expected train/<label>/*.jpg and test/<label>/*.jpg)")
    files = {split: _list_images(root / split) for split in ("train", "test")}
    val_dir = next((root / d for d in ("validation", "val") if (root / d).is_dir()), None)
    if val_dir is not None:
        files["validation"] = _list_images(val_dir)
    else:
        prefixed = [p for p in files["test"] if p.name.startswith(("PublicTest_", "PrivateTest_"))]
        if prefixed:
            unprefixed = [p for p in files["test"] if p not in set(prefixed)]
            if unprefixed:
                raise DataError(f"{unprefixed[0]}: test files are split by their PublicTest_/PrivateTest_ prefix, "
                                "but this one has neither")
            files["validation"] = [p for p in prefixed if p.name.startswith("PublicTest_")]
            files["test"] = [p for p in prefixed if p.name.startswith("PrivateTest_")]
    splits = {}
    for split, paths in files.items():
        if not paths:
            raise DataError(f"image folder {root} has no images for the {split} split")
        labels = [p.parent.name if p.parent.parent.parent == root else None for p in paths]
        table = Dataset.from_dict({
            "image": [str(p) for p in paths],
            "label": labels,
            "id": [p.stem for p in paths],
            "_where": [str(p) for p in paths],
            "_error": [None if label else "not inside a <label>/ folder" for label in labels],
        }, features=Features({"image": Value("string"), "label": Value("string"), "id": Value("string"),
                              "_where": Value("string"), "_error": Value("string")}))
        splits[split] = _check_rows(table, split, "image", "label", None, "id", str(root), skip_bad_rows)
    return splits


def _list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (one level of label folders); other files are counted and reported."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.name.startswith("."):
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    if others:
        print(f"load_fer2013: ignored {len(others)} non-image file(s) in {folder}, e.g. {others[0]}", file=sys.stderr)
    return images


# --- row checks, shared by every source ------------------------------------------------------------


def _check_rows(
    dataset: Dataset,
    split: str,
    image_column: str,
    label_column: str,
    label_names: list[str] | None,
    id_column: str | None,
    origin: str,
    skip_bad_rows: bool,
) -> Dataset:
    """Convert every row to the output schema; raise on (or drop and count) the bad ones."""
    if isinstance(dataset.features[image_column], Image):
        dataset = dataset.cast_column(image_column, Image(decode=False))
    lookup = _label_lookup()

    def check(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {"image": [], "label": [], "id": [], "_where": [], "_error": []}
        rows = batch.get("_row", indices)
        for k, index in enumerate(indices):
            row_id = str(batch[id_column][k]) if id_column else f"{split}_{index}"
            place = batch["_where"][k] if "_where" in batch else _row_place(origin, rows[k])
            if id_column and "_where" not in batch:
                place += f" (id {row_id!r})"
            error = batch["_error"][k] if "_error" in batch else None
            label = -1
            image = None
            if error is None:
                label, error = _label_id(batch[label_column][k], label_names, lookup)
            if error is None:
                try:
                    image = {"bytes": _image_bytes(batch[image_column][k]), "path": None}
                except MalformedPixels as exc:
                    error = str(exc)
                except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError... for broken files
                    error = f"unreadable image ({type(exc).__name__}: {exc})"
            out["image"].append(image)
            out["label"].append(label if error is None else -1)
            out["id"].append(row_id)
            out["_where"].append(place)
            out["_error"].append(error)
        return out

    checked = dataset.map(check, batched=True, with_indices=True, remove_columns=dataset.column_names,
                          features=_CHECKED_FEATURES, desc=f"checking {split}")
    errors = [(w, e) for w, e in zip(checked["_where"], checked["_error"], strict=True) if e is not None]
    if errors:
        shown = "; ".join(f"{w}: {e}" for w, e in errors[:MAX_ERRORS_SHOWN])
        if not skip_bad_rows:
            raise DataError(f"{len(errors)} bad row(s) in the {split} split: {shown}. "
                            "Fix the data, or pass --skip_bad_rows (skip_bad_rows=True) to drop them.")
        print(f"load_fer2013: skipped {len(errors)} bad row(s) in the {split} split: {shown}", file=sys.stderr)
        checked = checked.filter(lambda e: e is None, input_columns="_error")
    if len(checked) == 0:
        raise DataError(f"the {split} split has no usable rows")
    return checked.remove_columns(["_where", "_error"])


def _label_lookup() -> dict[str, int]:
    lookup = {name.lower(): i for i, name in enumerate(FER2013_LABELS)}
    lookup.update({alias: lookup[name] for alias, name in LABEL_ALIASES.items()})
    return lookup


def _label_id(value: Any, names: list[str] | None, lookup: dict[str, int]) -> tuple[int, str | None]:
    """A source label (a name, or a code into `names`) -> (FER class id, error message or None)."""
    if value is None:
        return -1, "missing label"
    if names is not None:
        try:
            code = int(value)
        except (TypeError, ValueError):
            return -1, f"label {value!r} is not an integer code"
        if not 0 <= code < len(names):
            return -1, f"unknown label code {code} (codes 0..{len(names) - 1} are {names})"
        value = names[code]
    key = str(value).strip().lower()
    if key not in lookup:
        return -1, f"unknown label {str(value)!r} (expected one of {list(FER2013_LABELS)})"
    return lookup[key], None


def _image_bytes(value: Any) -> bytes:
    """Encoded 48x48 grayscale image from a datasets image dict, raw bytes, a file path or a pixels string."""
    if isinstance(value, dict):
        data = value.get("bytes") or Path(value["path"]).read_bytes()
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str) and Path(value).suffix.lower() in IMAGE_SUFFIXES:
        data = Path(value).read_bytes()
    elif isinstance(value, str):
        return _png(_parse_pixels(value))
    else:
        raise ValueError(f"unsupported image value of type {type(value).__name__}")
    image = PILImage.open(io.BytesIO(data))
    image.load()
    if image.mode == "L" and image.size == (IMAGE_SIZE, IMAGE_SIZE) and image.format in ("JPEG", "PNG"):
        return data  # already FER2013-shaped: keep the original bytes
    gray = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), PILImage.Resampling.BILINEAR)
    return _png(np.asarray(gray))


def _parse_pixels(pixels: str) -> np.ndarray:
    """fer2013.csv's space-separated pixel string -> 48x48 uint8 array."""
    try:
        values = np.array(pixels.split(), dtype=np.int64)
    except ValueError:
        raise MalformedPixels("malformed pixels: not space-separated integers") from None
    if values.size != IMAGE_SIZE * IMAGE_SIZE:
        raise MalformedPixels(f"malformed pixels: {values.size} values, expected {IMAGE_SIZE * IMAGE_SIZE} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise MalformedPixels("malformed pixels: values outside 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _with_validation(splits: dict[str, Dataset], fraction: float, seed: int) -> DatasetDict:
    """Add a validation split carved from train (stratified, fixed seed) when the source has none."""
    if "validation" not in splits:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_fraction={fraction} must be in (0, 1)")
        try:
            parts = splits["train"].train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
        except ValueError:  # a class with a single row cannot be stratified
            parts = splits["train"].train_test_split(test_size=fraction, seed=seed)
        print(f"load_fer2013: no validation split in the source; carved {len(parts['test'])} rows "
              f"({fraction:.0%}, seed {seed}) from train", file=sys.stderr)
        splits = {**splits, "train": parts["train"], "validation": parts["test"]}
    return DatasetDict({split: splits[split] for split in SPLITS})


# --- tensors for training and evaluation -----------------------------------------------------------


def split_to_tensors(split: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a split once: (N, 1, 48, 48) uint8 images and (N,) int64 labels.

    Training keeps these resident (on the GPU) and slices batches from them, so the loop never touches PIL.
    """
    arrays = split.with_format("numpy", columns=["image", "label"])[:]
    images = np.asarray(arrays["image"])
    if images.dtype == object or images.ndim != 3:
        raise DataError(f"images are not all {IMAGE_SIZE}x{IMAGE_SIZE} grayscale: load them with load_fer2013()")
    return torch.from_numpy(images.astype(np.uint8, copy=False)).unsqueeze(1), torch.from_numpy(
        arrays["label"].astype(np.int64))
