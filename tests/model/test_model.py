"""FerConfig / FerForImageClassification: shapes, size, loss, freezing, save/load, Auto classes, pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

from fer_model import FER2013_LABELS, FerConfig, FerForImageClassification, FerImageProcessor
from fer_model.modeling import vgg_layer_indices


@pytest.fixture(scope="module", params=["vgg16", "vgg16_bn"])
def model(request: pytest.FixtureRequest) -> FerForImageClassification:
    torch.manual_seed(0)
    return FerForImageClassification(FerConfig(backbone=request.param)).eval()


@pytest.mark.parametrize("batch", [1, 8])
def test_forward_shapes(model: FerForImageClassification, batch: int) -> None:
    logits = model(torch.randn(batch, 3, 48, 48)).logits
    assert logits.shape == (batch, 7)
    assert torch.isfinite(logits).all()


def test_parameter_count_is_the_seed_size(model: FerForImageClassification) -> None:
    count = sum(p.numel() for p in model.parameters())
    assert 13e6 <= count <= 17e6, count
    assert not any("pre_logits" in name or "fc6" in name for name, _ in model.named_parameters())


def test_loss_when_labels_given(model: FerForImageClassification) -> None:
    labels = torch.tensor([0, 3, 6, 1])
    output = model(torch.randn(4, 3, 48, 48), labels=labels)
    expected = torch.nn.functional.cross_entropy(output.logits, labels)
    torch.testing.assert_close(output.loss, expected)
    assert model(torch.randn(2, 3, 48, 48)).loss is None


def test_wrong_input_shape_is_a_clear_error(model: FerForImageClassification) -> None:
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, 48, 48\)"):
        model(torch.randn(2, 1, 48, 48))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "resnet50"}, "backbone='resnet50'"),
        ({"hidden_size": 0}, "hidden_size=0"),
        ({"image_size": 16}, "image_size=16"),
        ({"id2label": {0: "a", 1: "b"}, "num_labels": 3}, "num_labels=3"),
        ({"id2label": {0: "a", 2: "b"}}, "keys"),
        ({"image_std": [0.0, 1.0, 1.0]}, "image_std"),
    ],
)
def test_invalid_config_values_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FerConfig(**kwargs)


def test_default_labels_and_custom_label_sets() -> None:
    assert list(FerConfig().id2label.values()) == list(FER2013_LABELS)
    config = FerConfig(id2label={0: "neg", 1: "pos"})
    assert config.num_labels == 2 and config.label2id == {"neg": 0, "pos": 1}
    model = FerForImageClassification(config).eval()
    assert model(torch.randn(3, 3, 48, 48)).logits.shape == (3, 2)


@pytest.mark.parametrize("image_size", [64, 96])
def test_larger_inputs_widen_the_head(image_size: int) -> None:
    model = FerForImageClassification(FerConfig(image_size=image_size)).eval()
    assert model.head.fc1.in_features == 512 * (image_size // 32) ** 2
    assert model(torch.randn(2, 3, image_size, image_size)).logits.shape == (2, 7)


def test_keras_layer_names_map_to_timm_indices() -> None:
    vgg16 = vgg_layer_indices("vgg16")
    assert vgg16["block1_conv1"] == 0 and vgg16["block4_conv1"] == 17 and vgg16["block5_pool"] == 30
    assert vgg_layer_indices("vgg16_bn")["block4_conv1"] == 24
    model = FerForImageClassification(FerConfig())
    assert isinstance(model.features[17], torch.nn.Conv2d) and model.features[17].in_channels == 256
    assert isinstance(model.features[16], torch.nn.MaxPool2d)


def test_frozen_layers_do_not_change_while_the_head_trains() -> None:
    torch.manual_seed(0)
    model = FerForImageClassification(FerConfig()).train()
    assert model.freeze_backbone("block4_conv1") == 17
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("features.")
              and int(n.split(".")[1]) < 17}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if n not in frozen}
    assert len(frozen) == 14  # 7 convs x (weight, bias) in blocks 1-3
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(torch.randn(8, 3, 48, 48), labels=torch.randint(0, 7, (8,))).loss
    loss.backward()
    optimizer.step()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in frozen.items())
    assert not torch.equal(params["head.fc2.weight"], trainable["head.fc2.weight"])
    assert not torch.equal(params["features.17.weight"], trainable["features.17.weight"])


def test_frozen_batchnorm_keeps_its_statistics() -> None:
    model = FerForImageClassification(FerConfig(backbone="vgg16_bn"))
    model.freeze_backbone("block4_conv1")
    model.train()
    before = model.features[1].running_mean.clone()
    model(torch.randn(4, 3, 48, 48))
    assert not model.features[1].training and model.features[24 + 1].training
    assert torch.equal(model.features[1].running_mean, before)


def test_unknown_freeze_layer_is_named() -> None:
    with pytest.raises(ValueError, match="block9_conv1"):
        FerForImageClassification(FerConfig()).freeze_backbone("block9_conv1")


def test_pretrained_backbone_offline_says_how_to_proceed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="--no-pretrained"):
        FerForImageClassification(FerConfig(), pretrained_backbone=True)


def test_pretrained_backbone_from_a_local_file(tmp_path: Path) -> None:
    source = FerForImageClassification(FerConfig())
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, tmp_path / "vgg16.pth")
    model = FerForImageClassification(FerConfig(), pretrained_backbone=tmp_path / "vgg16.pth")
    assert torch.equal(model.features[0].weight, source.features[0].weight)
    assert "pretrained_backbone" not in model.config.to_dict()


def test_save_and_load_round_trip(tiny_model_dir: Path) -> None:
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "configuration.py", "modeling.py",
            "image_processing.py"} <= files
    assert not files & {"pytorch_model.bin", "model.pt"}
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling.FerForImageClassification"
    pixel_values = torch.randn(4, 3, 48, 48)
    model = FerForImageClassification.from_pretrained(tiny_model_dir).eval()
    again_dir = tiny_model_dir.parent / "again"
    model.save_pretrained(again_dir)
    again = FerForImageClassification.from_pretrained(again_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values).logits, again(pixel_values).logits, rtol=0, atol=0)


def test_auto_classes_and_pipeline_agree_with_the_model(tiny_model_dir: Path) -> None:
    model = FerForImageClassification.from_pretrained(tiny_model_dir).eval()
    processor = FerImageProcessor.from_pretrained(tiny_model_dir)
    auto_model = AutoModelForImageClassification.from_pretrained(tiny_model_dir, trust_remote_code=True).eval()
    auto_processor = AutoImageProcessor.from_pretrained(tiny_model_dir, trust_remote_code=True)
    assert AutoConfig.from_pretrained(tiny_model_dir, trust_remote_code=True).model_type == "fer-vgg"
    image = Image.radial_gradient("L").resize((90, 70)).convert("RGB")
    pixel_values = processor(image)["pixel_values"]
    torch.testing.assert_close(auto_processor(image, return_tensors="pt")["pixel_values"], pixel_values)
    with torch.no_grad():
        logits = model(pixel_values).logits
        torch.testing.assert_close(auto_model(pixel_values).logits, logits)
    classifier = pipeline("image-classification", model=str(tiny_model_dir), trust_remote_code=True)
    results = classifier(image, top_k=7)
    assert sorted(r["label"] for r in results) == sorted(FER2013_LABELS)
    assert sum(r["score"] for r in results) == pytest.approx(1.0, abs=1e-5)
    probabilities = logits.softmax(-1)[0]
    best = results[0]
    assert best["label"] == model.config.id2label[int(probabilities.argmax())]
    assert best["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_pickle_only_folder_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    model = FerForImageClassification.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError, match="only pickle weights"):
        FerForImageClassification.from_pretrained(folder)
    with pytest.raises(OSError):
        AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)


def test_mismatched_weights_are_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="(?i)size mismatch|mismatch"):
        FerForImageClassification.from_pretrained(folder)


def test_load_model_names_a_missing_folder() -> None:
    from fer_model import load_model

    with pytest.raises(OSError, match="There is no model folder at './no/such/model'.*FER_MODEL"):
        load_model("./no/such/model")
