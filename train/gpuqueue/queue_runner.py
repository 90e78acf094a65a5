"""Runs the GPU queue's rows: train.py processes, `parallel` at a time in queue order, until the deadline.

Each row's state is kept in WORK_DIR/NAME.row.json, so a later call on the same box knows which rows
finished (reported again, marked previous_call) and which were cut (resumed from their last checkpoint).
After every event (a row started, finished, failed or cut) the outputs are rewritten, so whatever the
device call returns, even if it is killed, holds everything finished so far.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from train.checkpoints import complete_checkpoints
from train.gpuqueue.grid_run import build_row, evaluate_all, summary_line
from train.gpuqueue.queue_package import out_problems, pack_model, write_json
from train.gpuqueue.queue_plan import Queue, QueueRow, train_args

LOG_TAIL_BYTES = 400_000  # of each process' output, in logs.tar.gz
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+):", re.MULTILINE)


@dataclass
class RowProcess:
    row: QueueRow
    process: subprocess.Popen
    log: IO[str]
    started: float
    command: list[str]


class QueueRunner:
    """The rows of one call: their records, the processes running them, and the outputs in `out`."""

    def __init__(self, queue: Queue, recipes: dict[str, Any], errors: dict[str, str], work_dir: Path, out: Path,
                 deadline: float, env: dict[str, str], python: str, repo_root: Path) -> None:
        self.queue, self.recipes, self.work_dir, self.out = queue, recipes, work_dir, out
        self.deadline, self.env, self.python, self.repo_root = deadline, env, python, repo_root
        self.stopped: str | None = None
        self.lines: list[str] = []
        self.data: Any = None  # FER2013, loaded once for the evaluations
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary: dict[str, Any] = {"date": datetime.date.today().isoformat(), "device": device_name(),
                                        "deadline_s": queue.deadline_s}
        self.records = {row.name: self.initial_record(index, row, errors.get(row.name))
                        for index, row in enumerate(queue.rows, 1)}

    def initial_record(self, index: int, row: QueueRow, error: str | None) -> dict[str, Any]:
        base = {"name": row.name, "index": index, "config": row.config or self.queue.config, "flags": row.flags}
        if error is not None:
            return {**base, "status": "invalid", "error": error}
        saved = self.work_dir / f"{row.name}.row.json"
        earlier = json.loads(saved.read_text()) if saved.is_file() else None
        if earlier and earlier.get("status") == "finished" and earlier.get("flags") == row.flags:
            return {**earlier, "previous_call": True}
        resumable = earlier and earlier.get("status") == "cut" and earlier.get("flags") == row.flags
        return {**base, "status": "pending", "epochs": self.recipes[row.name].epochs,
                "wall_time_s": earlier["wall_time_s"] if resumable else 0.0, "resume": bool(resumable)}

    # --- progress -----------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        elapsed = time.monotonic() - (self.deadline - self.queue.deadline_s)
        self.lines.append(f"[{elapsed:6.0f} s] {text}")
        print(self.lines[-1], flush=True)
        self.write_outputs()

    def stop(self, why: str) -> None:
        self.stopped = why

    def run(self, parallel: int, extra: dict[str, Any]) -> None:
        """Start rows in queue order while slots are free; finish, fail or cut them; then write everything."""
        pending = [row for row in self.queue.rows if self.records[row.name]["status"] == "pending"]
        running: dict[str, RowProcess] = {}
        earlier = [r for r in self.records.values() if r.get("previous_call")]
        if earlier:  # the best model so far goes back with this call too
            self.pack_if_best(earlier[0]["name"])
        while pending or running:
            late = time.monotonic() >= self.deadline - self.queue.reserve_s
            if late or self.stopped:
                for name in list(running):
                    self.cut(running.pop(name), self.stopped or "deadline")
                break
            while pending and len(running) < parallel:
                row = pending.pop(0)
                running[row.name] = self.start(row, extra)
            for name, proc in list(running.items()):
                if proc.process.poll() is not None:
                    self.finish(running.pop(name))
            time.sleep(0.2)
        for row in pending:
            self.records[row.name].update(status="not_started", error=f"{self.stopped or 'deadline'} came first")
        self.note("done: " + "; ".join(f"{r['name']} {r['status']}" for r in self.records.values()))

    # --- one row ------------------------------------------------------------------------------------

    def start(self, row: QueueRow, extra: dict[str, Any]) -> RowProcess:
        record, output_dir = self.records[row.name], self.work_dir / row.name
        resume = record.pop("resume", False) and bool(complete_checkpoints(output_dir))
        if not resume and output_dir.exists():
            shutil.rmtree(output_dir)  # an earlier, unresumable attempt
        command = [self.python, "train/train.py", *train_args(self.queue, row, output_dir, extra),
                   *(["--resume_from_checkpoint", "latest"] if resume else [])]
        log = (self.work_dir / f"{row.name}.log").open("a")
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=self.repo_root, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                   start_new_session=True)  # its own process group: a cut ends compile workers too
        record.update(status="running", command=" ".join(command[1:]), resumed=resume)
        self.note(f"started {row.name}" + (" (resumed from its last checkpoint)" if resume else ""))
        return RowProcess(row, process, log, time.monotonic(), command)

    def finish(self, proc: RowProcess) -> None:
        proc.log.close()
        name, output_dir = proc.row.name, self.work_dir / proc.row.name
        record = self.records[name]
        wall_time = record.get("wall_time_s", 0.0) + time.monotonic() - proc.started
        if proc.process.returncode != 0:
            record.update(status="failed", returncode=proc.process.returncode, wall_time_s=wall_time,
                          error=last_line(self.work_dir / f"{name}.log"))
            self.note(f"{name} failed (exit {proc.process.returncode}): {record['error']}")
        else:
            try:
                row = self.evaluate(name, record["command"], wall_time, output_dir)
            except Exception as error:  # noqa: BLE001  (recorded and reported: the queue goes on)
                record.update(status="failed", wall_time_s=wall_time, error=f"evaluation: {type(error).__name__}: "
                                                                               f"{error}")
                self.note(f"{name} trained but its evaluation failed: {record['error']}")
            else:
                record.update(row, status="finished", best_model_dir=str(output_dir))
                self.note(summary_line(row))
                self.pack_if_best(name)
        write_json(self.work_dir / f"{name}.row.json", record)
        self.write_outputs()

    def evaluate(self, name: str, command: str, wall_time: float, output_dir: Path) -> dict[str, Any]:
        """The finished row's figures: train.py's metrics.json and validation/test x every TTA mode."""
        if self.data is None:
            from fer_model.data import load_fer2013

            self.data = load_fer2013(self.queue.dataset)
        metrics = json.loads((output_dir / "metrics.json").read_text())
        return build_row(name, command, wall_time, metrics, evaluate_all(output_dir, self.data))

    def cut(self, proc: RowProcess, why: str) -> None:
        """Kill the row's process group; report how far it got and whether a later call can resume it."""
        try:
            os.killpg(proc.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.process.wait()
        proc.log.close()
        name = proc.row.name
        record = self.records[name]
        epochs = [int(m.group(1)) for m in EPOCH_LINE.finditer((self.work_dir / f"{name}.log").read_text())]
        checkpoints = complete_checkpoints(self.work_dir / name)
        record.update(status="cut", reason=why, epochs_completed=max(epochs, default=0),
                      checkpoint=checkpoints[-1].name if checkpoints else None, resumable=bool(checkpoints),
                      wall_time_s=record.get("wall_time_s", 0.0) + time.monotonic() - proc.started)
        write_json(self.work_dir / f"{name}.row.json", record)
        self.note(f"{name} cut ({why}) after epoch {record['epochs_completed']} of {record['epochs']}; "
                  f"last checkpoint: {record['checkpoint']}")

    def pack_if_best(self, name: str) -> None:
        """The best finished row (by validation accuracy) is the one whose model folder goes back."""
        finished = [r for r in self.records.values() if r["status"] == "finished"]
        best = max(finished, key=lambda r: r["best_val_accuracy"])
        if best["name"] != name and self.summary.get("model"):
            return
        try:
            self.summary["model"] = pack_model(Path(best["best_model_dir"]), self.out, best["name"])
        except OSError as error:  # e.g. an earlier call's folder gone with its box
            self.note(f"model folder of {best['name']} not packed: {error}")
        else:
            self.note(f"model folder of {best['name']} packed ({len(self.summary['model']['parts'])} parts)")

    # --- outputs ------------------------------------------------------------------------------------

    def write_outputs(self) -> None:
        """queue.json, queue.log and logs.tar.gz, rewritten whole (each replaced in one step)."""
        self.summary["rows"] = list(self.records.values())
        self.summary["out_problems"] = out_problems(self.out)
        write_json(self.out / "queue.json", self.summary)
        (self.out / ".queue.log.tmp").write_text("\n".join(self.lines) + "\n")
        os.replace(self.out / ".queue.log.tmp", self.out / "queue.log")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for log in sorted(self.work_dir.glob("*.log")):
                data = log.read_bytes()[-LOG_TAIL_BYTES:]
                info = tarfile.TarInfo(log.name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        (self.out / ".logs.tmp").write_bytes(buffer.getvalue())
        os.replace(self.out / ".logs.tmp", self.out / "logs.tar.gz")


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(no output)"


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
