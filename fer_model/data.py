"""load_fer2013: FER2013 (or another face dataset) in any of its common forms -> one DatasetDict schema.

Sources: a Hub dataset id, a Hub-style or save_to_disk folder (e.g. ``../shared/fer2013``), the Kaggle
``fer2013.csv`` (emotion, pixels, Usage), the Kaggle image folder (``train/<label>/*.jpg``, ``test/<label>/*.jpg``:
datasets' ``imagefolder`` builder; ``PublicTest_`` / ``PrivateTest_`` test files become validation / test by
its ``data_files`` patterns) or any ``Dataset(Dict)``. Columns: pass ``image_column`` / ``label_column``; only
when they are not given are they detected (fallback): the one ``Image`` / ``ClassLabel`` column, else ``image``
or ``pixels`` / ``label`` or ``emotion``. String labels become ClassLabel codes (``class_encode_column``); code
names match the FER names in any case (or a synonym) and the FER ClassLabel encodes them. ``splits``: the
splits wanted; the source needs only those (a test-only dataset can be evaluated); a missing validation split
is carved from train. Output: ``image`` (48x48 grey), ``label``, ``id`` and ``pixels`` (the face as 2304 uint8):
each image is decoded ONCE, in the row check (`fer_model.images.decode_face`), and `split_to_tensors` reads
``pixels``. A bad row raises `DataError` naming split, row / file / CSV line, label and problem;
``skip_bad_rows=True`` (``--skip_bad_rows``) drops the bad rows and prints how many.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value, load_dataset, load_from_disk
from datasets.data_files import SPLIT_KEYWORDS
from datasets.packaged_modules.imagefolder.imagefolder import IMAGE_EXTENSIONS

from .configuration import FER2013_LABELS
from .images import decode_face, png_bytes
from .loading import is_hub_id

DEFAULT_DATASET = "fer-vgg16/fer2013"  # the project's FER2013 on the Hub (the layout of ../shared/fer2013)
IMAGE_SIZE = 48  # FER2013 faces are 48x48 grayscale; other images are converted to that
SPLITS = ("train", "validation", "test")
KAGGLE_USAGE = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}  # fer2013.csv Usage
KAGGLE_PREFIXES = {"validation": "PublicTest_", "test": "PrivateTest_"}  # the image-folder release's test files
KAGGLE_EMOTION_CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # 4=sad, 6=neutral
LABEL_ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "happiness": "happy",
                 "sadness": "sad", "surprised": "surprise"}  # other FER releases' spellings
VALIDATION_FRACTION, VALIDATION_SEED, MAX_ERRORS_SHOWN = 0.1, 42, 3

FEATURES = Features({"image": Image(), "label": ClassLabel(names=list(FER2013_LABELS)), "id": Value("string"),
                     "pixels": List(Value("uint8"), length=IMAGE_SIZE * IMAGE_SIZE)})
_CHECKED_FEATURES = Features({**FEATURES, "_error": Value("string")})


class DataError(ValueError):
    """Bad input data; the message names the split, row, file or label at fault."""


def load_fer2013(
    source: str | os.PathLike | Dataset | DatasetDict = DEFAULT_DATASET,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    skip_bad_rows: bool = False,
    splits: Sequence[str] = SPLITS,
) -> DatasetDict:
    """The wanted `splits` of `source` (see the module docstring) in the one schema, every row checked."""
    if not splits or any(split not in SPLITS for split in splits):
        raise ValueError(f"splits={list(splits)} must be a non-empty subset of {SPLITS}")
    raw, origin = _read(source)
    found = _named_splits(raw, origin, skip_bad_rows)
    carve = "validation" in splits and "validation" not in found
    needed = [s for s in SPLITS if s in ((set(splits) - {"validation"}) | {"train"} if carve else set(splits))]
    missing = [split for split in needed if split not in found]
    if missing:
        raise DataError(f"{origin} has no {missing[0]} split (splits found: {list(found)})")
    checked = {s: _check_rows(found[s], s, origin, image_column, label_column, skip_bad_rows) for s in needed}
    if carve:
        checked["train"], checked["validation"] = _carve_validation(checked["train"])
    return DatasetDict({split: checked[split] for split in SPLITS if split in splits})


def _read(source: str | os.PathLike | Dataset | DatasetDict) -> tuple[Dataset | DatasetDict, str]:
    """The source as datasets objects, and how messages name it."""
    if isinstance(source, (Dataset, DatasetDict)):
        return source, "the dataset"
    path = Path(source).expanduser()
    if not path.exists() and (not is_hub_id(str(source)) or path.suffix.lower() == ".csv"):
        raise FileNotFoundError(f"dataset source {str(source)!r} does not exist")
    if path.is_file() and path.suffix.lower() != ".csv":
        raise DataError(f"{path}: a file source must be the Kaggle fer2013.csv (emotion, pixels, Usage)")
    data_files = _image_folder_files(path) if path.is_dir() else None
    try:
        if (path / "dataset_dict.json").is_file():
            return load_from_disk(str(path)), str(path)
        if path.is_file():
            return load_dataset("csv", data_files=str(path), split="train"), path.name
        if path.exists():  # a Hub-style folder (parquet...) or a folder of images (the imagefolder builder)
            return load_dataset(str(path), data_files=data_files), str(path)
        return load_dataset(str(source)), str(source)
    except Exception as error:  # parse errors, no data files, offline, unknown or gated repo...
        raise (DataError if path.exists() else OSError)(
            f"Could not load the dataset {str(source)!r} ({type(error).__name__}: {error}). Pass a local source "
            "instead: a Hub-style dataset folder, the Kaggle fer2013.csv, or the Kaggle image folder "
            "(train/<label>/*.jpg, test/<label>/*.jpg).") from error


def _image_folder_files(path: Path) -> dict[str, str] | None:
    """data_files for the Kaggle image-folder release, whose test/ holds PublicTest_ and PrivateTest_ files."""
    test = [p for p in sorted(path.glob("test/*/*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not any(p.name.startswith(KAGGLE_PREFIXES["validation"]) for p in test) or any(
            (path / name).is_dir() for name in ("validation", "valid", "val")):
        return None
    stray = [p for p in test if not p.name.startswith(tuple(KAGGLE_PREFIXES.values()))]
    if stray:
        raise DataError(f"{stray[0]}: test files are split by their PublicTest_/PrivateTest_ prefix, but not this one")
    splits = {split: f"test/*/{prefix}*" for split, prefix in KAGGLE_PREFIXES.items()}
    return {"train": "train/**", **splits} if (path / "train").is_dir() else splits


def _named_splits(source: Dataset | DatasetDict, origin: str, skip_bad_rows: bool) -> dict[str, Dataset]:
    """Splits named train / validation / test: renamed, or made from fer2013.csv's Usage column."""
    if isinstance(source, DatasetDict) and len(source) == 1 and "Usage" in next(iter(source.values())).column_names:
        source = next(iter(source.values()))
    if isinstance(source, Dataset):
        return _split_by_usage(source, origin, skip_bad_rows)
    found: dict[str, Dataset] = {}
    for name, dataset in source.items():
        split = KAGGLE_USAGE.get(name) or next((str(s) for s, words in SPLIT_KEYWORDS.items() if name.lower() in words),
                                                None)  # datasets' own split names ("valid", "dev"...)
        if split not in SPLITS:
            print(f"load_fer2013: ignoring split {name!r} of {origin} (not train/validation/test)", file=sys.stderr)
        elif split in found:
            raise DataError(f"{origin} has two splits for {split}: rename one of them")
        else:
            found[split] = dataset
    return found


