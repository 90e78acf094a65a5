"""Temperature scaling: the fit, ECE/NLL, the config field, the forward, and `python -m fer_model calibrate`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer_model import EmotionRecognizer, FerConfig, FerForImageClassification, FerImageProcessor
from fer_model.__main__ import main
from fer_model.calibration import (
    ECE_BINS,
    RELIABILITY_PNG,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    plot_reliability_diagram,
    reliability_bins,
    write_calibration,
    write_temperature,
)
from fer_model.image_processing import gray_to_pixel_values, logits_with_tta
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.models import save_random_model
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model
from tests.helpers.tiny_fer import faces, write_hub_folder

# Five hand-checked predictions (2 classes): (probabilities, label) -> top-1 confidence, right or wrong, bin of 15.
HAND_PROBABILITIES = [[0.95, 0.05], [0.92, 0.08], [0.30, 0.70], [0.72, 0.28], [0.55, 0.45]]
HAND_LABELS = [0, 1, 1, 1, 0]  # right (0.95, bin 14), wrong (0.92, bin 13), right (0.70, bin 10), wrong (0.72,
# bin 10), right (0.55, bin 8): ECE = (|1-.95| + |0-.92| + 2 |.5-.71| + |1-.55|) / 5 = (.05+.92+.42+.45)/5 = .368
HAND_ECE = 0.368


def test_ece_matches_the_hand_computed_example() -> None:
    assert expected_calibration_error(HAND_PROBABILITIES, HAND_LABELS) == pytest.approx(HAND_ECE, abs=1e-12)
    # one bin: |accuracy - mean confidence| = |3/5 - 3.84/5|
    assert expected_calibration_error(HAND_PROBABILITIES, HAND_LABELS, bins=1) == pytest.approx(0.168, abs=1e-12)
    table = reliability_bins(HAND_PROBABILITIES, HAND_LABELS)
    assert table["count"].tolist() == [0] * 8 + [1, 0, 2, 0, 0, 1, 1]
    assert table["accuracy"][10] == 0.5 and table["confidence"][10] == pytest.approx(0.71)
    # (lower, upper] bins: a confidence of exactly 1 is in the last bin, exactly 1/15 in the first
    edge = reliability_bins([[1.0] + [0.0] * 14, [1 / 15] * 15], [0, 0])
    assert edge["count"][0] == 1 and edge["count"][ECE_BINS - 1] == 1


def test_nll_is_the_mean_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = (-math.log(math.exp(1) / (math.exp(1) + 1)) - math.log(1 / (1 + math.exp(-0.5)))) / 2
    assert negative_log_likelihood(logits, [0, 1], temperature=2.0) == pytest.approx(expected, abs=1e-12)


def test_fit_recovers_the_temperature_that_generated_the_labels() -> None:
    """Labels drawn from softmax(z / 2.5): the maximum-likelihood temperature of z is 2.5 (up to sampling)."""
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20000, 7, generator=generator)
    labels = torch.multinomial((logits / 2.5).softmax(-1), 1, generator=generator)[:, 0]
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.04)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels) - 0.1
    report = calibration_metrics((logits, labels), (logits[:5000], labels[:5000]))
    assert report["test"]["ece_after"] < report["test"]["ece_before"] / 3
    assert report["temperature"] == temperature and report["bins"] == 15


@pytest.mark.parametrize(("logits", "labels", "phrase"), [
    (torch.zeros(0, 7), [], "non-empty"),
    (torch.zeros(3, 7), [0, 1], "shape (3,)"),
    (torch.zeros(2, 7), [0, 7], "0..6"),
    (torch.tensor([[float("nan"), 0.0]]), [0], "NaN"),
])
def test_bad_logits_or_labels_are_named(logits: torch.Tensor, labels: list[int], phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        fit_temperature(logits, labels)


def test_config_field_default_and_validation(tmp_path: Path) -> None:
    assert FerConfig().temperature == 1.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            FerConfig(temperature=bad)
    folder = save_random_model(tmp_path / "m", temperature=1.7)
    assert json.loads((folder / "config.json").read_text())["temperature"] == 1.7
    assert FerForImageClassification.from_pretrained(folder).config.temperature == 1.7


def test_a_folder_saved_before_the_field_loads_with_temperature_1(tmp_path: Path) -> None:
    folder = save_random_model(tmp_path / "old", temperature=2.0)
    config = json.loads((folder / "config.json").read_text())
    del config["temperature"]  # as written before the field existed (the first release's config.json)
    (folder / "config.json").write_text(json.dumps(config))
    assert FerConfig.from_pretrained(folder).temperature == 1.0


@needs_released_model
def test_the_released_folder_loads_its_own_temperature() -> None:
    written = json.loads((RELEASED_MODEL_DIR / "config.json").read_text()).get("temperature", 1.0)
    assert FerConfig.from_pretrained(RELEASED_MODEL_DIR).temperature == pytest.approx(written)


def test_forward_divides_the_logits_and_keeps_the_argmax() -> None:
    torch.manual_seed(0)
    model = FerForImageClassification(FerConfig(temperature=2.5)).eval()
    pixel_values = torch.randn(6, 3, 48, 48)
    with torch.inference_mode():
        raw, logits = model.uncalibrated_logits(pixel_values), model(pixel_values).logits
    torch.testing.assert_close(logits, raw / 2.5)
    assert torch.equal(logits.argmax(-1), raw.argmax(-1))


def test_tta_and_the_recognizer_apply_the_temperature_exactly_once(tmp_path: Path) -> None:
    folder = save_random_model(tmp_path / "m", temperature=3.0)
    recognizer = EmotionRecognizer.from_pretrained(folder, tta="flip")
    crop = Image.open(ASTRONAUT).convert("RGB").crop((150, 40, 300, 210))
    pixel_values = recognizer.processor([crop], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        views = recognizer.model.uncalibrated_logits(torch.cat([pixel_values, pixel_values.flip(-1)]))
    expected = (views / 3.0).softmax(-1).mean(0, keepdim=True)
    np.testing.assert_allclose(recognizer.classify([crop]), expected.numpy(), atol=1e-6)
    torch.testing.assert_close(logits_with_tta(recognizer.runtime, pixel_values, "flip").softmax(-1), expected)


def test_write_temperature_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_random_model(tmp_path / "m")
    before = (folder / "config.json").read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the swap fails: the old file must stay whole, no temp file left
    with pytest.raises(OSError, match="disk full"):
        write_temperature(folder, 1.5)
    assert (folder / "config.json").read_bytes() == before
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    write_temperature(folder, 1.5)
    after = json.loads((folder / "config.json").read_text())
    assert after == {**json.loads(before), "temperature": 1.5}
    with pytest.raises(ValueError, match="temperature"):
        write_temperature(folder, 0.0)


def overconfident_model(folder: Path) -> Path:
    """A model trained a few steps on the tiny faces, its last layer then scaled x8: right often, sure always."""
    torch.manual_seed(0)
    model = FerForImageClassification(FerConfig())
    images, labels = faces(28, seed=0)
    pixel_values = gray_to_pixel_values(torch.from_numpy(images)[:, None], model.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(12):
        optimizer.zero_grad()
        model(pixel_values, labels=torch.tensor(labels)).loss.backward()
        optimizer.step()
    with torch.no_grad():
        model.head.fc2.weight.mul_(8.0)
        model.head.fc2.bias.mul_(8.0)
    model.eval().save_pretrained(folder)
    FerImageProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder


def test_cli_calibrate_lowers_nll_keeps_argmax_and_rewrites_config_only(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    dataset = write_hub_folder(tmp_path / "data", sizes={"train": 7, "validation": 70, "test": 35})
    folder = overconfident_model(tmp_path / "model")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    probe = torch.randn(16, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = FerForImageClassification.from_pretrained(folder).eval()(probe).logits
    plot = tmp_path / "reliability.png"
    assert main(["calibrate", "--model", str(folder), "--dataset", str(dataset), "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["temperature"] > 1.5  # over-confident: softened
    assert report["validation"]["nll_after"] < report["validation"]["nll_before"]
    assert report["validation"]["num_samples"] == 70 and report["test"]["num_samples"] == 35
    # config.json alone changed, and only by the temperature; every other file byte-identical, nothing added
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for name, content in files.items():
        if name != "config.json":
            assert (folder / name).read_bytes() == content, name
    config = json.loads((folder / "config.json").read_text())
    assert config == {**json.loads(files["config.json"]), "temperature": report["temperature"]}
    with torch.inference_mode():
        after = FerForImageClassification.from_pretrained(folder).eval()(probe).logits
    assert torch.equal(after.argmax(-1), before.argmax(-1))
    torch.testing.assert_close(after, before / report["temperature"])
    assert Image.open(plot).size[0] > 300


def test_cli_calibrate_needs_a_local_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["calibrate", "--model", str(tmp_path / "missing"), "--dataset", str(tmp_path)]) == 1
    assert "calibrate needs a local model folder" in capsys.readouterr().err


def test_reliability_diagram_is_written(tmp_path: Path) -> None:
    logits = 3 * torch.randn(300, 7, generator=torch.Generator().manual_seed(0))
    labels = logits.argmax(-1).roll(1)
    path = plot_reliability_diagram(logits, labels, 2.0, tmp_path / "r.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 300 and (image != 255).any(axis=-1).mean() > 0.02  # drawn, not blank


def test_write_calibration_is_what_a_training_run_calls(tmp_path: Path) -> None:
    """End of a run: validation/test logits in, temperature in config.json, the diagram and the metrics out."""
    folder = save_random_model(tmp_path / "run")
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 7, generator=generator)
    labels = torch.multinomial((logits / 0.5).softmax(-1), 1, generator=generator)[:, 0]  # under-confident logits
    metrics = write_calibration(folder, (logits[:2000], labels[:2000]), (logits[2000:], labels[2000:]),
                                plot=folder / RELIABILITY_PNG)
    assert metrics["temperature"] == pytest.approx(0.5, rel=0.08)
    assert FerForImageClassification.from_pretrained(folder).config.temperature == metrics["temperature"]
    assert metrics["test"]["num_samples"] == 2000 and metrics["test"]["nll_after"] < metrics["test"]["nll_before"]
    assert (folder / RELIABILITY_PNG).stat().st_size > 10_000
