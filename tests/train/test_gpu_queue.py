"""train/gpuqueue/gpu_queue.py end to end on a CPU with tiny settings: the benchmark, rows side by side, a finished
row's figures and packed model, a row cut by SIGTERM and resumed by the next call, then cut by the deadline;
--collect and the record. The plan (queue.yaml), the wheel install and the $OUT limits on their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fer_model import FerForImageClassification
from tests.helpers.paths import REPO
from tests.helpers.tiny_fer import SIZES, write_hub_folder
from train.gpuqueue import gpu_queue
from train.gpuqueue.queue_package import MIB, out_problems
from train.gpuqueue.queue_plan import Queue, QueueRow, choose_parallel, estimate_seconds, flag_args, load_queue
from train.recipe import Recipe, parse_args

COMMON = {"cpu": True, "torch_compile": False, "mixed_precision": "no", "image_size": 32, "batch_size": 14,
          "eval_batch_size": 16, "optimizer": "adam", "lr": 1.0e-3, "ema_decay": 0.5, "tta": "none"}
BENCHMARK = ["--device", "cpu", "--steps", "1", "--warmup", "1", "--num_images", "16", "--augment_chunk", "16",
             "--num_workers", "0", "--no-conventional"]


@pytest.fixture(scope="module")
def queue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("queue")
    queue = {"deadline_s": 900, "reserve_s": 5, "dataset": str(write_hub_folder(root / "data")),
             "config": "train/configs/best.yaml", "parallel": 2, "common": COMMON,
             "benchmark": {"flags": BENCHMARK, "timeout_s": 400}, "fallback": {"compile_mode": "default"},
             "rows": [{"name": "quick", "flags": {"epochs": 1}},
                      {"name": "long", "flags": {"epochs": 50, "checkpoint_every": 1, "scheduler": "plateau",
                                                 "warmup_ratio": 0}},
                      {"name": "broken", "flags": {"crop_size": 40}}]}  # larger than common's 32-px faces
    (root / "queue.yaml").write_text(yaml.safe_dump(queue))
    return root / "queue.yaml"


@pytest.fixture(scope="module")
def first_call(queue_file: Path) -> dict:
    """The queue as the GPU box runs it; SIGTERM once `quick` finished and `long` has a checkpoint."""
    root = queue_file.parent
    out, work = root / "out1", root / "work"
    command = [sys.executable, "train/gpuqueue/gpu_queue.py", "--queue", str(queue_file), "--out", str(out),
               "--work_dir", str(work), "--fresh"]
    with (root / "first.txt").open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            quick = work / "quick.row.json"
            if (quick.is_file() and json.loads(quick.read_text())["status"] == "finished"
                    and list((work / "long" / "checkpoints").glob("checkpoint_*/manifest.json"))):
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=120)
    return {"out": out, "work": work, "returncode": returncode, "log": (root / "first.txt").read_text(),
            "summary": json.loads((out / "queue.json").read_text())}


@pytest.fixture(scope="module")
def second_call(first_call: dict, queue_file: Path) -> dict:
    """The next call on the same box (in this process): no benchmark, a deadline that cuts the resumed row."""
    out = queue_file.parent / "out2"
    summary = gpu_queue.main(["--queue", str(queue_file), "--out", str(out), "--work_dir", str(first_call["work"]),
                              "--no_benchmark", "--deadline_s", "25"])
    return {"out": out, "summary": summary}


def rows_by_name(summary: dict) -> dict[str, dict]:
    return {row["name"]: row for row in summary["rows"]}


def test_first_call_trains_measures_and_reports_every_row(first_call: dict) -> None:
    assert first_call["returncode"] == 0, first_call["log"][-3000:]
    summary, out = first_call["summary"], first_call["out"]
    assert summary["benchmark"]["train_py"]["training"] > 0 and summary["parallel"] == 2
    rows = rows_by_name(summary)
    quick = rows["quick"]
    assert quick["status"] == "finished" and quick["best_epoch"] == 1 and quick["best_model"] in ("model", "ema")
    assert set(quick["accuracy"]) == {f"{s}_{t}" for s in ("validation", "test") for t in ("none", "flip", "10crop")}
    assert quick["evaluations"]["test_none"]["num_samples"] == SIZES["test"]
    assert quick["accuracy"]["test_none"] == quick["test_accuracy"]  # the CLI's code agrees with train.py's test
    assert quick["accuracy"]["validation_none"] == quick["best_val_accuracy"]
    assert quick["images_per_second_median"] > 0 and quick["wall_time_s"] > 0
    long = rows["long"]  # cut: how far it got, never figures
    assert long["status"] == "cut" and long["reason"] == "SIGTERM" and long["resumable"]
    assert long["epochs_completed"] >= 1 and long["checkpoint"].startswith("checkpoint_")
    assert not {"accuracy", "best_val_accuracy", "test_accuracy"} & set(long)
    assert rows["broken"]["status"] == "invalid"
    assert "crop_size=40 must be an integer in [32, image_size=32]" in rows["broken"]["error"]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["logs.tar.gz", "model.tar.part0", "model.tar.part1", "model.tar.part2", "model.tar.part3",
                     "queue.json", "queue.log"]
    assert out_problems(out) == [] and summary["model"]["row"] == "quick"
    assert all((out / part["file"]).stat().st_size <= 15 * MIB for part in summary["model"]["parts"])
    log = (out / "queue.log").read_text()
    assert "quick cut" not in log and "long cut (SIGTERM)" in log


def test_collect_checks_and_unpacks_the_model_and_records_the_rows(first_call: dict, tmp_path: Path) -> None:
    record = tmp_path / "gpu_runs.json"
    shutil.copy(REPO / "benchmarks" / "results" / "gpu_runs.json", record)
    gpu_queue.main(["--collect", str(first_call["out"]), "--into", str(tmp_path / "models"), "--record", str(record)])
    folder = tmp_path / "models" / "quick"
    trained = first_call["work"] / "quick"
    assert (folder / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    assert {"config.json", "preprocessor_config.json", "README.md", "metrics.json", "train_config.yaml"} <= {
        p.name for p in folder.iterdir()}
    assert FerForImageClassification.from_pretrained(folder).config.image_size == 32
    saved = json.loads(record.read_text())
    assert [run["name"] for run in saved["runs"]] == ["quick", "long", "broken"]
    assert saved["runs"][0]["device"] == "cpu" and len(saved["throughput"]) == 1
    damaged = tmp_path / "damaged"
    shutil.copytree(first_call["out"], damaged)
    (damaged / "model.tar.part1").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="model.tar.part1: 100 bytes that do not match"):
        gpu_queue.main(["--collect", str(damaged), "--into", str(tmp_path / "again")])


def test_second_call_resumes_the_cut_row_and_cuts_it_at_the_deadline(first_call: dict, second_call: dict) -> None:
    summary = second_call["summary"]
    rows = rows_by_name(summary)
    assert rows["quick"]["status"] == "finished" and rows["quick"]["previous_call"]
    assert summary["model"]["row"] == "quick" and (second_call["out"] / "model.tar.part3").is_file()
    long = rows["long"]
    assert long["status"] == "cut" and long["reason"] == "deadline" and long["resumed"]
    assert long["command"].endswith("--resume_from_checkpoint latest")
    assert long["wall_time_s"] > rows_by_name(first_call["summary"])["long"]["wall_time_s"]  # both calls counted
    assert summary["benchmark"] is None and "resumed from its last checkpoint" in (
        second_call["out"] / "queue.log").read_text()


# --- the plan, the install and the limits, without training ------------------------------------------------


def test_shipped_queue_is_valid_crop_rows_included(capsys) -> None:
    result = gpu_queue.main(["--check"])
    assert result["errors"] == {}
    recipes = result["recipes"]
    crop_rows = ("plateau250_crop40", "plateau250_crop40_strong", "plateau250_crop40_strong_mixup")
    assert [(recipes[name].crop_size, recipes[name].image_size, recipes[name].tta) for name in crop_rows] == [
        (40, 48, "10crop")] * 3
    assert all(recipe.crop_size is None for name, recipe in recipes.items() if name not in crop_rows)
    as_written, _ = parse_args(["--config", "train/configs/best.yaml"])
    assert recipes["best"] == replace(as_written, compile_mode="reduce-overhead")  # + common's speed flag only
    plateau = recipes["plateau250"]
    assert (plateau.scheduler, plateau.epochs, plateau.plateau_factor, plateau.plateau_patience) == (
        "plateau", 250, 0.75, 5)
    strong = recipes["plateau250_strong_mixup"]
    assert (strong.weight_decay, strong.resized_crop_scale, strong.erasing_scale, strong.mixup_alpha,
            strong.label_smoothing, strong.hidden_size) == (1e-4, [0.8, 1.2], [0.02, 0.33], 1.0, 0.1, 32)
    printed = capsys.readouterr().out
    assert "1. best: 100 epochs, ~260 s" in printed and "2. plateau250: 250 epochs, ~590 s" in printed
    assert "3. plateau250_crop40: 250 epochs" in printed and "invalid" not in printed


def test_flags_plan_and_parallel_choice() -> None:
    assert flag_args({"epochs": 3, "drop_last": True, "hflip": False, "erasing_scale": [0.02, 0.33]}) == [
        "--epochs", "3", "--drop_last", "--no_hflip", "--erasing_scale", "0.02", "0.33"]
    recipe = Recipe(batch_size=128, epochs=100, drop_last=True)
    assert estimate_seconds(recipe, 14_000) == pytest.approx(40 + 100 * (28_672 / 14_000 + 0.15))
    windows = {"1": {"images_per_second": 100.0}, "2": {"images_per_second": 150.0}, "4": {"images_per_second": 140.0}}
    assert choose_parallel("auto", {"processes": {"windows": windows}})[0] == 2
    windows["2"]["images_per_second"], windows["4"]["images_per_second"] = 110.0, 105.0
    assert choose_parallel("auto", {"processes": {"windows": windows}})[0] == 1  # +10 %: not worth it
    assert choose_parallel("auto", None)[0] == 1 and choose_parallel(3, None) == (3, "set in the queue")


@pytest.mark.parametrize(("text", "message"), [
    ("rows: [{name: a}]\nparalel: 2\n", r"unknown key\(s\) \['paralel'\]"),
    ("rows: [{name: a}, {name: a}]\n", "distinct names"),
    ("rows: [{name: 'a b'}]\n", "bad row"),
    ("rows: [{name: a}]\nparallel: 0\n", "parallel must be auto or a number"),
    ("rows: [{name: a}]\ndeadline_s: 10\nreserve_s: 20\n", "reserve_s < deadline_s"),
])
def test_bad_queues_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "q.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_queue(tmp_path / "q.yaml")


def test_a_failing_benchmark_is_rerun_with_the_fallback_flags(tmp_path: Path, monkeypatch) -> None:
    """CUDA graphs failing on a box: the benchmark again with compile_mode default, which every row then gets;
    a benchmark that only runs out of time is not retried and changes nothing."""
    commands = []

    def fake_run(command, **kwargs):  # the benchmark process: fails unless run with the fallback flag
        commands.append(command)
        if command[command.index("--compile_mode") + 1] != "default":
            return SimpleNamespace(returncode=1)
        Path(command[command.index("--json") + 1]).write_text(json.dumps({"train_py": {"training": 5.0}}))
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(gpu_queue.subprocess, "run", fake_run)
    queue = Queue(rows=[QueueRow("a")], benchmark={"flags": ["--steps", "1"]},
                  common={"compile_mode": "reduce-overhead"}, fallback={"compile_mode": "default"})
    figures, extra, attempts = gpu_queue.run_benchmark(queue, tmp_path, time.monotonic() + 100)
    assert figures == {"train_py": {"training": 5.0}} and extra == {"compile_mode": "default"}
    assert [a["returncode"] for a in attempts] == [1, 0] and len(commands) == 2

    def too_slow(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(gpu_queue.subprocess, "run", too_slow)
    figures, extra, attempts = gpu_queue.run_benchmark(queue, tmp_path, time.monotonic() + 100)
    assert (figures, extra, [a["returncode"] for a in attempts]) == (None, {}, ["timeout"])


def test_rows_past_the_deadline_are_not_started(tmp_path: Path) -> None:
    from train.gpuqueue.queue_runner import QueueRunner

    queue = Queue(rows=[QueueRow("a")], deadline_s=10, reserve_s=5)
    runner = QueueRunner(queue, {"a": Recipe()}, {}, tmp_path / "work", tmp_path / "out", deadline=time.monotonic(),
                         env={}, python=sys.executable, repo_root=REPO)
    (tmp_path / "work").mkdir()
    runner.run(parallel=1, extra={})
    assert runner.summary["rows"][0]["status"] == "not_started"
    assert json.loads((tmp_path / "out" / "queue.json").read_text())["rows"][0]["error"] == "deadline came first"


def test_missing_packages_are_installed_from_the_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "queue_probe-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("queue_probe/__init__.py", "ANSWER = 42\n")
        wheel.writestr("queue_probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: queue-probe\nVersion: 1.0\n")
        wheel.writestr("queue_probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                          "Tag: py3-none-any\n")
        wheel.writestr("queue_probe-1.0.dist-info/RECORD", "")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    assert gpu_queue.install_missing(wheels, site, module="queue_probe")
    child = subprocess.run([sys.executable, "-c", "import queue_probe; print(queue_probe.ANSWER)"],
                           env={**os.environ}, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "42"  # the processes the queue starts see it too (PYTHONPATH)
    assert not gpu_queue.install_missing(wheels, site, module="queue_probe")  # present now: nothing to do
    with pytest.raises(SystemExit, match="no_such_module is not installed and .* holds no wheels"):
        gpu_queue.install_missing(tmp_path / "empty", site, module="no_such_module")


def test_out_limits_name_what_would_not_come_back(tmp_path: Path) -> None:
    for i in range(9):
        (tmp_path / f"f{i}").write_bytes(b"x")
    (tmp_path / "big").write_bytes(b"x" * (16 * MIB + 1))
    (tmp_path / "bad name").write_bytes(b"x")
    problems = out_problems(tmp_path)
    assert "11 files (at most 8)" in problems and any(p.startswith("big: 16777217 bytes") for p in problems)
    assert any(p.startswith("bad name: too deep or a name") for p in problems)
