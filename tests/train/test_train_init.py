"""--init_from (issue 22, point 3): all the weights of a saved model, a new schedule, and a card that says so;
--pretrained_weights with a file no longer claims ImageNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from huggingface_hub import ModelCard

from fer_model import FER2013_LABELS, FerConfig, FerForImageClassification
from fer_model.card import render_model_card
from tests.helpers.paths import REPO
from tests.helpers.tiny_fer import write_hub_folder
from tests.helpers.train_runs import QUICK
from train import train as train_script
from train.init_from import base_model_id, init_description, load_init_weights
from train.recipe import Recipe, parse_args

RELEASED = REPO.parent / "shared" / "models" / "fer-vgg16"


def train(*argv: str) -> dict:
    try:
        return train_script.main([*QUICK, *argv])
    finally:
        AcceleratorState._reset_state(True)


def test_init_from_round_trip_starts_from_every_weight_and_the_card_names_it(tmp_path: Path) -> None:
    dataset = str(write_hub_folder(tmp_path / "data"))
    first = tmp_path / "first"
    train("--epochs", "1", "--dataset", dataset, "--output_dir", str(first), "--hub_model_id", "someone/fer-first")
    model = FerForImageClassification(FerConfig(image_size=40, id2label=dict(enumerate(FER2013_LABELS))))
    load_init_weights(model, str(first))  # another input size: the head follows a global pooling
    saved = FerForImageClassification.from_pretrained(first).state_dict()
    assert all(torch.equal(value, saved[name]) for name, value in model.state_dict().items())
    assert model.config.temperature == 1.0  # the weights, not the first run's calibration

    second = tmp_path / "second"
    metrics = train("--epochs", "1", "--lr", "1e-4", "--dataset", dataset, "--output_dir", str(second),
                    "--init_from", str(first))
    assert metrics["training"]["init"] == {"kind": "model", "source": str(first), "base_model": "someone/fer-first"}
    card = ModelCard.load(second / "README.md")
    assert card.data.base_model == "someone/fer-first"
    assert f"all weights (backbone and head) of the FER-VGG16 model `{first}`" in card.text
    assert "ImageNet" not in card.text.split("## Training details")[1].split("## Limitations")[0]


def test_init_from_refuses_other_labels_or_architecture(tmp_path: Path) -> None:
    FerForImageClassification(FerConfig(image_size=32, hidden_size=16)).save_pretrained(tmp_path / "other")
    labels = dict(enumerate(FER2013_LABELS))
    with pytest.raises(ValueError, match="hidden_size=16 differ from the recipe's"):
        load_init_weights(FerForImageClassification(FerConfig(id2label=labels)), str(tmp_path / "other"))
    reordered = dict(enumerate(reversed(FER2013_LABELS)))
    with pytest.raises(ValueError, match="are not the dataset's"):
        load_init_weights(FerForImageClassification(FerConfig(hidden_size=16, id2label=reordered)),
                          str(tmp_path / "other"))
    _, options = parse_args(["--init_from", "x", "--pretrained_weights", "y.pth"])
    with pytest.raises(ValueError, match="--init_from loads every weight"):
        train_script.backbone_init(Recipe(), options)


@pytest.mark.skipif(not RELEASED.is_dir(), reason=f"the released model is not at {RELEASED}")
def test_the_released_folder_is_named_by_its_hub_id() -> None:
    assert base_model_id(str(RELEASED)) == "fer-vgg16/fer-vgg16"
    assert base_model_id("someone/model") == "someone/model"


def test_a_pretrained_weights_file_is_not_called_imagenet() -> None:
    recipe = Recipe()  # pretrained: true, the seed's freeze_until
    _, options = parse_args(["--pretrained_weights", "/tmp/our-earlier-backbone.safetensors"])
    init = init_description(recipe, options)
    assert init == {"kind": "file", "source": "our-earlier-backbone.safetensors", "base_model": None}
    metrics = {"accuracy": 0.5, "macro_f1": 0.5, "labels": ["a"], "num_samples": 2, "per_class": {},
               "training": {"init": init, "epochs_completed": 1, "num_processes": 1, "device": "cpu",
                            "mixed_precision": "no", "images_per_second": 1.0, "train_time_s": 1.0},
               "validation": {"best_epoch": 1}}
    card = render_model_card(metrics, dataset="x", command="c", recipe=vars(recipe))
    assert card.data.base_model is None
    assert "backbone weights from the file `our-earlier-backbone.safetensors` (not downloaded from ImageNet)" in (
        card.text)
    assert "vgg16.tv_in1k" not in card.text