def _split_by_usage(table: Dataset, origin: str, skip_bad_rows: bool) -> dict[str, Dataset]:
    if "Usage" not in table.column_names:
        raise DataError(f"{origin} is a single table without a Usage column: pass a DatasetDict of splits")
    table = table.add_column("_row", list(range(len(table))))  # the CSV line, for messages
    unknown = [(i, value) for i, value in enumerate(table["Usage"]) if value not in KAGGLE_USAGE]
    if unknown:
        _bad_rows(len(unknown), f"row(s) of {origin} that belong to no split: {origin} line {unknown[0][0] + 2}: "
                  f"unknown Usage value {unknown[0][1]!r} (expected {list(KAGGLE_USAGE)})", skip_bad_rows)
    splits = {split: table.filter(lambda value, usage=usage: value == usage, input_columns="Usage")
              for usage, split in KAGGLE_USAGE.items()}
    return {split: data for split, data in splits.items() if len(data)}


def _column(dataset: Dataset, given: str | None, kind: str, feature: type, names: tuple[str, ...]) -> str:
    """The given column, or (fallback) the only column of that feature type, else the one with a usual name."""
    columns, typed = dataset.column_names, [c for c, f in dataset.features.items() if isinstance(f, feature)]
    found = [c for c in columns if c == given] if given else typed if len(typed) == 1 else [
        c for c in columns if c.lower() in names]
    if len(found) != 1:
        problem = f"{kind}_column={given!r} is not a column" if given else f"cannot tell which column holds the {kind}s"
        raise DataError(f"{problem} (columns: {columns}); pass {kind}_column=" + (
            " (in an image folder, every image sits in a <label>/ folder)" if kind == "label" else ""))
    return found[0]


