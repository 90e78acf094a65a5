"""`python -m fer_model predict` over many images: files, folders (recursively) and glob patterns.

Each image is read and its faces found one at a time (only the face crops are kept); the faces of
consecutive images go through the model together (`EmotionRecognizer.recognize_many`, 32 faces a forward
pass by default), so a folder of one-face photos costs one forward per 32 photos, not one per photo. The results are
those of `recognize()` per image. Output: one JSON line per image on stdout (as for a single image), or
`--jsonl FILE`, and/or `--csv FILE` (one row per face, numbered from 1 left to right, CSV_COLUMNS then the 7
probabilities; an image without a face gives one row saying so: face_found False, label "no face", the other cells
empty; with --whole_image, one row for the whole image instead: face "whole image", face_found False and the box
0, 0, width, height, classified as a face crop). Unreadable files have no row. Output files are written beside their
destination under a temporary name and renamed into place at the end, so a file that exists is complete.

An input that cannot be read (not an image, truncated, missing, a pattern that matches nothing, a folder
without images) is reported on stderr, counted, and the others are still processed; the exit code is then 2.
stdout carries results only: the progress bar (when stderr is a terminal) and messages go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import json
import os
import sys
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from .images import FORMATS, ImageLoadError, load_image

# Files taken from a folder: the suffixes PIL registers for the formats load_image decodes (fer_model.images.FORMATS).
IMAGE_SUFFIXES = tuple(sorted(suffix for suffix, name in Image.registered_extensions().items() if name in FORMATS))
CSV_COLUMNS = ("file", "face", "face_found", "x", "y", "width", "height", "label", "score")  # + one per emotion


@dataclass
class Inputs:
    """What the command line names, in order: (image file, None) or (argument, why it gives no file)."""

    entries: list[tuple[str, str | None]] = field(default_factory=list)
    skipped: int = 0  # files in the folders given whose suffix is not an image's

    @property
    def files(self) -> list[str]:
        return [path for path, error in self.entries if error is None]


def expand_inputs(arguments: Sequence[str]) -> Inputs:
    """Files as given; folders as every image file under them (sorted, recursively); glob patterns (`*`, `?`,
    `[...]`, `**`) as their sorted matches. A missing file stays in `files`: reading it reports it."""
    inputs = Inputs()
    for argument in arguments:
        if os.path.isdir(argument):
            _add_folder(inputs, argument)
        elif os.path.exists(argument) or not glob.has_magic(argument):
            inputs.entries.append((argument, None))
        else:
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                inputs.entries.append((argument, "no file matches this pattern"))
            for match in matches:
                if os.path.isdir(match):
                    _add_folder(inputs, match)
                else:
                    inputs.entries.append((match, None))
    return inputs


def _add_folder(inputs: Inputs, folder: str) -> None:
    found = 0
    for root, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                inputs.entries.append((os.path.join(root, name), None))
                found += 1
            else:
                inputs.skipped += 1
    if not found:
        inputs.entries.append((folder, f"no image files in this folder (looked for {', '.join(IMAGE_SUFFIXES)})"))


NO_FACE_LABEL = "no face"  # the label cell of an image's one row when no face was found


def csv_row(file: str, index: int | str, face_found: bool, face: dict[str, Any]) -> list[Any]:
    """One CSV row: the file, the face's number in it, face_found, its box, label, score and the 7 probabilities."""
    return [file, index, face_found, *face["box"], face["label"], face["score"], *face["scores"].values()]


def csv_rows(file: str, result: dict[str, Any], labels: list[str]) -> list[list[Any]]:
    """An image's rows: one per face (numbered from 1), one for the whole image, or one saying no face was found."""
    if result.get("whole_image"):
        return [csv_row(file, "whole image", False, face) for face in result["faces"]]
    if not result["faces"]:
        return [[file, "", False, "", "", "", "", NO_FACE_LABEL, "", *[""] * len(labels)]]
    return [csv_row(file, i, result["face_found"], face) for i, face in enumerate(result["faces"], 1)]


