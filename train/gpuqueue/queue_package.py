"""What the GPU queue brings back through the device tool's $OUT, and how it is unpacked here.

$OUT returns at most 8 files, 16 MiB each, 64 MiB in all (named in letters, digits, '.', '_', '-'). The
best row's model folder (~59 MB of fp32 weights) travels as one tar split into 15 MiB parts, each with its
SHA-256 in queue.json; `collect_model` checks them, joins the parts and unpacks the folder. `record_runs`
appends the rows to benchmarks/results/gpu_runs.json, the machine-readable record of every GPU row.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

MIB = 1 << 20
OUT_LIMITS = {"files": 8, "file_bytes": 16 * MIB, "total_bytes": 64 * MIB}
PART_BYTES = 15 * MIB
MODEL_TAR = "model.tar"


def write_json(path: Path, data: Any) -> None:
    """Written beside, then renamed into place: a reader (or a kill) never sees half a file."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(data, indent=1, default=str))
    os.replace(staged, path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_files(folder: Path) -> list[Path]:
    """The model folder as published: its files, without checkpoints/, logs/ or hidden staging files."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def pack_model(folder: Path, out: Path, row: str) -> dict[str, Any]:
    """Tar the model folder of `row` into out/model.tar.partN (<= 15 MiB each); return the manifest."""
    for stale in out.glob(f"{MODEL_TAR}.part*"):
        stale.unlink()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in model_files(folder):
            tar.add(path, arcname=f"{row}/{path.name}")
    data = buffer.getvalue()
    parts = []
    for index, start in enumerate(range(0, len(data), PART_BYTES)):
        chunk, name = data[start : start + PART_BYTES], f"{MODEL_TAR}.part{index}"
        (out / name).write_bytes(chunk)
        parts.append({"file": name, "bytes": len(chunk), "sha256": sha256_bytes(chunk)})
    return {"row": row, "files": [p.name for p in model_files(folder)], "tar_bytes": len(data),
            "tar_sha256": sha256_bytes(data), "parts": parts}


def out_problems(out: Path) -> list[str]:
    """What in `out` the device tool would not bring back (too many, too big, badly named, too deep)."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files (at most {OUT_LIMITS['files']})"] if len(files) > OUT_LIMITS["files"] else []
    problems += [f"{p.name}: {p.stat().st_size} bytes (at most {OUT_LIMITS['file_bytes']})" for p in files
                 if p.stat().st_size > OUT_LIMITS["file_bytes"]]
    total = sum(p.stat().st_size for p in files)
    if total > OUT_LIMITS["total_bytes"]:
        problems.append(f"{total} bytes in all (at most {OUT_LIMITS['total_bytes']})")
    for p in files:
        relative = p.relative_to(out)
        if len(relative.parts) > 3 or any(not all(c.isalnum() or c in "._-" for c in part) for part in relative.parts):
            problems.append(f"{relative}: too deep or a name the device tool refuses")
    return problems


def collect_model(source: Path, manifest: dict[str, Any], into: Path) -> Path:
    """Check every part against the manifest, join them, check the whole, unpack: returns the model folder."""
    data = bytearray()
    for part in manifest["parts"]:
        path = source / part["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model part missing (the manifest lists {len(manifest['parts'])})")
        chunk = path.read_bytes()
        if len(chunk) != part["bytes"] or sha256_bytes(chunk) != part["sha256"]:
            raise ValueError(f"{path}: {len(chunk)} bytes that do not match the manifest's size and SHA-256 "
                             "(a truncated or mixed-up part)")
        data += chunk
    if sha256_bytes(bytes(data)) != manifest["tar_sha256"]:
        raise ValueError(f"the joined parts in {source} do not match the manifest's tar SHA-256")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r") as tar:
        tar.extractall(into, filter="data")  # plain files under `into` only
    folder = into / manifest["row"]
    missing = [name for name in manifest["files"] if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: unpacked without {missing}")
    return folder


def record_runs(record: Path, summary: dict[str, Any]) -> int:
    """Append this call's rows and throughput to the record (benchmarks/results/gpu_runs.json); returns rows added.

    Rows carried over from an earlier call (`previous_call`) were recorded with that call and are skipped.
    """
    data = json.loads(record.read_text())
    call = {"date": summary.get("date") or datetime.date.today().isoformat(), "device": summary.get("device"),
            "commit": summary.get("commit"), "commit_source": summary.get("commit_source", "the tree that ran"),
            "queue": summary.get("queue")}
    added = [{**call, **row} for row in summary["rows"] if not row.get("previous_call")]
    data["runs"].extend(added)
    if summary.get("benchmark"):
        data["throughput"].append({**call, **summary["benchmark"]})
    write_json(record, data)
    return len(added)


def markdown_rows(rows: list[dict[str, Any]]) -> str:
    """RESULTS.md's grid rows: finished rows with their figures, the others with their status."""
    lines = []
    for row in rows:
        if row["status"] != "finished":
            reason = row.get("error") or f"epoch {row.get('epochs_completed', 0)} of {row.get('epochs', '?')}"
            lines.append(f"| {row['name']} | `{row.get('flags', {})}` | {row['status']}: {reason} | | | | | | |")
            continue
        accuracy = row["accuracy"]
        lines.append(
            f"| {row['name']} | `{row.get('flags', {})}` | {row['best_val_accuracy']:.2%} (epoch {row['best_epoch']}, "
            f"{row['best_model']}) | {accuracy['test_none']:.2%} | {accuracy['test_flip']:.2%} | "
            f"{accuracy['test_10crop']:.2%} | {row['images_per_second_median'] or 0:,.0f} | {row['wall_time_s']:.0f} s "
            f"| {row.get('device', 'GPU')} |")
    return "\n".join(lines)