def _check_rows(dataset: Dataset, split: str, origin: str, image_column: str | None, label_column: str | None,
                skip_bad_rows: bool) -> Dataset:
    """Decode every image (once) and name every label, in the output schema; raise on (or drop) bad rows."""
    image_column = _column(dataset, image_column, "image", Image, ("image", "pixels"))
    label_column = _column(dataset, label_column, "label", ClassLabel, ("label", "emotion"))
    if isinstance(dataset.features[image_column], Image):  # bytes / path: decoded once, below
        dataset = dataset.cast_column(image_column, Image(decode=False))
    dataset, names = _label_codes(dataset, label_column, origin)
    fer_names = [LABEL_ALIASES.get(name.strip().lower(), name.strip().lower()) for name in names]  # any case, synonyms
    id_column = "id" if "id" in dataset.column_names and image_column != "id" else None

    def check(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = []
        for k, index in enumerate(indices):
            value, code = batch[image_column][k], batch[label_column][k]
            path = value.get("path") if isinstance(value, dict) else None
            row_id = str(batch[id_column][k]) if id_column else Path(path).stem if path else f"{split}_{index}"
            row = {"image": None, "label": None, "id": row_id, "pixels": None, "_error": None}
            if code is None or not 0 <= code < len(names):
                row["_error"] = "missing label" if code is None else f"unknown label code {code} (codes: {names})"
            elif fer_names[code] not in FER2013_LABELS:
                row["_error"] = f"unknown label {names[code]!r} (expected one of {list(FER2013_LABELS)})"
            else:
                try:  # the one decode of this image
                    face, data = _parse_pixels(value) if isinstance(value, str) else decode_face(
                        value.get("bytes") or Path(value["path"]).read_bytes(), IMAGE_SIZE)
                    row.update(image={"bytes": data, "path": None}, label=fer_names[code], pixels=face.ravel())
                except Exception as exc:  # malformed pixels (DataError), unreadable files (ImageLoadError, OSError)
                    row["_error"] = str(exc) if isinstance(exc, DataError) else f"unreadable image ({exc})"
            where = path or (f"{origin} line {batch['_row'][k] + 2}" if "_row" in batch  # CSV header = line 1
                             else f"row {index}" + (f" (id {row_id!r})" if id_column else ""))
            rows.append({**row, "_error": row["_error"] and f"{where}: {row['_error']}"})
        return {key: [row[key] for row in rows] for key in _CHECKED_FEATURES}

    checked = dataset.map(check, batched=True, with_indices=True, remove_columns=dataset.column_names,
                          features=_CHECKED_FEATURES, desc=f"checking {split}")
    errors = [error for error in checked["_error"] if error is not None]
    if errors:
        _bad_rows(len(errors), f"bad row(s) in the {split} split: {'; '.join(errors[:MAX_ERRORS_SHOWN])}",
                  skip_bad_rows)
        checked = checked.filter(lambda error: error is None, input_columns="_error")
    if len(checked) == 0:
        raise DataError(f"the {split} split has no usable rows")
    return checked.remove_columns("_error")


def _bad_rows(count: int, what: str, skip_bad_rows: bool) -> None:
    """Raise a DataError naming the bad rows, or (skip_bad_rows) say on stderr how many are dropped."""
    if not skip_bad_rows:
        raise DataError(f"{count} {what}. Fix the data, or pass --skip_bad_rows (skip_bad_rows=True) to drop them.")
    print(f"load_fer2013: skipped {count} {what}", file=sys.stderr)


def _label_codes(dataset: Dataset, column: str, origin: str) -> tuple[Dataset, list[str]]:
    """The label column as integer codes, and their names (the ClassLabel's, or fer2013.csv's)."""
    if isinstance(dataset.features[column], Value) and dataset.features[column].dtype in ("string", "large_string"):
        dataset = dataset.class_encode_column(column)  # names -> ClassLabel codes
    if isinstance(dataset.features[column], ClassLabel):
        return dataset, list(dataset.features[column].names)
    if column.lower() == "emotion" and "pixels" in dataset.column_names:  # integer codes in fer2013.csv's coding
        return dataset, list(KAGGLE_EMOTION_CODES)
    raise DataError(f"label column {column!r} of {origin} holds {dataset.features[column]}, not names: cast it to "
                    "ClassLabel(names=[...]) first (dataset.cast_column)")


def _parse_pixels(pixels: str) -> tuple[np.ndarray, bytes]:
    """fer2013.csv's space-separated pixel string -> (48x48 uint8 face, PNG bytes)."""
    values = np.array(pixels.split())
    if values.size != IMAGE_SIZE * IMAGE_SIZE or not np.char.isdigit(values).all() or values.astype(int).max() > 255:
        raise DataError(f"malformed pixels: {values.size} values, expected {IMAGE_SIZE**2} integers in 0..255")
    face = values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    return face, png_bytes(face)


def _carve_validation(train: Dataset) -> tuple[Dataset, Dataset]:
    """(train, validation): a stratified, seeded share of train, for sources without a validation split."""
    try:
        parts = train.train_test_split(test_size=VALIDATION_FRACTION, seed=VALIDATION_SEED, stratify_by_column="label")
    except ValueError:  # a class with a single row cannot be stratified
        parts = train.train_test_split(test_size=VALIDATION_FRACTION, seed=VALIDATION_SEED)
    print(f"load_fer2013: no validation split in the source; carved {len(parts['test'])} rows "
          f"({VALIDATION_FRACTION:.0%}, seed {VALIDATION_SEED}) from train", file=sys.stderr)
    return parts["train"], parts["test"]


def split_to_tensors(split: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 48, 48) uint8 faces and (N,) int64 labels from `pixels` (training keeps them on the device)."""
    if "pixels" not in split.column_names:
        raise DataError(f"the split has no 'pixels' column (columns: {split.column_names}): load it with load_fer2013")
    table = split.with_format("arrow", columns=["pixels", "label"])[:]
    pixels = table.column("pixels").combine_chunks().flatten().to_numpy().reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return torch.from_numpy(pixels.copy()), torch.from_numpy(table.column("label").to_numpy().astype(np.int64))
