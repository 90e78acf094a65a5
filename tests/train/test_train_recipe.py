"""The recipe options of train/train.py, each checked for its effect on small tensors (no training run).

End-to-end runs with these options are in test_train.py; the input path and checkpoints are checked here
at the function level because that is where their effects can be measured exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from accelerate.utils import DynamoBackend

from fer_model import FerConfig, FerForImageClassification
from fer_model.image_processing import gray_to_pixel_values
from train import train as train_script
from train.augment import BatchAugment
from train.checkpoints import (
    MANIFEST_FILE,
    CheckpointError,
    find_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from train.train import (
    Recipe,
    build_ema,
    build_loss,
    build_model,
    build_optimizer,
    build_scheduler,
    build_swa,
    build_swa_scheduler,
    class_weights,
    training_batches,
)

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


# --- loss -------------------------------------------------------------------------------------------


def test_class_weights_favour_rare_classes_effective_less_than_inverse() -> None:
    counts = [400, 40, 200, 800, 400, 400, 300]  # disgust rare, happy common, like FER2013
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    inverse = class_weights(labels, 7, "inverse")
    effective = class_weights(labels, 7, "effective", beta=0.999)
    assert class_weights(labels, 7, "none") is None
    for weights in (inverse, effective):
        assert weights.shape == (7,) and float(weights.mean()) == pytest.approx(1.0)
        assert int(weights.argmax()) == 1 and int(weights.argmin()) == 3
    torch.testing.assert_close(inverse / inverse[3], torch.tensor([800 / n for n in counts]))
    ratio_inverse, ratio_effective = float(inverse[1] / inverse[3]), float(effective[1] / effective[3])
    assert ratio_inverse == pytest.approx(20.0) and 1.5 < ratio_effective < ratio_inverse  # flatter than 1/n
    expected = (1 - 0.999) / (1 - 0.999 ** torch.tensor(counts, dtype=torch.float64))
    torch.testing.assert_close(effective.double(), expected * 7 / expected.sum(), rtol=1e-5, atol=1e-6)


def test_class_weighted_loss_counts_the_rare_class_more() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])  # both predicted as class 0
    target = torch.tensor([0, 1])  # the second (class 1) is wrong
    plain = build_loss(Recipe())(logits, target)
    weighted = build_loss(Recipe(), torch.tensor([0.5, 2.0, 0.5]))(logits, target)
    assert float(weighted) > float(plain) + 0.5  # the misclassified rare sample dominates the weighted mean


def test_label_smoothing_penalises_confident_correct_predictions() -> None:
    logits, target = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])
    assert float(build_loss(Recipe())(logits, target)) < 1e-6
    smoothed = float(build_loss(Recipe(label_smoothing=0.1))(logits, target))
    assert smoothed == pytest.approx(0.1 * 2 / 3 * 20.0, rel=1e-3)  # the 2 wrong classes get 0.1/3 each


def test_loss_accepts_mixed_soft_targets() -> None:
    logits = torch.randn(4, 7)
    soft = 0.7 * F.one_hot(torch.tensor([0, 1, 2, 3]), 7).float() + 0.3 * F.one_hot(torch.tensor([4, 5, 6, 0]), 7)
    loss = build_loss(Recipe(label_smoothing=0.1), torch.ones(7))(logits, soft)
    assert loss.ndim == 0 and math.isfinite(float(loss))


# --- schedules --------------------------------------------------------------------------------------


def test_cosine_restarts_return_to_the_peak_lr() -> None:
    lrs = lr_curve(Recipe(scheduler="cosine_restarts", restart_cycles=3, lr=0.1), 30)
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.1)
    assert max(lrs[8:10]) < 0.01 and max(lrs[18:20]) < 0.01  # each cycle decays close to 0 first
    restarts = [i for i in range(1, 30) if lrs[i] > lrs[i - 1]]
    assert restarts == [10, 20]
    plain = lr_curve(Recipe(scheduler="cosine", lr=0.1), 30)
    assert all(b <= a for a, b in zip(plain, plain[1:], strict=False))  # no restart without the option


def test_swa_lr_takes_over_after_the_main_schedule() -> None:
    recipe = Recipe(scheduler="cosine", lr=0.1, epochs=4, swa_epochs=2, swa_lr=0.02)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    steps = 5
    swa_scheduler = build_swa_scheduler(recipe, optimizer, steps)
    scheduler = build_scheduler(recipe, optimizer, steps * train_script.scheduled_epochs(recipe))
    assert train_script.scheduled_epochs(recipe) == 2 and optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    lrs = []
    for step in range(4 * steps):
        optimizer.step()
        (swa_scheduler if step >= 2 * steps else scheduler).step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[2 * steps - 1] == pytest.approx(0.0, abs=1e-9)  # the main cosine ends first
    assert all(lr == pytest.approx(0.02) for lr in lrs[3 * steps - 1 :])  # then SWALR holds swa_lr
    assert 0.0 < lrs[2 * steps] < 0.02  # after annealing over one epoch
    assert build_swa_scheduler(Recipe(), optimizer, steps) is None


# --- weight averages --------------------------------------------------------------------------------


def small_model(seed: int = 0, **config: object) -> FerForImageClassification:
    torch.manual_seed(seed)
    return FerForImageClassification(FerConfig(image_size=32, **config))


def test_ema_follows_the_weights_and_batchnorm_buffers_at_its_decay() -> None:
    model = small_model()
    ema = build_ema(model, 0.75)
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


def test_swa_averages_snapshots_and_recomputes_batchnorm_statistics() -> None:
    model = small_model()
    swa = build_swa(model)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    swa.update_parameters(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)
    swa.update_parameters(model)
    second = model.state_dict()
    torch.testing.assert_close(swa.module.state_dict()["features.0.weight"],
                               (first["features.0.weight"] + second["features.0.weight"]) / 2)
    images = torch.randint(0, 256, (13, 1, 48, 48), dtype=torch.uint8)  # batches of 4, 4 and 4 + 1
    labels = torch.zeros(13, dtype=torch.long)
    accelerator = train_script.Accelerator(cpu=True)
    try:
        train_script.finish_swa(accelerator, swa, images, labels, swa.module.config, batch_size=4, channels_last=False)
    finally:
        AcceleratorState._reset_state(True)
    with torch.no_grad():  # the head's BatchNorm input, exactly what update_bn should average
        head = swa.module.head
        hidden = head.act(head.fc1(torch.flatten(swa.module.features(
            gray_to_pixel_values(images, swa.module.config)), 1)))
    batches = hidden.split([4, 4, 5])  # BatchNorm's statistics are per batch, then averaged over batches
    torch.testing.assert_close(head.norm.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(head.norm.running_var, torch.stack([b.var(0) for b in batches]).mean(0),
                               rtol=1e-4, atol=1e-5)


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


def test_optimizer_is_fused_only_on_cuda() -> None:
    model = small_model()
    for name in ("sgd", "adam", "adamw"):
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


def test_training_batches_are_views_of_chunks_in_epoch_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_script, "AUGMENT_CHUNK_IMAGES", 8)  # several chunks (of 2 batches each)
    images = torch.randint(0, 256, (23, 1, 48, 48), dtype=torch.uint8)
    labels = torch.arange(23) % 7
    batches = train_script.epoch_batches(23, 4, seed=0, epoch=1, process_index=0, num_processes=1)
    config = FerConfig(image_size=48)
    plain = list(training_batches(images, labels, batches, config))
    assert [len(p) for p, _ in plain] == [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]
    for (pixel_values, target), index in zip(plain, batches, strict=True):
        assert torch.equal(target, labels[index])
        torch.testing.assert_close(pixel_values, gray_to_pixel_values(images[index], config))
    augmented = list(training_batches(images, labels, batches, config, BatchAugment(),
                                      torch.Generator().manual_seed(3), channels_last=True))
    again = list(training_batches(images, labels, batches, config, BatchAugment(), torch.Generator().manual_seed(3),
                                  channels_last=True))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(augmented, again, strict=True))  # seeded
    assert not torch.allclose(augmented[0][0], plain[0][0])
    assert augmented[0][0].is_contiguous(memory_format=torch.channels_last)
    assert [torch.equal(a[1], p[1]) for a, p in zip(augmented, plain, strict=True)] == [True] * 6


# --- checkpoints ------------------------------------------------------------------------------------


def fake_checkpoint(output_dir: Path, epoch: int) -> Path:
    def save_state(folder: str) -> None:
        (Path(folder) / "model.safetensors").write_bytes(b"w" * 1000)
        (Path(folder) / "optimizer.bin").write_bytes(b"o" * 2000)

    (output_dir / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
    (output_dir / "model.safetensors").write_bytes(b"best" * 10)
    return save_checkpoint(output_dir, epoch, {"epoch": epoch, "recipe": {}}, save_state, ["model.safetensors"], keep=2)


def test_checkpoints_are_complete_or_invisible(tmp_path: Path) -> None:
    for epoch in (1, 2, 3):
        fake_checkpoint(tmp_path, epoch)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_2", "epoch_3"]  # keep=2
    assert verify_checkpoint(checkpoints / "epoch_3")["epoch"] == 3
    assert (checkpoints / "epoch_3" / "best_model" / "model.safetensors").read_bytes() == b"best" * 10
    # what a kill while saving epoch 4 leaves: a temporary folder, and (older train.py) a folder without manifest
    (checkpoints / ".epoch_4.tmp").mkdir()
    (checkpoints / ".epoch_4.tmp" / "model.safetensors").write_bytes(b"half")
    (checkpoints / "epoch_5").mkdir()
    assert find_checkpoint("latest", tmp_path).name == "epoch_3"
    with pytest.raises(CheckpointError, match=f"epoch_5: not a complete checkpoint \\(no {MANIFEST_FILE}"):
        find_checkpoint(str(checkpoints / "epoch_5"), tmp_path)
    fake_checkpoint(tmp_path, 4)  # the next save clears the leftover
    assert not (checkpoints / ".epoch_4.tmp").exists() and find_checkpoint("latest", tmp_path).name == "epoch_4"
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_checkpoint("latest", tmp_path / "elsewhere")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: f.write_bytes(f.read_bytes()[:500]), r"optimizer.bin has 500 bytes, the manifest says 2000 \(truncated"),
    (lambda f: f.write_bytes(b"x" * 2000), r"optimizer.bin does not match its SHA-256"),
    (lambda f: f.unlink(), r"optimizer.bin is missing"),
])
def test_damaged_checkpoint_files_are_named(tmp_path: Path, damage, message: str) -> None:
    checkpoint = fake_checkpoint(tmp_path, 1)
    damage(checkpoint / "optimizer.bin")
    with pytest.raises(CheckpointError, match=f"checkpoint {checkpoint} is damaged: {message}"):
        verify_checkpoint(checkpoint)
    assert json.loads((checkpoint / MANIFEST_FILE).read_text())["files"]["optimizer.bin"]["size"] == 2000
