"""Fetch AFW (Annotated Faces in the Wild; Zhu & Ramanan, CVPR 2012: 205 Flickr photos, 468 labelled faces, heads
turned up to 105 degrees) into a cache folder, in the form benchmarks/detectors.py reads with `--data`.

    python benchmarks/fetch_afw.py [--source URL_OR_GIT_DIR] [--out ~/.cache/fer-vgg16/afw]

The copy comes from a public GitHub repository that holds AFW's images and its original anno.mat labels written
out as text (faces.txt: `[x1 y1;x2 y2]` per face, poses.txt: `[yaw pitch roll]` in radians), pinned to one commit.
`--source` may also be a local clone or mirror of it (this workplace reaches GitHub only that way). The images
are Flickr photos for research use; they stay in the cache, never in git. Tests that need the set skip without it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = "https://github.com/RSinhoroto/AFWDataset.git"
COMMIT = "0e8e28763567659de8646a1ca4b36e57f0ac92a3"
DEFAULT_OUT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fer-vgg16" / "afw"


def records(text: str) -> list[list[list[float]]]:
    """`[a b;c d][e f;g h]*[...]*` -> per image, per face, its numbers (the trailing `*` leaves no extra image)."""
    items = text.strip().split("*")
    items = items[:-1] if items and not items[-1] else items
    return [[[float(v) for v in re.split(r"[ ;]+", face.strip())] for face in re.findall(r"\[([^\]]*)\]", item)]
            for item in items]


def convert(repo: Path, out: Path) -> dict:
    """The repository's label files -> out/boxes.json (x, y, w, h boxes and yaw in degrees) + out/images/."""
    names = [n for n in (repo / "filenames.txt").read_text().strip().split("*") if n]
    faces, poses = records((repo / "faces.txt").read_text()), records((repo / "poses.txt").read_text())
    if not len(names) == len(faces) == len(poses):
        raise ValueError(f"{len(names)} names, {len(faces)} face records, {len(poses)} pose records: not one each")
    (out / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for name, boxes, angles in zip(names, faces, poses, strict=True):
        shutil.copyfile(repo / "images" / name, out / "images" / name)
        images.append({"file": f"images/{name}",
                       "boxes": [[round(x1), round(y1), round(x2 - x1), round(y2 - y1)] for x1, y1, x2, y2 in boxes],
                       "yaw_degrees": [round(math.degrees(angle[0])) for angle in angles]})
    summary = {"name": "AFW (Annotated Faces in the Wild)", "source": SOURCE, "commit": COMMIT,
               "licence": "Flickr photos, for research use", "images": images}
    (out / "boxes.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=SOURCE, help="git URL, or a local clone/mirror of it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "afw"
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", args.source, str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", COMMIT], check=True)
        summary = convert(clone, args.out)
    faces = sum(len(image["boxes"]) for image in summary["images"])
    print(f"AFW: {len(summary['images'])} images, {faces} faces -> {args.out}/boxes.json")


if __name__ == "__main__":
    main()
