"""Loading a model folder safely: safetensors only (pickles never unpickled), strict weights, validated config.

tests/model/test_model.py already checks that a folder holding only pickle weights is refused and that a config whose
hidden_size disagrees with the weights is an error; these tests go further: a booby-trapped pickle next to the
safetensors must never be unpickled by any loading path, a missing / unexpected / reshaped tensor is a
ValueError naming it, a damaged weights file is an OSError, and an unknown backbone is a ValueError naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForImageClassification

import app
from fer_model import EmotionRecognizer, FerForImageClassification, load_model


class Trap:
    """Unpickling this object opens (creates) `marker`: proof that a loader ran pickle on the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


def copy_model(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


def plant_pickle_trap(folder: Path, marker: Path) -> None:
    """A pytorch_model.bin (and model.pt) whose unpickling creates `marker`, as a malicious upload would."""
    for name in ("pytorch_model.bin", "model.pt"):
        torch.save({"head.fc2.weight": Trap(marker)}, folder / name)


def edit_weights(folder: Path, edit) -> Path:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_the_trap_is_live(tmp_path: Path) -> None:
    """Sanity check of the tests below: a plain torch.load of the planted file does run the payload."""
    marker = tmp_path / "unpickled"
    plant_pickle_trap(tmp_path, marker)
    torch.load(tmp_path / "pytorch_model.bin", weights_only=False)
    assert marker.exists()


def test_pickles_beside_safetensors_are_never_unpickled(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "trapped")
    marker = tmp_path / "unpickled"
    plant_pickle_trap(folder, marker)
    expected = load_file(tiny_model_dir / "model.safetensors")["head.fc2.weight"]

    loaded = [
        FerForImageClassification.from_pretrained(folder),
        FerForImageClassification.from_pretrained(folder, use_safetensors=False),  # the override wins
        AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True),  # the folder's own code
        load_model(folder)[0],
        EmotionRecognizer.from_pretrained(folder).model,
    ]
    for model in loaded:
        torch.testing.assert_close(model.head.fc2.weight.detach(), expected, rtol=0, atol=0)
    assert not marker.exists(), "a loader unpickled pytorch_model.bin / model.pt"


def test_a_trapped_pickle_alone_is_refused_without_unpickling(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "pickle-only")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    plant_pickle_trap(folder, marker)
    with pytest.raises(OSError, match="only pickle weights"):
        FerForImageClassification.from_pretrained(folder, use_safetensors=False)
    with pytest.raises(OSError):
        AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(OSError, match="Could not load a FER model"):
        load_model(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda state: state.pop("head.fc2.weight"), r"missing_keys: \['head.fc2.weight'\]"),
        (lambda state: state.__setitem__("head.extra.weight", torch.zeros(3)),
         r"unexpected_keys: \['head.extra.weight'\]"),
        (lambda state: state.__setitem__("head.fc2.weight", torch.zeros(6, 32)), "size mismatch"),
        (lambda state: state.__setitem__("features.0.weight", torch.zeros(64, 1, 3, 3)), "size mismatch"),
    ],
    ids=["missing", "unexpected", "head-shape", "backbone-shape"],
)
def test_weights_are_loaded_strictly(tiny_model_dir: Path, tmp_path: Path, edit, message: str) -> None:
    """transformers alone would only log these and leave randomly initialised weights in the model."""
    folder = edit_weights(copy_model(tiny_model_dir, tmp_path / "edited"), edit)
    with pytest.raises(ValueError, match=message):
        FerForImageClassification.from_pretrained(folder)
    with pytest.raises(ValueError, match=message):
        AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(SystemExit, match="cannot start without a model"):  # the app stops with the reason
        app.load_recognizer(str(folder))


def test_ignore_mismatched_sizes_stays_an_explicit_opt_in(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Fine-tuning on another label set: the caller asks for the mismatched head to be re-initialised."""
    folder = copy_model(tiny_model_dir, tmp_path / "relabel")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "neg", "1": "pos"}
    config["label2id"] = {"neg": 0, "pos": 1}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="size mismatch"):
        FerForImageClassification.from_pretrained(folder)
    model, info = FerForImageClassification.from_pretrained(folder, ignore_mismatched_sizes=True,
                                                           output_loading_info=True)
    assert model.head.fc2.weight.shape == (2, 32)
    assert {str(key[0] if isinstance(key, tuple) else key) for key in info["mismatched_keys"]} >= {"head.fc2.weight"}
    features = load_file(tiny_model_dir / "model.safetensors")["features.0.weight"]
    torch.testing.assert_close(model.features[0].weight.detach(), features, rtol=0, atol=0)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_weights_file_is_an_os_error(tiny_model_dir: Path, tmp_path: Path, damage: str) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / damage)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a safetensors file" * 8)
    with pytest.raises(OSError, match="truncated or corrupt"):
        FerForImageClassification.from_pretrained(folder)
    with pytest.raises(OSError, match="Could not load a FER model"):
        load_model(folder)


def test_an_unknown_backbone_is_a_value_error_naming_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "resnet")
    config = json.loads((folder / "config.json").read_text())
    config["backbone"] = "resnet50"
    (folder / "config.json").write_text(json.dumps(config))
    message = r"backbone='resnet50' is not supported; choose one of \['vgg16', 'vgg16_bn'\]"
    with pytest.raises(ValueError, match=message):
        FerForImageClassification.from_pretrained(folder)
    with pytest.raises(ValueError, match=message):
        AutoConfig.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(ValueError, match=message):
        AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(ValueError, match=message):
        load_model(folder)
    with pytest.raises(SystemExit, match="resnet50"):
        app.load_recognizer(str(folder))
