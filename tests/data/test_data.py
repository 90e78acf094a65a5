"""fer_model.data.load_fer2013: every source kind gives the same schema and content; bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from fer_model import FER2013_LABELS
from fer_model.data import FEATURES, DataError, load_fer2013, split_to_tensors
from tests.helpers.paths import FER2013_DIR, needs_fer2013
from tests.helpers.tiny_fer import (
    SIZES,
    hub_dataset,
    split_arrays,
    write_hub_folder,
    write_image_folder,
    write_kaggle_csv,
)


def renamed_dataset() -> DatasetDict:
    """Kind 4: other column names, capitalised string labels, a 'valid' split, no id column."""
    return DatasetDict({
        {"validation": "valid"}.get(split, split): Dataset.from_dict(
            {"img": [PILImage.fromarray(a) for a in images], "Emotion": [FER2013_LABELS[i].upper() for i in labels]},
            features=Features({"img": Image(), "Emotion": Value("string")}))
        for split, (images, labels) in split_arrays().items()
    })


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sources")
    hub_dataset().save_to_disk(str(root / "saved"))
    return {
        "hub_folder": str(write_hub_folder(root / "hub")),
        "save_to_disk": str(root / "saved"),
        "kaggle_csv": str(write_kaggle_csv(root / "fer2013.csv")),
        "image_folder": str(write_image_folder(root / "images")),
        "datasets_object": renamed_dataset(),
    }


@pytest.mark.parametrize("kind", ["hub_folder", "save_to_disk", "kaggle_csv", "image_folder", "datasets_object"])
def test_every_source_kind_gives_the_same_schema_and_pixels(sources: dict[str, object], kind: str) -> None:
    data = load_fer2013(sources[kind])
    assert list(data) == ["train", "validation", "test"]
    expected = split_arrays()
    for split, (images, labels) in expected.items():
        assert data[split].features == FEATURES, kind
        assert len(data[split]) == SIZES[split]
        tensors, label_tensor = split_to_tensors(data[split])
        assert tensors.shape == (SIZES[split], 1, 48, 48) and tensors.dtype == torch.uint8
        # image-folder rows come in file order (sorted by label folder); compare as sorted sets of rows
        got = sorted(zip(label_tensor.tolist(), tensors[:, 0].reshape(len(labels), -1).tolist(), strict=True))
        want = sorted(zip(labels, images.reshape(len(labels), -1).tolist(), strict=True))
        assert got == want, f"{kind}: {split} pixels or labels differ from the source"
        image = data[split][0]["image"]
        assert image.mode == "L" and image.size == (48, 48)


def test_kaggle_csv_uses_the_original_emotion_codes(tmp_path: Path) -> None:
    """fer2013.csv codes 4 and 6 are sad and neutral (not the alphabetical order)."""
    data = load_fer2013(write_kaggle_csv(tmp_path / "fer2013.csv"))
    names = data["train"].features["label"].names
    assert names == list(FER2013_LABELS)
    assert [names[i] for i in data["train"]["label"][:7]] == list(FER2013_LABELS)


def test_image_folder_without_prefixes_carves_validation_from_train(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "images", prefixes=False)
    first, second = load_fer2013(root), load_fer2013(root)
    assert len(first["test"]) == SIZES["validation"] + SIZES["test"]
    assert len(first["train"]) + len(first["validation"]) == SIZES["train"]
    assert len(first["validation"]) == round(0.1 * SIZES["train"] + 0.5)
    assert first["validation"]["id"] == second["validation"]["id"], "the carve-out must be seeded"
    assert "carved" in capsys.readouterr().err


def test_other_image_sizes_and_modes_become_48px_grayscale() -> None:
    rgb = [PILImage.new("RGB", (64, 80), (200, 10, 10)), PILImage.new("RGBA", (30, 30), (0, 0, 255, 255))]
    split = Dataset.from_dict({"image": rgb, "label": ["happy", "sad"]},
                              features=Features({"image": Image(), "label": Value("string")}))
    data = load_fer2013(DatasetDict({"train": split, "validation": split, "test": split}))
    images, labels = split_to_tensors(data["test"])
    assert images.shape == (2, 1, 48, 48) and labels.tolist() == [3, 5]
    assert abs(int(images[0].float().mean()) - 66) <= 2  # ITU-R 601 luma of (200, 10, 10)


def test_label_names_are_matched_case_insensitively_and_reordered() -> None:
    """A ClassLabel with other casing, order and a known synonym maps onto the canonical ids."""
    names = ["Happiness", "SAD", "neutral", "Angry", "disgust", "Fear", "surprise"]
    images = [PILImage.new("L", (48, 48), v) for v in range(7)]
    split = Dataset.from_dict({"image": images, "label": list(range(7))},
                              features=Features({"image": Image(), "label": ClassLabel(names=names)}))
    data = load_fer2013(DatasetDict({"train": split, "validation": split, "test": split}))
    assert [FER2013_LABELS[i] for i in data["test"]["label"]] == ["happy", "sad", "neutral", "angry", "disgust",
                                                                 "fear", "surprise"]


# --- bad input: clear errors, or skipped and counted ------------------------------------------------


def test_missing_split_is_named() -> None:
    data = hub_dataset()
    with pytest.raises(DataError, match=r"has no test split \(splits found: \['train', 'validation'\]\)"):
        load_fer2013(DatasetDict({"train": data["train"], "validation": data["validation"]}))


def test_csv_without_private_test_rows_is_a_missing_split(tmp_path: Path) -> None:
    path = write_kaggle_csv(tmp_path / "fer2013.csv", sizes={"train": 7, "validation": 7, "test": 0})
    with pytest.raises(DataError, match=r"fer2013.csv has no test split \(splits found: \['train', 'validation'\]\)"):
        load_fer2013(path)
    assert len(load_fer2013(path, splits=("validation",))["validation"]) == 7  # what is there still loads


def test_unknown_label_name_is_named_or_skipped(capsys) -> None:
    data = renamed_dataset()
    bad = data["valid"].to_dict()
    bad["Emotion"][3] = "contempt"
    data["valid"] = Dataset.from_dict(bad, features=data["valid"].features)
    with pytest.raises(DataError, match=r"validation split: row 3: unknown label 'contempt'"):
        load_fer2013(data)
    skipped = load_fer2013(data, skip_bad_rows=True)
    assert len(skipped["validation"]) == SIZES["validation"] - 1
    assert "skipped 1 bad row(s) in the validation split" in capsys.readouterr().err


def test_malformed_pixels_row_names_the_csv_line(tmp_path: Path, capsys) -> None:
    lines = sum(SIZES.values()) + 1  # header + rows
    path = write_kaggle_csv(tmp_path / "fer2013.csv", extra_rows=[["3", " ".join(["7"] * 2303), "Training"]])
    with pytest.raises(DataError, match=rf"fer2013.csv line {lines + 1}: malformed pixels: 2303 values, expected 2304"):
        load_fer2013(path)
    data = load_fer2013(path, skip_bad_rows=True)
    assert len(data["train"]) == SIZES["train"]
    assert "skipped 1 bad row(s) in the train split" in capsys.readouterr().err


def test_unknown_usage_value_is_named(tmp_path: Path) -> None:
    path = write_kaggle_csv(tmp_path / "fer2013.csv", extra_rows=[["3", " ".join(["7"] * 2304), "Holdout"]])
    with pytest.raises(DataError, match=r"fer2013.csv line \d+: unknown Usage value 'Holdout'"):
        load_fer2013(path)
    assert sum(len(s) for s in load_fer2013(path, skip_bad_rows=True).values()) == sum(SIZES.values())


def test_unreadable_image_names_the_file(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "images")
    broken = root / "train" / "Happy" / "Training_broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=rf"train split: {broken}: unreadable image"):
        load_fer2013(root)
    assert len(load_fer2013(root, skip_bad_rows=True)["train"]) == SIZES["train"]
    assert "skipped 1 bad row(s) in the train split" in capsys.readouterr().err


def test_unknown_label_folder_names_label_and_file(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    extra = root / "train" / "Contempt" / "Training_x.png"
    extra.parent.mkdir()
    PILImage.new("L", (48, 48)).save(extra)
    with pytest.raises(DataError, match=rf"{extra}: unknown label 'Contempt'"):
        load_fer2013(root)


def test_integer_labels_without_names_are_named_by_a_class_label() -> None:
    split = Dataset.from_dict({"image": [PILImage.new("L", (48, 48))] * 2, "label": [0, 3]},
                              features=Features({"image": Image(), "label": Value("int64")}))
    data = DatasetDict({"train": split, "test": split, "validation": split})
    with pytest.raises(DataError, match=r"holds Value\('int64'\), not names: cast it to ClassLabel"):
        load_fer2013(data)
    named = load_fer2013(data.cast_column("label", ClassLabel(names=["sad", "x", "y", "angry"])))
    assert named["test"]["label"] == [FER2013_LABELS.index("sad"), FER2013_LABELS.index("angry")]


def test_missing_local_path_and_unreachable_hub_id_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fer2013(str(tmp_path / "nowhere"))
    with pytest.raises(OSError, match="Pass a local source instead"):
        load_fer2013("no-such-owner/no-such-fer-dataset")  # HF_HUB_OFFLINE=1: fails without network


@needs_fer2013
def test_real_fer2013_folder() -> None:
    data = load_fer2013(FER2013_DIR)
    assert {split: len(d) for split, d in data.items()} == {"train": 28709, "validation": 3589, "test": 3589}
    assert data["test"].features == FEATURES
    assert data["validation"][0]["id"].startswith("PublicTest_") and data["test"][0]["id"].startswith("PrivateTest_")
    images, labels = split_to_tensors(data["test"])
    assert images.shape == (3589, 1, 48, 48) and int(labels.max()) == 6
    assert np.bincount(labels.numpy()).min() > 0


# --- only the wanted splits; each image decoded once ------------------------------------------------


def test_only_the_wanted_splits_are_needed() -> None:
    test_only = DatasetDict({"test": hub_dataset()["test"]})
    with pytest.raises(DataError, match=r"has no train split \(splits found: \['test'\]\)"):
        load_fer2013(test_only)
    data = load_fer2013(test_only, splits=("test",))
    assert list(data) == ["test"] and len(data["test"]) == SIZES["test"]
    with pytest.raises(ValueError, match="subset of"):
        load_fer2013(test_only, splits=("holdout",))


@pytest.mark.parametrize("form", ["image_folder_png48", "image_folder_rgb96_jpeg", "hub_folder"])
def test_a_test_only_face_dataset_evaluates_through_the_cli(tiny_model_dir: Path, tmp_path: Path, capsys,
                                                            form: str) -> None:
    """`python -m fer_model evaluate --dataset FOLDER --split test` on a folder that holds only test faces."""
    from fer_model import FerForImageClassification, FerImageProcessor
    from fer_model.__main__ import main

    sizes = {"test": 13}
    if form == "hub_folder":
        root = write_hub_folder(tmp_path / "faces", sizes=sizes)
    else:
        rgb = form == "image_folder_rgb96_jpeg"
        root = write_image_folder(tmp_path / "faces", sizes=sizes, prefixes=False, side=96 if rgb else 48,
                                  mode="RGB" if rgb else "L", suffix=".jpg" if rgb else ".png")
    assert main(["evaluate", "--model", str(tiny_model_dir), "--dataset", str(root), "--split", "test"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    images, labels = split_arrays(sizes)["test"]
    assert metrics["num_samples"] == 13
    supports = [metrics["per_class"][name]["support"] for name in FER2013_LABELS]
    assert supports == np.bincount(labels, minlength=7).tolist()
    if form != "image_folder_rgb96_jpeg":  # lossless 48 px grey faces: the processor must give the same predictions
        model = FerForImageClassification.from_pretrained(tiny_model_dir).eval()
        pixel_values = FerImageProcessor.from_pretrained(tiny_model_dir)(list(images))["pixel_values"]
        with torch.inference_mode():
            predictions = model(pixel_values).logits.argmax(-1).numpy()
        expected = np.zeros((7, 7), dtype=int)
        np.add.at(expected, (np.array(labels), predictions), 1)
        assert metrics["confusion_matrix"] == expected.tolist()


def test_each_image_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The row check decodes every image; split_to_tensors reads the stored pixels without decoding again."""
    from PIL import ImageFile

    decodes = []
    original = ImageFile.ImageFile.load

    def counting_load(image: ImageFile.ImageFile):  # a decode happens while tiles are still pending
        decodes.extend([image.filename] if image.tile else [])
        return original(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    data = load_fer2013(write_image_folder(tmp_path / "images"))
    assert len(decodes) == sum(SIZES.values())
    tensors = {split: split_to_tensors(data[split]) for split in data}
    assert len(decodes) == sum(SIZES.values()) and tensors["test"][0].shape == (SIZES["test"], 1, 48, 48)


def test_pixels_match_the_images_in_any_row_order(sources: dict[str, object]) -> None:
    test = load_fer2013(sources["hub_folder"])["test"].shuffle(seed=3).select(range(5))  # an indices mapping
    images, labels = split_to_tensors(test)
    assert labels.tolist() == test["label"]
    assert images[:, 0].numpy().tolist() == [np.asarray(row["image"]).tolist() for row in test]


def test_image_outside_a_label_folder_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", prefixes=False)
    PILImage.new("L", (48, 48)).save(root / "test" / "stray.png")
    with pytest.raises(DataError, match=r"label.*every image sits in a <label>/ folder"):
        load_fer2013(root)


def test_unprefixed_file_among_prefixed_test_files_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    stray = root / "test" / "Happy" / "unsorted.png"
    PILImage.new("L", (48, 48)).save(stray)
    with pytest.raises(DataError, match=rf"{stray}: test files are split by their PublicTest_/PrivateTest_ prefix"):
        load_fer2013(root)
