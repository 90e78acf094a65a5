"""The model card and the classification report, from figures (no training); the name write_model_folder
gives the card, with and without a push."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, RepoUrl

from fer_model import DEFAULT_MODEL_ID
from fer_model.card import render_model_card
from fer_model.evaluation import classification_report
from train.publish import write_model_folder
from train.recipe import Recipe


def run_metrics() -> dict:
    return {**classification_report([[5, 1], [2, 4]], ["happy", "sad"]), "tta": {},
            "validation": {"best_accuracy": 0.7, "best_epoch": 3, "history": []},
            "training": {"epochs_completed": 20, "num_processes": 8, "device": "cuda", "mixed_precision": "bf16",
                         "train_samples": 28709, "validation_samples": 3589, "test_samples": 3589,
                         "images_per_second": 9000.0, "train_time_s": 300.0}}


def test_card_of_an_imagenet_fine_tune_names_the_base_model_and_hub_dataset() -> None:
    metrics = run_metrics()
    card = render_model_card(metrics, model_name="you/fer-vgg16", dataset="fer-vgg16/fer2013",
                             command="python train/train.py --config train/configs/seed.yaml",
                             recipe={**vars(Recipe())}, preset="train/configs/seed.yaml")
    assert card.data.base_model == "timm/vgg16.tv_in1k" and card.data.datasets == ["fer-vgg16/fer2013"]
    assert card.data.eval_results[0].dataset_type == "fer-vgg16/fer2013"
    assert card.data.eval_results[0].metric_value == metrics["accuracy"] == 9 / 12
    assert "ImageNet (`timm/vgg16.tv_in1k`), layers before `block4_conv1` frozen" in card.text
    assert "8 process(es)" in card.text and "preset `train/configs/seed.yaml`" in card.text


def test_classification_report_matches_hand_computed_figures() -> None:
    # rows = true class; "c" is only ever predicted, "d" neither occurs nor is predicted (left out of macro-F1)
    confusion = [[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    report = classification_report(confusion, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(5 / 8) and report["num_samples"] == 8
    a, b, c = (report["per_class"][name] for name in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 0.75, 4)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 0.5
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    f1_a, f1_b = 2 * 0.75 / 1.75, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert report["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)


@pytest.mark.parametrize(("hub_model_id", "push", "expected"), [
    (None, False, DEFAULT_MODEL_ID),  # a local run: the project's model, not "cpu36"
    ("you/fer-vgg16-v2", False, "you/fer-vgg16-v2"),
    (None, True, "you/cpu36"),  # pushed without an id: the repo created for it, under the account
])
def test_the_folder_card_names_the_hub_model_never_the_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     hub_model_id: str | None, push: bool,
                                                                     expected: str) -> None:
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(repo_id) or RepoUrl(
        f"https://huggingface.co/you/{repo_id}"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *, repo_id, **kw: calls.append(f"upload {repo_id}"))
    output_dir = tmp_path / "cpu36"
    output_dir.mkdir()
    write_model_folder(output_dir, run_metrics(), {**vars(Recipe())}, dataset="../shared/fer2013", preset=None,
                       argv=["--output_dir", str(output_dir)], num_processes=1, hub_model_id=hub_model_id, push=push)
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.model_name == expected and f'model="{expected}"' in card.text and 'model="cpu36"' not in card.text
    assert calls == (["cpu36", "upload you/cpu36"] if push else [])
