"""--max_time (issue 22, point 1): a run stopped by its time budget finishes its folder like a complete run, and
resuming it reaches the uninterrupted run's final metrics. The budget's clock is replaced by a fake one (600 s
an epoch) where exactness matters; one short run uses the real clock."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState
from huggingface_hub import ModelCard

from tests.helpers.tiny_fer import write_hub_folder
from tests.helpers.train_runs import QUICK, without_timings
from train import budget as budget_module
from train import finish
from train import train as train_script
from train.budget import FINISH_RESERVE_S, TimeBudget, parse_max_time

EPOCHS = ["--epochs", "5", "--scheduler", "plateau", "--warmup_epochs", "1", "--head_dropout", "0.2",
          "--tta", "flip", "--export_int8"]
FAKE_EPOCH_S = 600  # the fake clock advances this much at every reading: each epoch "takes" 600 s
BUDGET_TWO_EPOCHS = "00:00:40:00"  # 2400 s: start 0, epochs from 600, epoch 2 ends at 1800 + 600 + reserve > 2400


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_hub_folder(tmp_path_factory.mktemp("fer-tiny")))


def run(dataset_dir: str, output_dir: Path, *extra: str, clock_step: float | None = FAKE_EPOCH_S) -> dict:
    """train.main in this process (the fake clock unless clock_step is None), counting the finishes' test reads."""
    patch = pytest.MonkeyPatch()
    calls = []
    original = finish.evaluate_best_model
    patch.setattr(finish, "evaluate_best_model", lambda *a, **k: calls.append(1) or original(*a, **k))
    if clock_step is not None:
        ticks = itertools.count(0, clock_step)
        patch.setattr(budget_module, "monotonic", lambda: float(next(ticks)))
    try:
        metrics = train_script.main([*QUICK, *EPOCHS, "--dataset", dataset_dir, "--output_dir", str(output_dir),
                                     *extra])
    finally:
        patch.undo()
        AcceleratorState._reset_state(True)
    return {**metrics, "test_reads": len(calls)}


@pytest.fixture(scope="module")
def uninterrupted(dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    output_dir = tmp_path_factory.mktemp("whole") / "model"
    return output_dir, run(dataset_dir, output_dir)


@pytest.fixture(scope="module")
def budget_run(dataset_dir: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, set[str]]:
    """A budget that allows 2 of the 5 epochs; the files of its folder as the stop left them."""
    output_dir = tmp_path_factory.mktemp("budget") / "model"
    metrics = run(dataset_dir, output_dir, "--max_time", BUDGET_TWO_EPOCHS)
    return output_dir, metrics, folder_files(output_dir)


def folder_files(output_dir: Path) -> set[str]:
    return {p.name for p in output_dir.iterdir() if p.is_file()}


def test_parse_max_time_takes_lightnings_form_or_minutes() -> None:
    assert parse_max_time("00:12:00:00") == 12 * 3600 and parse_max_time("01:00:00:30") == 86400 + 30
    assert parse_max_time("10") == 600 and parse_max_time("2.5") == 150
    for bad in ("12:00:00", "0", "-5", "ten", "00:00:00:00", "1:2:x:4"):
        with pytest.raises(ValueError, match="--max_time.*DD:HH:MM:SS"):
            parse_max_time(bad)


def test_the_budget_keeps_a_reserve_for_the_next_epoch_and_the_finish() -> None:
    ticks = iter([0.0, 100.0, 400.0, 700.0])  # built, epochs start, epoch 1 done (300 s), epoch 2 done (300 s)
    budget = TimeBudget("15", tta="none", clock=lambda: next(ticks))  # 900 s
    budget.epochs_start()
    budget.epoch_done(validation_seconds=1.0)
    assert budget.reserve() == FINISH_RESERVE_S and budget.allows_another_epoch()  # 400 + 300 + 60 <= 900
    budget.epoch_done(validation_seconds=1.0)
    assert budget.ends_after(2, 5) and not budget.ends_after(5, 5)  # 700 + 300 + 60 > 900; the last epoch: done
    assert budget.explain() == ("700 s elapsed + 300 s (longest epoch) + 60 s (finish reserve) > 900 s left after "
                                "the start")
    assert TimeBudget("15", spent=30.0, clock=lambda: 0.0).seconds == 870  # the imports before train.py's main
    slow = TimeBudget("15", tta="flip", export_int8=True, clock=lambda: 0.0)
    slow.epoch_done(validation_seconds=100.0)  # the finish reads validation and test, each with 2 flip views
    assert slow.reserve() == 1.5 * 6 * 100.0 + 2 * FINISH_RESERVE_S
    assert TimeBudget(None).allows_another_epoch()


def test_a_budget_stop_finishes_the_folder_like_a_complete_run(budget_run, uninterrupted) -> None:
    output_dir, metrics, files = budget_run
    whole_dir, whole = uninterrupted
    assert files == folder_files(whole_dir)  # every file a finished run has (model, card, plots, int8, ...)
    assert "model_int8.onnx" in files and "reliability_diagram.png" in files
    marker = "stopped at epoch 2 of 5 (time budget)"
    assert metrics["training"]["stopped"] == marker and whole["training"]["stopped"] is None
    assert metrics["training"]["epochs_completed"] == 2 and len(metrics["validation"]["history"]) == 2
    assert metrics["test_reads"] == 1 and metrics["training"]["test_evaluations"] == 1  # test read once
    assert json.loads((output_dir / "metrics.json").read_text())["training"]["stopped"] == marker
    assert "Stopped at epoch 2 of 5 (time budget)" in ModelCard.load(output_dir / "README.md").text
    assert "Stopped at epoch" not in ModelCard.load(whole_dir / "README.md").text
    assert (output_dir / "checkpoints" / "checkpoint_2" / "manifest.json").is_file()
    assert json.loads((output_dir / "config.json").read_text())["temperature"] == metrics["calibration"]["temperature"]


def test_resuming_a_budget_stop_reaches_the_uninterrupted_runs_final_metrics(budget_run, uninterrupted,
                                                                             dataset_dir: str) -> None:
    """The same 5 epochs and final metrics (bit for bit, timings aside) as one uninterrupted run with the seed.

    Only training.test_evaluations differs, by design: the stopped run's finish read the test split once for
    the model it published then, and the resumed finish once more (2), against 1 for the uninterrupted run."""
    output_dir, _, _ = budget_run
    resumed = run(dataset_dir, output_dir, "--max_time", "10:00:00:00", "--resume_from_checkpoint", "latest")
    _, whole = uninterrupted
    assert resumed["training"]["epochs_completed"] == 5 and resumed["training"]["stopped"] is None
    assert resumed["test_reads"] == 1 and resumed["training"]["test_evaluations"] == 2
    both = [without_timings(m) for m in (resumed, whole)]
    for m in both:
        m.pop("test_reads")
        m["training"].pop("test_evaluations")
    assert both[0] == both[1]
    assert "Stopped at epoch" not in ModelCard.load(output_dir / "README.md").text  # the folder replaced


def test_a_real_short_budget_stops_after_the_first_epoch(dataset_dir: str, tmp_path: Path) -> None:
    """The real clock: a 1 s budget is spent before epoch 2 could finish; at least one epoch always runs."""
    metrics = run(dataset_dir, tmp_path / "model", "--max_time", "00:00:00:01", clock_step=None)
    assert metrics["training"]["stopped"] == "stopped at epoch 1 of 5 (time budget)"
    assert (tmp_path / "model" / "README.md").is_file() and metrics["test_reads"] == 1
