"""The recipe options of train/train.py, each checked for its effect on small tensors (no training run).

End-to-end runs with these options are in test_train.py; the model fields' single declaration, the input
path and the checkpoints are checked here at the function level, where their effects can be measured exactly.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from accelerate.utils import DynamoBackend

from fer_model import FerConfig, FerForImageClassification
from fer_model.configuration import ModelArguments
from fer_model.image_processing import gray_to_pixel_values
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model
from train import train as train_script
from train.augment import BatchAugment, build_mixup
from train.batches import DeviceBatches, epoch_batches, training_batches
from train.ema import EMAModel
from train.optim import build_optimizer, build_scheduler, stepped_per_epoch
from train.recipe import Recipe, parse_args
from train.train import build_model

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def lr_curve(recipe: Recipe, total_steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    scheduler = build_scheduler(recipe, optimizer, total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


# --- model fields: declared once (ModelArguments), FerConfig and Recipe read them ---------------------


def test_model_fields_have_one_default_shared_by_config_recipe_and_flags() -> None:
    signature = inspect.signature(FerConfig.__init__).parameters
    recipe, _ = parse_args([])
    for spec in fields(ModelArguments):
        assert signature[spec.name].default == spec.default == getattr(Recipe(), spec.name), spec.name
        assert getattr(FerConfig(), spec.name) == getattr(recipe, spec.name)
    assert list(Recipe().model_arguments()) == [spec.name for spec in fields(ModelArguments)]
    assert "freeze_until" not in signature and "freeze_until" not in FerConfig().to_dict()


def test_old_config_with_freeze_until_loads_and_drops_it(tmp_path: Path) -> None:
    FerForImageClassification(FerConfig(image_size=32)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "freeze_until": "block4_conv1"}))
    model = FerForImageClassification.from_pretrained(tmp_path)
    assert model.config.image_size == 32 and not hasattr(model.config, "freeze_until")
    model.save_pretrained(tmp_path / "again")
    assert "freeze_until" not in json.loads((tmp_path / "again" / "config.json").read_text())


@needs_released_model
def test_released_model_folder_still_loads() -> None:
    assert "freeze_until" in json.loads((RELEASED_MODEL_DIR / "config.json").read_text())  # written by old code
    model = FerForImageClassification.from_pretrained(RELEASED_MODEL_DIR).eval()
    assert (model.config.backbone, model.config.hidden_size, model.config.image_size) == ("vgg16", 32, 48)
    assert not hasattr(model.config, "freeze_until")
    assert model(pixel_values=torch.zeros(1, 3, 48, 48)).logits.shape == (1, 7)


def test_choices_come_from_the_literal_types(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scheduler", "cosine"])
    error = capsys.readouterr().err
    assert "invalid choice: 'cosine'" in error and "'onecycle'" in error
    with pytest.raises(ValueError, match=r"tta='5crop' is not one of \['none', 'flip', '10crop'\]"):
        Recipe(tta="5crop")
    with pytest.raises(ValueError, match=r"backbone='resnet50' is not one of \['vgg16', 'vgg16_bn'\]"):
        Recipe(backbone="resnet50")


# --- loss and schedules -----------------------------------------------------------------------------


def test_label_smoothing_penalises_confident_correct_predictions() -> None:
    logits, target = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])
    assert float(F.cross_entropy(logits, target)) < 1e-6
    smoothed = float(F.cross_entropy(logits, target, label_smoothing=0.1))
    assert smoothed == pytest.approx(0.1 * 2 / 3 * 20.0, rel=1e-3)  # the 2 wrong classes get 0.1/3 each


def test_onecycle_rises_for_warmup_ratio_then_anneals() -> None:
    lrs = lr_curve(Recipe(scheduler="onecycle", lr=0.1, warmup_ratio=0.3), 100)
    peak = max(range(100), key=lrs.__getitem__)
    assert 28 <= peak <= 31 and lrs[peak] == pytest.approx(0.1, rel=1e-3)
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[-1] < 1e-5  # torch's div_factor and final_div_factor


def test_plateau_lowers_lr_when_validation_accuracy_stalls() -> None:
    """torch's ReduceLROnPlateau in mode max: after `patience` epochs without a new best, lr x factor, >= min_lr."""
    recipe = Recipe(lr=0.1, scheduler="plateau", plateau_factor=0.5, plateau_patience=2, min_lr=0.02)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    scheduler = build_scheduler(recipe, optimizer, total_steps=1)
    lrs = []
    for accuracy in (0.5, 0.6, 0.6, 0.59, 0.58, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7):
        lrs.append(optimizer.param_groups[0]["lr"])  # the lr the epoch trained with
        scheduler.step(accuracy)
    assert lrs == pytest.approx([0.1] * 5 + [0.05] * 4 + [0.025] * 3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)  # 0.0125 is below min_lr
    assert stepped_per_epoch(recipe) and not stepped_per_epoch(Recipe(scheduler="onecycle"))