class ResultWriters:
    """Where results go: JSON lines (stdout or a file) and/or a CSV file; files renamed into place at the end."""

    def __init__(self, labels: list[str], csv_path: str | None, jsonl_path: str | None,
                 stack: contextlib.ExitStack) -> None:
        self.jsonl: TextIO | None = sys.stdout if jsonl_path is None and csv_path is None else None
        if jsonl_path is not None:
            self.jsonl = stack.enter_context(_replaced_at_exit(jsonl_path))
        self.csv, self.labels = None, labels
        if csv_path is not None:
            self.csv = csv.writer(stack.enter_context(_replaced_at_exit(csv_path)))
            self.csv.writerow([*CSV_COLUMNS, *labels])

    def write(self, file: str, result: dict[str, Any]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"file": file, **result}) + "\n")
            self.jsonl.flush()
        if self.csv is not None:
            self.csv.writerows(csv_rows(file, result, self.labels))


@contextlib.contextmanager
def _replaced_at_exit(path: str) -> Iterator[TextIO]:
    """A text file written under a temporary name beside `path`, renamed to it when the block ends without an
    exception (and removed when it does not): a file at `path` is always a complete one."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            yield file
        os.chmod(temporary, 0o666 & ~umask)  # what open() would have given it (mkstemp makes it private)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def check_output_paths(args: argparse.Namespace) -> str | None:
    """Why --csv / --jsonl cannot be written (a missing folder, a folder named as the file), or None."""
    for option, path in (("--csv", args.csv), ("--jsonl", args.jsonl)):
        if path is None:
            continue
        if os.path.isdir(path):
            return f"{option} {path}: this is a folder; name the file to write"
        if not Path(path).resolve().parent.is_dir():
            return f"{option} {path}: the folder {Path(path).parent} does not exist"
    return None


def predict_files(recognizer: Any, inputs: Inputs, writers: ResultWriters, batch_size: int,
                  whole_image: bool = False) -> tuple[int, int, int]:
    """Run `recognizer` over the files of `inputs` (faces batched across images), writing each result in input
    order. What cannot be read is reported on stderr (above the progress bar) and skipped.

    Returns (images read, faces found, inputs that failed).
    """
    from tqdm.auto import tqdm

    progress = tqdm(total=len(inputs.entries), unit="image", file=sys.stderr, disable=None, desc="predict")
    read: deque[str] = deque()  # files whose images went to the recognizer, their results not yet written
    failed, faces, done = 0, 0, 0

    def images() -> Iterator[Any]:
        nonlocal failed
        for path, error in inputs.entries:
            try:
                if error is not None:
                    raise ImageLoadError(error)
                image = load_image(path)
            except ImageLoadError as problem:
                tqdm.write(f"{path}: {problem}", file=sys.stderr)
                failed += 1
            else:
                read.append(path)
                yield image
            progress.update()

    with progress:
        for result in recognizer.recognize_many(images(), batch_size=batch_size, whole_image=whole_image):
            writers.write(read.popleft(), result)
            faces += len(result["faces"]) if result["face_found"] else 0
            done += 1
    return done, faces, failed


def run(args: argparse.Namespace, recognizer: Any) -> int:
    """The predict command once the model is loaded: 0, or 2 when any input could not be read."""
    inputs = expand_inputs(args.images)
    with contextlib.ExitStack() as stack:
        writers = ResultWriters(recognizer.labels, args.csv, args.jsonl, stack)
        done, faces, failed = predict_files(recognizer, inputs, writers, args.batch_size,
                                            args.whole_image)
    if failed or inputs.skipped:
        skipped = f"; {inputs.skipped} other file(s) in the folders skipped (no image suffix)" if inputs.skipped else ""
        print(f"predict: {done} image(s) read, {faces} face(s) found; {failed} input(s) could not be read{skipped}",
              file=sys.stderr)
    return 2 if failed else 0
