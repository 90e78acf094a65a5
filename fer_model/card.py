"""The model card: `model_card.md` (a Jinja template in the repo root) filled with a run's metrics.

Rendered with huggingface_hub's `ModelCard.from_template`; the metadata block (including the
model-index with the FER2013 test accuracy, read by the Hub's leaderboards) comes from `ModelCardData`
and `EvalResult`, so it is valid Hub metadata by construction.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .loading import DEFAULT_MODEL_ID, is_hub_id
from .modeling import PRETRAINED_TAGS

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "model_card.md"
CONFUSION_MATRIX_PNG = "confusion_matrix.png"
TAGS = ["image-classification", "facial-expression-recognition", "emotion-recognition", "fer2013", "vgg16",
        "custom_code"]


def render_model_card(
    metrics: dict[str, Any],
    *,
    model_name: str | None = None,
    dataset: str,
    command: str,
    recipe: dict[str, Any],
    preset: str | None = None,
    template_path: str | os.PathLike = TEMPLATE_PATH,
) -> ModelCard:
    """The card of a trained model.

    Args:
        metrics: the run's metrics.json (test metrics at the top level, plus "validation", "training", "tta",
            and "calibration" when the run fitted a temperature: fer_model.calibration.calibration_metrics).
        model_name: the Hub repo id the model is published under (train.py's --hub_model_id); None names it
            as the project's model, DEFAULT_MODEL_ID. It titles the card, names the model-index entry and is what
            the usage example loads, so it is never the output folder's name (a local path nobody else has).
        dataset: the `--dataset` source the model was trained on.
        command: the exact command line of the run.
        recipe: the resolved training recipe (hyper-parameters); `preset` the YAML file it started from.
    """
    model_name = model_name or DEFAULT_MODEL_ID
    dataset_id = dataset if is_hub_id(dataset) else "fer2013"
    card_data = ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=TAGS,
        datasets=[dataset] if is_hub_id(dataset) else None,
        metrics=["accuracy", "f1"],
        base_model=base_model(metrics, recipe),
        eval_results=[
            EvalResult(task_type="image-classification", task_name="Facial expression recognition",
                       dataset_type=dataset_id, dataset_name="FER2013", dataset_split="test",
                       metric_type="accuracy", metric_name="Accuracy", metric_value=metrics["accuracy"]),
            EvalResult(task_type="image-classification", task_name="Facial expression recognition",
                       dataset_type=dataset_id, dataset_name="FER2013", dataset_split="test",
                       metric_type="f1", metric_name="Macro F1", metric_config="macro",
                       metric_value=metrics["macro_f1"]),
        ],
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        dataset=dataset,
        metrics=metrics,
        validation=metrics.get("validation", {}),
        training=metrics.get("training", {}),
        tta=metrics.get("tta", {}),
        calibration=metrics.get("calibration", {}),
        command=command,
        preset=preset,
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False).strip(),
        recipe=recipe,
        confusion_matrix_png=CONFUSION_MATRIX_PNG,
    )


def base_model(metrics: dict[str, Any], recipe: dict[str, Any]) -> str | None:
    """What the model started from, as a Hub id: train.py's training.init (its --init_from model, or ImageNet's
    timm weights; none for a --pretrained_weights file or random init); older metrics: ImageNet if pretrained."""
    init = metrics.get("training", {}).get("init")
    if init is not None:
        return init.get("base_model")
    return f"timm/{PRETRAINED_TAGS[recipe.get('backbone', 'vgg16')]}" if recipe.get("pretrained") else None