def test_no_schedule_is_constant_after_its_warmup() -> None:
    assert lr_curve(Recipe(lr=0.1), 10) == [0.1] * 10
    warm = lr_curve(Recipe(lr=0.1, warmup_ratio=0.4), 10)  # get_scheduler("constant_with_warmup"), 4 steps
    assert warm[:5] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1]) and warm[5:] == [0.1] * 5


# --- MixUp (torchvision) on the device batch path --------------------------------------------------------


def test_mixup_mixes_device_batches_into_soft_targets() -> None:
    images = torch.randint(0, 256, (24, 1, 48, 48), dtype=torch.uint8)
    labels = torch.arange(24) % 7
    config = FerConfig(image_size=48)
    mixup = build_mixup(Recipe(mixup_alpha=1.0), config.num_labels)
    plain = DeviceBatches(images, labels, config, batch_size=8, seed=0, channels_last=True)
    mixed = DeviceBatches(images, labels, config, batch_size=8, seed=0, channels_last=True, mixup=mixup)
    torch.manual_seed(0)
    for (pixel_values, target), (clean, hard) in zip(mixed.epoch(1), plain.epoch(1), strict=True):
        assert target.shape == (8, 7) and target.dtype == torch.float32
        torch.testing.assert_close(target.sum(1), torch.ones(8))
        lam = float(target[torch.arange(8), hard].min())  # MixUp pairs each face with its neighbour (roll by 1)
        torch.testing.assert_close(pixel_values, lam * clean + (1 - lam) * clean.roll(1, 0), rtol=1e-5, atol=1e-5)
        assert pixel_values.is_contiguous(memory_format=torch.channels_last)
    assert build_mixup(Recipe(), 7) is None


# --- weight averages --------------------------------------------------------------------------------


def small_model(seed: int = 0, **config: object) -> FerForImageClassification:
    torch.manual_seed(seed)
    return FerForImageClassification(FerConfig(image_size=32, **config))


def test_ema_follows_the_weights_and_batchnorm_buffers_at_its_decay() -> None:
    model = small_model()
    ema = EMAModel(model, 0.75)
    assert ema.n_averaged.device.type == "cpu"  # updating never waits for a GPU
    snapshots = []
    for step in range(3):
        with torch.no_grad():
            for tensor in [*model.parameters(), model.head.norm.running_mean]:
                tensor.add_(0.1 * (step + 1))
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update_parameters(model)
    expected = snapshots[0]  # the first update copies, later ones interpolate
    for snapshot in snapshots[1:]:
        expected = {k: (0.75 * expected[k] + 0.25 * snapshot[k]) if v.is_floating_point() else v
                    for k, v in snapshot.items()}
    ema_state = ema.module.state_dict()
    for name in ("features.0.weight", "head.fc2.bias", "head.norm.running_mean"):
        torch.testing.assert_close(ema_state[name], expected[name])
        assert not torch.equal(ema_state[name], model.state_dict()[name])


# --- model options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("backbone", "image_size", "hidden_size", "features"), [
    ("vgg16", 96, 32, 512 * 3 * 3), ("vgg16_bn", 64, 64, 512 * 2 * 2)])
