"""The presets (train/configs/*.yaml), flags over presets, refused recipes, and the per-process shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer_model import FerConfig
from train import train as train_script
from train.batches import DeviceBatches, epoch_batches, steps_per_epoch
from train.recipe import Recipe, parse_args


def test_presets_hold_the_seed_measured_and_release_recipes() -> None:
    seed, _ = parse_args(["--config", "train/configs/seed.yaml"])
    assert (seed.optimizer, seed.lr, seed.batch_size, seed.epochs) == ("adam", 1e-4, 512, 20)
    assert (seed.freeze_until, seed.hidden_size, seed.augment, seed.pretrained) == ("block4_conv1", 32, False, True)
    assert seed == Recipe(), "the dataclass defaults are the seed's recipe"
    measured, _ = parse_args(["--config", "train/configs/onecycle60.yaml"])
    assert (measured.pretrained, measured.freeze_until, measured.optimizer, measured.nesterov, measured.momentum) == (
        False, None, "sgd", True, 0.9)
    assert (measured.lr, measured.scheduler, measured.weight_decay, measured.batch_size, measured.epochs) == (
        0.01, "onecycle", 5e-4, 128, 60)
    assert (measured.augment, measured.rotation, measured.scale, measured.translate, measured.hflip) == (
        True, 10.0, 0.1, 0.1, True)
    assert round((measured.erasing_scale[0] * 48**2) ** 0.5) == 16 and measured.erasing_ratio == [1.0, 1.0]  # 16x16
    assert (measured.mixed_precision, measured.channels_last, measured.torch_compile, measured.tta) == (
        "bf16", True, True, "flip")
    best, _ = parse_args(["--config", "train/configs/best.yaml"])
    changed = {k for k, v in vars(best).items() if getattr(measured, k) != v}
    assert changed == {"epochs", "label_smoothing", "ema_decay", "tta", "drop_last"}, (
        "best.yaml = onecycle60.yaml + the hypothesis (+ drop_last: one batch shape for the compiled step)")
    assert (best.epochs, best.label_smoothing, best.ema_decay, best.tta, best.hidden_size) == (
        100, 0.1, 0.999, "10crop", 32)


def test_flags_override_the_preset() -> None:
    recipe, options = parse_args(["--config", "train/configs/best.yaml", "--epochs", "3", "--no-augment",
                                  "--pretrained", "--freeze_until", "block3_conv1", "--output_dir", "x", "--cpu"])
    assert (recipe.epochs, recipe.augment, recipe.pretrained, recipe.freeze_until) == (3, False, True, "block3_conv1")
    assert recipe.lr == 0.01 and options.output_dir == "x" and options.cpu

    # best.yaml's warmup_ratio (0.3) and --warmup_epochs: refused, unless the ratio is zeroed on the command line
    with pytest.raises(ValueError, match="--warmup_ratio 0 --warmup_epochs N"):
        parse_args(["--config", "train/configs/best.yaml", "--warmup_epochs", "1"])
    recipe, _ = parse_args(["--config", "train/configs/best.yaml", "--warmup_ratio", "0", "--warmup_epochs", "1"])
    assert (recipe.warmup_ratio, recipe.warmup_epochs) == (0, 1)


@pytest.mark.parametrize(("text", "message"), [
    ("lr: 0.1\nlearning_rate: 3\n", r"unknown option\(s\) \['learning_rate'\]"),
    ("optimizer: rmsprop\n", "optimizer='rmsprop' is not one of"),
    ("ema_decay: 1.5\n", r"ema_decay=1.5"),
    ("swa_epochs: 3\n", r"unknown option\(s\) \['swa_epochs'\]"),  # removed options are refused, not ignored
    ("scheduler: cosine_restarts\n", r"scheduler='cosine_restarts' is not one of \['none', 'onecycle', 'plateau'\]"),
    ("warmup_ratio: 0.1\nwarmup_epochs: 1\n", "warmup_ratio=0.1 and warmup_epochs=1: give one"),
    ("warmup_epochs: 5\nepochs: 5\n", "warmup_epochs=5"),
    ("plateau_factor: 1.5\n", r"plateau_factor=1.5"),
    ("erasing_scale: [0.4, 0.1]\n", r"erasing_scale=\[0.4, 0.1\]"),
    ("erasing_ratio: [0.3]\n", r"erasing_ratio=\[0.3\]"),
    ("resized_crop_scale: [0.0, 1.2]\n", r"resized_crop_scale=\[0.0, 1.2\]"),
    ("grad_clip_value: -0.1\n", r"grad_clip_value=-0.1"),
    ("min_lr: 0.5\nlr: 0.1\n", r"min_lr=0.5"),
    ("tta: 5crop\n", "tta='5crop' is not one of"),
    ("image_size: 16\n", "image_size=16 must be an integer >= 32"),  # checked by FerConfig itself
    ("image_size: 40\ncrop_size: 44\n", r"crop_size=44 must be an integer in \[32, image_size=40\]"),
    ("compile_mode: max-autotune\n", "needs torch_compile"),
    ("scheduler: onecycle\nwarmup_ratio: 0.0\n", "warmup_ratio > 0"),
    ("batch_size: 1\n", "batch_size=1"),
])
def test_bad_presets_are_rejected_by_name(tmp_path: Path, text: str, message: str) -> None:
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    with pytest.raises(ValueError, match=message):
        parse_args(["--config", str(preset)])


def test_pretrained_weights_contradicting_no_pretrained_is_an_error() -> None:
    recipe, options = parse_args(["--no-pretrained", "--pretrained_weights", "vgg16.pth"])
    with pytest.raises(ValueError, match="contradicts --no-pretrained"):
        train_script.backbone_init(recipe, options)


@pytest.mark.parametrize(("num_samples", "batch_size", "processes"), [(28, 8, 1), (29, 4, 2), (100, 16, 3), (9, 4, 2)])
def test_epoch_shards_are_disjoint_equal_and_seeded(num_samples: int, batch_size: int, processes: int) -> None:
    shards = [epoch_batches(num_samples, batch_size, seed=1, epoch=3, process_index=r, num_processes=processes)
              for r in range(processes)]
    assert len({len(batches) for batches in shards}) == 1, "every process must take the same number of steps"
    assert len(shards[0]) == steps_per_epoch(num_samples // processes, batch_size)
    seen = [int(i) for batches in shards for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) and all(len(b) >= 2 for s in shards for b in s)
    assert len(seen) >= processes * (num_samples // processes) - processes  # only a 1-sample tail dropped
    again = epoch_batches(num_samples, batch_size, seed=1, epoch=3, process_index=0, num_processes=processes)
    other = epoch_batches(num_samples, batch_size, seed=1, epoch=4, process_index=0, num_processes=processes)
    assert all(torch.equal(a, b) for a, b in zip(again, shards[0], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(other, shards[0], strict=True))




def test_drop_last_keeps_only_full_batches() -> None:
    assert steps_per_epoch(28_709, 128, drop_last=True) == 224 and steps_per_epoch(28_709, 128) == 225
    batches = epoch_batches(30, 8, seed=0, epoch=1, process_index=0, num_processes=1, drop_last=True)
    assert [len(b) for b in batches] == [8, 8, 8]
    images, labels = torch.zeros(30, 1, 48, 48, dtype=torch.uint8), torch.zeros(30, dtype=torch.long)
    shards = DeviceBatches(images, labels, FerConfig(), batch_size=8, seed=0, drop_last=True, num_processes=2)
    assert shards.steps_per_epoch == 1 and [len(t) for _, t in shards.epoch(1)] == [8]  # 15 each: one full batch
    with pytest.raises(ValueError, match="drop_last: 15 samples per process cannot fill one batch of 16"):
        DeviceBatches(images, labels, FerConfig(), batch_size=16, seed=0, drop_last=True, num_processes=2)
