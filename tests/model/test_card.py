"""Hub metadata: the model card's name and Calibration section, and the Space's README front matter."""

from __future__ import annotations

import yaml

from fer_model import DEFAULT_MODEL_ID
from fer_model.calibration import RELIABILITY_PNG, calibration_metrics
from fer_model.card import render_model_card
from fer_model.evaluation import classification_report
from tests.helpers.paths import REPO

RECIPE = {"backbone": "vgg16", "image_size": 48, "pretrained": False, "freeze_until": None, "epochs": 36,
          "optimizer": "sgd", "lr": 0.01, "scheduler": "onecycle", "batch_size": 128, "label_smoothing": 0.1,
          "augment": True}
TRAINING = {"epochs_completed": 36, "num_processes": 1, "device": "cpu", "mixed_precision": "bf16",
            "train_samples": 28709, "validation_samples": 3589, "test_samples": 3589, "images_per_second": 155.0,
            "train_time_s": 6716.0}


def run_metrics(**extra: object) -> dict:
    return {**classification_report([[5, 1], [2, 4]], ["happy", "sad"]), "tta": {}, "training": TRAINING,
            "validation": {"best_accuracy": 0.7, "best_epoch": 36, "history": []}, **extra}


def render(metrics: dict, **kwargs: object):
    return render_model_card(metrics, dataset="../shared/fer2013", command="python train/train.py --output_dir "
                             "outputs/cpu36", recipe=RECIPE, **kwargs)


def test_card_is_named_by_the_hub_id_else_the_projects_model_never_the_folder() -> None:
    card = render(run_metrics())
    assert card.data.model_name == DEFAULT_MODEL_ID and card.text.lstrip().startswith(f"# {DEFAULT_MODEL_ID}\n")
    assert f'model="{DEFAULT_MODEL_ID}"' in card.text and 'model="cpu36"' not in card.text
    card = render(run_metrics(), model_name="someone/fer-vgg16-v2")
    assert card.data.model_name == "someone/fer-vgg16-v2" and 'model="someone/fer-vgg16-v2"' in card.text
    assert card.data.eval_results[0].metric_value == 9 / 12


def test_calibration_section_only_when_the_metrics_have_one() -> None:
    assert "## Calibration" not in render(run_metrics()).text
    validation = ([[2.0, 0.0], [0.0, 3.0], [4.0, 0.0], [0.0, 1.0]], [0, 1, 1, 1])
    calibration = {**calibration_metrics(validation, validation), "reliability_diagram": RELIABILITY_PNG}
    text = render(run_metrics(calibration=calibration)).text
    section = text[text.index("## Calibration"):text.index("## How to use")]
    test = calibration["test"]
    assert f"T = {calibration['temperature']:.3f}" in section
    assert (f"| expected calibration error (15 bins, top-1) | {test['ece_before']:.4f} | {test['ece_after']:.4f} |"
            in section)
    assert f"| negative log-likelihood | {test['nll_before']:.4f} | {test['nll_after']:.4f} |" in section
    assert f"]({RELIABILITY_PNG})" in section and "(4 faces)" in section


def test_space_front_matter_names_and_preloads_the_projects_model() -> None:
    """The Space builds with the model in its cache (preload_from_hub), so no download at the first request."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["models"] == [DEFAULT_MODEL_ID]
    assert front["preload_from_hub"] == [DEFAULT_MODEL_ID]
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