def test_model_options_reach_the_model(backbone: str, image_size: int, hidden_size: int, features: int) -> None:
    recipe = Recipe(backbone=backbone, image_size=image_size, hidden_size=hidden_size, head_dropout=0.4,
                    pretrained=False, freeze_until=None, channels_last=True)
    model = build_model(recipe, LABELS)
    assert model.head.fc1.weight.shape == (hidden_size, features) and model.head.drop.p == 0.4
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.features) == (backbone == "vgg16_bn")
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    pixel_values = gray_to_pixel_values(torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8), model.config, True)
    assert pixel_values.shape == (2, 3, image_size, image_size)
    assert model.eval()(pixel_values=pixel_values).logits.shape == (2, 7)


def test_freeze_until_is_applied_by_training_not_stored_in_the_config() -> None:
    model = build_model(Recipe(freeze_until="block4_conv1"), LABELS)
    assert model.frozen_until == 17 and not model.features[0].weight.requires_grad
    assert model.features[17].weight.requires_grad and "freeze_until" not in model.config.to_dict()
    assert build_model(Recipe(freeze_until=None), LABELS).frozen_until == 0


def test_optimizer_is_fused_only_on_cuda() -> None:
    model = small_model()
    for name in ("sgd", "adam"):
        optimizer = build_optimizer(Recipe(optimizer=name, lr=0.01), model)
        assert not optimizer.param_groups[0].get("fused"), "CPU parameters must not ask for fused kernels"
    sgd = build_optimizer(Recipe(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True), model)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9


def test_torch_compile_flag_reaches_accelerate_dynamo_plugin() -> None:
    """Compiling VGG16 with inductor takes minutes on 2 CPU cores: the flag's wiring is checked, not a compile."""
    try:
        accelerator = train_script.build_accelerator(Recipe(torch_compile=True, compile_mode="max-autotune"), cpu=True)
        assert accelerator.state.dynamo_plugin.backend == DynamoBackend.INDUCTOR
        assert accelerator.state.dynamo_plugin.mode == "max-autotune"
        AcceleratorState._reset_state(True)
        plain = train_script.build_accelerator(Recipe(), cpu=True)
        assert plain.state.dynamo_plugin.backend == DynamoBackend.NO
    finally:
        AcceleratorState._reset_state(True)


# --- input path ---------------------------------------------------------------------------------------


def test_training_batches_are_views_of_chunks_in_epoch_order() -> None:
    images = torch.randint(0, 256, (23, 1, 48, 48), dtype=torch.uint8)
    labels = torch.arange(23) % 7
    batches = epoch_batches(23, 4, seed=0, epoch=1, process_index=0, num_processes=1)
    config = FerConfig(image_size=48)
    plain = list(training_batches(images, labels, batches, config, chunk_images=8))  # chunks of 2 batches
    assert [len(p) for p, _ in plain] == [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]
    for (pixel_values, target), index in zip(plain, batches, strict=True):
        assert torch.equal(target, labels[index])
        torch.testing.assert_close(pixel_values, gray_to_pixel_values(images[index], config))

    def augmented(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        return list(training_batches(images, labels, batches, config, BatchAugment(), generator, channels_last=True,
                                     chunk_images=8))

    first, again = augmented(3), augmented(3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))  # seeded
    assert not torch.allclose(first[0][0], plain[0][0])
    assert first[0][0].is_contiguous(memory_format=torch.channels_last)
    assert [torch.equal(a[1], p[1]) for a, p in zip(first, plain, strict=True)] == [True] * 6


def test_device_batches_shard_per_process_and_reseed_per_epoch() -> None:
    images = torch.randint(0, 256, (20, 1, 48, 48), dtype=torch.uint8)
    labels = torch.arange(20) % 7
    shards = [DeviceBatches(images, labels, FerConfig(), batch_size=4, seed=5, augment=BatchAugment(),
                            process_index=rank, num_processes=2) for rank in range(2)]
    assert shards[0].steps_per_epoch == 3  # 10 faces each, batches of 4, 4, 2
    first = [list(shard.epoch(1)) for shard in shards]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first[0], list(shards[0].epoch(1)), strict=True))
    assert not torch.equal(first[0][0][0], next(iter(shards[0].epoch(2)))[0])
    assert sum(len(target) for rank in first for _, target in rank) == 20
