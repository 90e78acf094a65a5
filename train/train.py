#!/usr/bin/env python
"""Train FER-VGG16 on FER2013 with Accelerate (in the style of accelerate's examples/cv_example.py).

    python train/train.py --config train/configs/best.yaml --dataset ../shared/fer2013 --output_dir outputs/best
    accelerate launch --multi_gpu --num_processes 4 train/train.py --config train/configs/best.yaml ...
    python train/train.py --cpu --no-pretrained --epochs 1 --max_train_samples 2000 ...

The recipe (hyper-parameters) comes from a preset YAML (`--config`) and any flag overrides it. The run:
data (decoded once to uint8 tensors, kept on the device) -> model -> epochs (batched on-device
augmentation, each process on its own shard; optional EMA of the weights; validation through
gather_for_metrics; the best-validation model saved with save_pretrained into --output_dir; accelerate
state under checkpoints/ for resuming, written atomically and verified before a resume) -> optional SWA
of the last epochs -> test of the best model (metrics.json, confusion_matrix.png) -> model card
(README.md) -> optional push. `--batch_size` is per process, as in accelerate's examples: N processes
train on N x batch_size per step.

The input path never waits for the host: the training images live on the device as uint8, one
permutation per epoch is copied there once, augmentation runs on large chunks of images at a time and
batches are views into them, and the loss is summed on the device (read once per epoch).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout (python train/train.py), no install needed

import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import TorchDynamoPlugin, set_seed  # noqa: E402
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import (  # noqa: E402
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_hard_restarts_schedule_with_warmup,
)

from fer_model import FerConfig, FerForImageClassification, FerImageProcessor  # noqa: E402
from fer_model.card import CONFUSION_MATRIX_PNG, render_model_card  # noqa: E402
from fer_model.data import load_fer2013, split_to_tensors  # noqa: E402
from fer_model.evaluation import (  # noqa: E402
    classification_report,
    confusion_matrix,
    plot_confusion_matrix,
    predict_logits,
)
from fer_model.image_processing import gray_to_pixel_values  # noqa: E402
from train.augment import BatchAugment, mix_batch  # noqa: E402
from train.checkpoints import (  # noqa: E402
    CheckpointError,
    find_checkpoint,
    replace_files,
    restore_best_model,
    save_checkpoint,
    verify_checkpoint,
)
from train.recipe import CLASS_WEIGHTS, COMPILE_MODES, Recipe, RunOptions, parse_args  # noqa: E402, F401 (re-exported)

PROJECT_NAME = "fer-vgg16"
PUSH_IGNORE_PATTERNS = ["checkpoints/*", "logs/*"]
# Images augmented per batched call. One call covers many steps (64 at batch 128), so the ~40 small
# augmentation kernels are launched once per chunk rather than once per step; 8192 faces at 96 px are
# under 1 GB of float32 pixel_values.
AUGMENT_CHUNK_IMAGES = 8192

# --- data -----------------------------------------------------------------------------------------


def subsample(split: Any, limit: int | None, seed: int) -> Any:
    """A seeded random subset of `limit` rows (all rows when limit is None)."""
    return split if limit is None or limit >= len(split) else split.shuffle(seed=seed).select(range(limit))


def shard_size(num_samples: int, num_processes: int) -> int:
    """Samples each process trains on per epoch: equal shards, the remainder (< num_processes) left out."""
    size = num_samples // num_processes
    if size < 2:
        raise ValueError(f"{num_samples} training samples cannot feed {num_processes} process(es) (need 2 each)")
    return size


def steps_per_epoch(shard: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one sample is dropped (BatchNorm needs two)."""
    steps = math.ceil(shard / batch_size)
    return steps - 1 if steps > 1 and shard % batch_size == 1 else steps


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, process_index: int,
                  num_processes: int) -> list[torch.Tensor]:
    """This process's batches (sample indices) for one epoch.

    One permutation per epoch, seeded by (seed, epoch) and so identical on every process, is cut into
    disjoint equal shards: each process sees its own samples and all take the same number of steps.
    Seeding by epoch makes a resumed run shuffle exactly as an uninterrupted one.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_samples, generator=generator)
    shard = shard_size(num_samples, num_processes)
    mine = order[process_index * shard : (process_index + 1) * shard]
    return list(mine.split(batch_size))[: steps_per_epoch(shard, batch_size)]


# --- model and optimisation ------------------------------------------------------------------------


def backbone_init(recipe: Recipe, options: RunOptions) -> bool | str:
    """What `pretrained_backbone` gets: ImageNet download (True), a local file, or nothing (False)."""
    if options.pretrained_weights:
        if not recipe.pretrained:
            raise ValueError("--pretrained_weights contradicts --no-pretrained (pretrained: false)")
        return options.pretrained_weights
    return recipe.pretrained


def build_accelerator(recipe: Recipe, cpu: bool = False, report_to: str = "none",
                      project_dir: str | None = None) -> Accelerator:
    """The run's Accelerator: precision, tracker and (optionally) torch.compile of the model in prepare()."""
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=recipe.mixed_precision,
        log_with=None if report_to == "none" else report_to,
        project_dir=project_dir,
        step_scheduler_with_optimizer=False,  # our schedules count this process's optimizer steps
        dynamo_plugin=TorchDynamoPlugin(backend="inductor", mode=recipe.compile_mode) if recipe.torch_compile else None,
    )
    if accelerator.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest convolutions
        torch.set_float32_matmul_precision("high")  # TF32 for whatever runs in float32
    return accelerator


def build_model(recipe: Recipe, label_names: list[str], pretrained_backbone: bool | str = False,
                device: torch.device | str = "cpu") -> FerForImageClassification:
    """The recipe's model on `device` (labels from the dataset); frozen layers only on top of ImageNet weights."""
    config = FerConfig(backbone=recipe.backbone, image_size=recipe.image_size, hidden_size=recipe.hidden_size,
                       head_dropout=recipe.head_dropout, freeze_until=recipe.freeze_until,
                       id2label=dict(enumerate(label_names)))
    model = FerForImageClassification(config, pretrained_backbone=pretrained_backbone)
    model.freeze_backbone(recipe.freeze_until)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if recipe.channels_last else model


def build_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD/Adam/AdamW over the trainable parameters; the fused CUDA kernels when the model is on a GPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if params and all(p.device.type == "cuda" for p in params) else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay,
                               **fused)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)


def scheduled_epochs(recipe: Recipe) -> int:
    """Epochs the main schedule spans: with swa_lr, the SWA epochs run after it at their own lr."""
    return recipe.epochs - recipe.swa_epochs if recipe.swa_lr is not None else recipe.epochs


def build_scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """Per-step schedule. One-cycle keeps the recipe's momentum constant (cycle_momentum=False)."""
    if recipe.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=total_steps, cycle_momentum=False,
            pct_start=0.3 if recipe.warmup_ratio is None else recipe.warmup_ratio)
    warmup_steps = int((recipe.warmup_ratio or 0.0) * total_steps)
    if recipe.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    if recipe.scheduler == "cosine_restarts":
        return get_cosine_with_hard_restarts_schedule_with_warmup(optimizer, warmup_steps, total_steps,
                                                                  num_cycles=recipe.restart_cycles)
    return get_constant_schedule_with_warmup(optimizer, warmup_steps)


def build_swa_scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> SWALR | None:
    """With swa_lr: torch's SWALR, moving the lr to swa_lr over the first SWA epoch (cosine), then constant."""
    if recipe.swa_lr is None:
        return None
    return SWALR(optimizer, swa_lr=recipe.swa_lr, anneal_epochs=steps_per_epoch, anneal_strategy="cos")


def class_weights(labels: torch.Tensor, num_classes: int, mode: str, beta: float | None = None) -> torch.Tensor | None:
    """Per-class loss weights from the training label counts, scaled to average 1 over the classes.

    inverse: 1 / count. effective: (1 - beta) / (1 - beta^count), the inverse "effective number of
    samples" of Cui et al. (CVPR 2019), which flattens the inverse-frequency extremes (FER2013's disgust
    is 16x rarer than happy; with beta 0.999 it is weighted about 2.8x, not 16x).
    """
    if mode == "none":
        return None
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double().clamp_min(1)
    if mode == "inverse":
        weights = 1.0 / counts
    elif mode == "effective":
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    else:
        raise ValueError(f"class_weights={mode!r} is not one of {list(CLASS_WEIGHTS)}")
    return (weights * num_classes / weights.sum()).float()


def build_loss(recipe: Recipe, weights: torch.Tensor | None = None) -> Callable[..., torch.Tensor]:
    """Cross-entropy with the recipe's label smoothing and class weights; targets are labels or (N, C) probabilities."""
    return partial(F.cross_entropy, weight=weights, label_smoothing=recipe.label_smoothing)


class EMAModel(AveragedModel):
    """torch's AveragedModel with the EMA update (get_ema_multi_avg_fn) over weights and BatchNorm buffers.

    Its own update_parameters avoids the two host-device syncs per step of the stock one (it tests and
    moves the device-side `n_averaged`): here `n_averaged` stays on the CPU, the float tensors go through
    the library's multi-tensor EMA function, and integer buffers (BatchNorm's step counter) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [t.detach() for t in (*model.parameters(), *model.buffers())]
        first = int(self.n_averaged) == 0  # the first update copies, as AveragedModel's does
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point() and not first]
        if floats:
            self.multi_avg_fn([a for a, _ in floats], [c for _, c in floats], self.n_averaged)
        for a, c in zip(averaged, current, strict=True):
            if first or not a.is_floating_point():
                a.copy_(c)
        self.n_averaged += 1


def build_ema(model: torch.nn.Module, decay: float) -> EMAModel:
    """EMA of the weights and of the BatchNorm buffers (timm's convention), on the model's device."""
    return EMAModel(model, decay)


def build_swa(model: torch.nn.Module) -> AveragedModel:
    """Equal-weight average of the weights (SWA); BatchNorm statistics are recomputed at the end (update_bn)."""
    return AveragedModel(model)


# --- the loop ---------------------------------------------------------------------------------------


def training_batches(
    images: torch.Tensor, labels: torch.Tensor, batches: list[torch.Tensor], config: FerConfig,
    augment: BatchAugment | None = None, generator: torch.Generator | None = None, channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(pixel_values, labels) per batch of sample indices, ready for the model, all on the images' device.

    The indices go to the device once per epoch; images are gathered, augmented and normalised
    AUGMENT_CHUNK_IMAGES at a time, and each batch is a view into its chunk, so a step launches no
    input-side kernels at all. Augmentation is per image, so chunking does not change what it does.
    """
    if not batches:
        return
    sizes = [len(batch) for batch in batches]
    order = torch.cat(batches).to(images.device, non_blocking=True)
    per_chunk = max(1, AUGMENT_CHUNK_IMAGES // max(sizes))
    start = 0
    for first in range(0, len(sizes), per_chunk):
        chunk_sizes = sizes[first : first + per_chunk]
        index = order[start : start + sum(chunk_sizes)]
        start += sum(chunk_sizes)
        gray = images[index].float().div_(255.0)
        if augment is not None:
            gray = augment(gray, generator)
        pixel_values = gray_to_pixel_values(gray, config, channels_last)
        yield from zip(pixel_values.split(chunk_sizes), labels[index].split(chunk_sizes), strict=True)


def training_step(
    accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, scheduler: Any, pixel_values: torch.Tensor,
    target: torch.Tensor, loss_fn: Callable[..., torch.Tensor],
) -> torch.Tensor:
    """One optimisation step. Returns the loss detached, still on the device (nothing here waits for it)."""
    logits = model(pixel_values=pixel_values).logits
    loss = loss_fn(logits.float(), target)
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def train_one_epoch(
    accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, scheduler: Any, recipe: Recipe,
    config: FerConfig, images: torch.Tensor, labels: torch.Tensor, epoch: int, augment: BatchAugment | None,
    loss_fn: Callable[..., torch.Tensor], ema: EMAModel | None = None, raw_model: torch.nn.Module | None = None,
) -> tuple[float, float]:
    """One epoch on this process's shard. Returns (mean train loss over all processes, images/s)."""
    model.train()
    set_seed(recipe.seed + epoch, device_specific=True)  # dropout: same draws whether resumed or not
    generator = torch.Generator(device=images.device).manual_seed(
        recipe.seed * 100_003 + epoch * 1_009 + accelerator.process_index)
    rng = np.random.default_rng([recipe.seed, epoch, accelerator.process_index])
    batches = epoch_batches(len(labels), recipe.batch_size, recipe.seed, epoch, accelerator.process_index,
                            accelerator.num_processes)
    mixing = recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0
    loss_sum = torch.zeros((), device=accelerator.device)
    start = time.perf_counter()
    inputs = training_batches(images, labels, batches, config, augment, generator, recipe.channels_last)
    for pixel_values, target in tqdm(inputs, total=len(batches), desc=f"epoch {epoch}", leave=False,
                                     disable=not accelerator.is_local_main_process):
        if mixing:
            soft_target = F.one_hot(target, config.num_labels).float()
            pixel_values, target = mix_batch(pixel_values, soft_target, rng, recipe.mixup_alpha, recipe.cutmix_alpha,
                                             generator)
        loss = training_step(accelerator, model, optimizer, scheduler, pixel_values, target, loss_fn)
        loss_sum += loss * len(pixel_values)
        if ema is not None:
            ema.update_parameters(raw_model)
    seen = torch.tensor(float(sum(len(b) for b in batches)), device=loss_sum.device)
    total_loss, total_seen = accelerator.reduce(torch.stack([loss_sum, seen]), "sum").tolist()  # waits for the device
    return total_loss / total_seen, total_seen / (time.perf_counter() - start)


@torch.no_grad()
def evaluate(
    accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, config: FerConfig, tta: str = "none",
    channels_last: bool = False,
) -> tuple[dict[str, Any], float]:
    """Metrics over a prepared loader; gather_for_metrics counts every sample exactly once."""
    model.eval()
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    confusion = torch.zeros(config.num_labels, config.num_labels, dtype=torch.long)
    loss_sum = 0.0
    for images, labels in loader:
        with accelerator.autocast():
            logits = predict_logits(lambda x: model(pixel_values=x).logits, images, config, tta, channels_last)
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        predictions, labels, losses = accelerator.gather_for_metrics((logits.argmax(-1), labels, losses))
        confusion += confusion_matrix(labels, predictions, config.num_labels)
        loss_sum += float(losses.sum())
    report = classification_report(confusion, label_names)
    return report, loss_sum / max(report["num_samples"], 1)


@torch.no_grad()
def finish_swa(accelerator: Accelerator, swa: AveragedModel, images: torch.Tensor, labels: torch.Tensor,
               config: FerConfig, batch_size: int, channels_last: bool) -> None:
    """Recompute the averaged model's BatchNorm statistics over the whole (unaugmented) training set.

    Every process uses all training images, so the processes end with identical SWA models. A last batch
    of one face joins the one before (BatchNorm cannot take statistics of a single sample).
    """
    batches = list(torch.arange(len(labels)).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    with accelerator.autocast():
        update_bn(training_batches(images, labels, batches, config, channels_last=channels_last), swa)


def save_best_model(accelerator: Accelerator, model: torch.nn.Module, output_dir: Path) -> list[str]:
    """The seed's ModelCheckpoint: the best-validation model in save_pretrained format, on the main process.

    Written to a temporary folder first, then each file is moved in with os.replace, so a kill while
    saving never leaves a half-written model.safetensors. Returns the file names.
    """
    accelerator.wait_for_everyone()
    names: list[str] = []
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)
        staging_root = output_dir / "checkpoints"  # same filesystem (os.replace), never pushed
        staging_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=staging_root, prefix=".best-") as staging:
            unwrapped.save_pretrained(staging)
            FerImageProcessor.from_model_config(unwrapped.config).save_pretrained(staging)
            names = replace_files(Path(staging), output_dir)
    return names


def tracker_config(recipe: Recipe, options: RunOptions) -> dict[str, Any]:
    """TensorBoard hparams accept only scalars and strings."""
    values = {**asdict(recipe), "dataset": options.dataset}
    return {k: ("none" if v is None else v) for k, v in values.items()}


def command_line(argv: list[str], num_processes: int) -> str:
    launcher = "python" if num_processes == 1 else f"accelerate launch --multi_gpu --num_processes {num_processes}"
    return f"{launcher} train/train.py {shlex.join(argv)}".strip()


def push_to_hub(folder: Path, repo_id: str, private: bool) -> str:
    """Create the repo if missing, then upload the model folder once (checkpoints and logs left out)."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=PUSH_IGNORE_PATTERNS,
                      commit_message="Upload FER-VGG16 trained with train/train.py")
    return repo_id


def resume_state(spec: str, output_dir: Path, recipe: Recipe) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume from, verified file by file, and its trainer state (same recipe required)."""
    checkpoint = find_checkpoint(spec, output_dir)
    state = verify_checkpoint(checkpoint)
    changed = sorted(k for k in set(state["recipe"]) | set(asdict(recipe))
                     if asdict(recipe).get(k) != state["recipe"].get(k))
    if changed:
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: the recipe differs from the checkpoint's in "
                         f"{changed}; resume with the same preset and flags")
    return checkpoint, state


def training_function(recipe: Recipe, options: RunOptions, argv: list[str]) -> dict[str, Any]:
    run_start = time.perf_counter()
    output_dir = Path(options.output_dir)
    if options.checkpoint_every < 1:
        raise ValueError(f"--checkpoint_every {options.checkpoint_every}: must be >= 1 (epochs)")
    ignored_freeze = recipe.freeze_until if recipe.freeze_until and not recipe.pretrained else None
    if ignored_freeze:  # freezing only makes sense on top of ImageNet weights
        recipe = replace(recipe, freeze_until=None)
    # A bad checkpoint or a changed recipe fails here, before any data is loaded.
    checkpoint, resumed = (resume_state(options.resume_from_checkpoint, output_dir, recipe)
                           if options.resume_from_checkpoint else (None, None))
    accelerator = build_accelerator(recipe, options.cpu, options.report_to, str(output_dir / "logs"))
    if ignored_freeze:
        accelerator.print(f"note: freeze_until={ignored_freeze} ignored: training from scratch (--no-pretrained)")
    set_seed(recipe.seed)
    if not accelerator.is_local_main_process:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()

    # Data: every split decoded once to uint8 tensors; train stays on the device for the whole run.
    with accelerator.main_process_first():
        data = load_fer2013(options.dataset, image_column=options.image_column, label_column=options.label_column,
                            skip_bad_rows=options.skip_bad_rows)
    label_names = data["train"].features["label"].names
    train_images, train_labels = split_to_tensors(subsample(data["train"], options.max_train_samples, recipe.seed))
    val_images, val_labels = split_to_tensors(subsample(data["validation"], options.max_eval_samples, recipe.seed))
    test_images, test_labels = split_to_tensors(subsample(data["test"], options.max_eval_samples, recipe.seed))
    train_images, train_labels = train_images.to(accelerator.device), train_labels.to(accelerator.device)

    # Model (on the device before the optimizer, which may then use fused kernels), loss, averages.
    with accelerator.main_process_first():  # one ImageNet download, then the others read the cache
        model = build_model(recipe, label_names, backbone_init(recipe, options), accelerator.device)
    config = model.config
    weights = class_weights(train_labels, config.num_labels, recipe.class_weights, recipe.class_weights_beta)
    loss_fn = build_loss(recipe, None if weights is None else weights.to(accelerator.device))
    shard = shard_size(len(train_labels), accelerator.num_processes)
    steps = steps_per_epoch(shard, recipe.batch_size)
    optimizer = build_optimizer(recipe, model)
    swa_scheduler = build_swa_scheduler(recipe, optimizer, steps)  # before the main one, which then sets the lr
    scheduler = build_scheduler(recipe, optimizer, steps * scheduled_epochs(recipe))
    raw_model = model  # the averages follow the plain module, whatever prepare() wraps around it
    ema = build_ema(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    swa = build_swa(model) if recipe.swa_epochs else None
    val_loader = DataLoader(TensorDataset(val_images, val_labels), batch_size=options.eval_batch_size)
    test_loader = DataLoader(TensorDataset(test_images, test_labels), batch_size=options.eval_batch_size)
    model, optimizer, val_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, val_loader, test_loader, scheduler)
    if swa_scheduler is not None:
        swa_scheduler = accelerator.prepare_scheduler(swa_scheduler)
    accelerator.register_for_checkpointing(*[average for average in (ema, swa) if average is not None])
    accelerator.print(
        f"num_processes={accelerator.num_processes} device={accelerator.device} "
        f"mixed_precision={recipe.mixed_precision} "
        f"train={len(train_labels)} validation={len(val_labels)} test={len(test_labels)} "
        f"batch_size={recipe.batch_size}x{accelerator.num_processes} steps_per_epoch={steps}")

    state: dict[str, Any] = {"epoch": 0, "best_accuracy": -1.0, "best_epoch": 0, "best_model": None,
                             "best_model_files": [], "history": [], "recipe": asdict(recipe)}
    if checkpoint is not None:
        state = resumed
        try:
            accelerator.load_state(str(checkpoint))
        except Exception as error:  # verified files that still do not load: say which checkpoint, not just why
            raise CheckpointError(f"checkpoint {checkpoint} could not be loaded ({type(error).__name__}: {error}); "
                                  "it was written by another version of train.py or for another model") from error
        if accelerator.is_main_process:
            restore_best_model(checkpoint, output_dir)
        accelerator.print(f"resumed from {checkpoint} (epoch {state['epoch']}, best val {state['best_accuracy']:.4f})")
    if options.report_to != "none":
        accelerator.init_trackers(PROJECT_NAME, config=tracker_config(recipe, options))
    augment = BatchAugment(recipe.rotation, recipe.scale, recipe.translate, recipe.hflip, recipe.erasing_p,
                           recipe.erasing_size) if recipe.augment else None

    def keep_if_best(candidate: torch.nn.Module, accuracy: float, epoch: int, name: str) -> bool:
        if accuracy <= state["best_accuracy"]:
            return False
        files = save_best_model(accelerator, candidate, output_dir)
        state.update(best_accuracy=accuracy, best_epoch=epoch, best_model=name, best_model_files=files)
        return True

    for epoch in range(state["epoch"] + 1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        swa_phase = swa is not None and epoch > recipe.epochs - recipe.swa_epochs
        epoch_scheduler = swa_scheduler if swa_phase and swa_scheduler is not None else scheduler
        train_loss, images_per_second = train_one_epoch(
            accelerator, model, optimizer, epoch_scheduler, recipe, config, train_images, train_labels, epoch,
            augment, loss_fn, ema, raw_model)
        train_time = time.perf_counter() - epoch_start
        if swa_phase:
            swa.update_parameters(raw_model)
        val, val_loss = evaluate(accelerator, model, val_loader, config, channels_last=recipe.channels_last)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val["accuracy"],
                  "val_macro_f1": val["macro_f1"], "val_samples": val["num_samples"]}
        candidate, name = model, "model"
        if ema is not None:  # the EMA model is the candidate; the raw model's figures stay in the history
            val, val_loss = evaluate(accelerator, ema.module, val_loader, config, channels_last=recipe.channels_last)
            record.update(val_accuracy_model=record["val_accuracy"], val_loss=val_loss,
                          val_accuracy=val["accuracy"], val_macro_f1=val["macro_f1"])
            candidate, name = ema.module, "ema"
        improved = keep_if_best(candidate, val["accuracy"], epoch, name)
        record.update(lr=epoch_scheduler.get_last_lr()[0], images_per_second=images_per_second,
                      train_time_s=train_time)
        state["history"].append(record)
        state["epoch"] = epoch
        stopping = options.stop_after_epoch is not None and options.stop_after_epoch <= epoch < recipe.epochs
        if epoch % options.checkpoint_every == 0 or epoch == recipe.epochs or stopping:
            save_checkpoint(output_dir, epoch, state, accelerator.save_state, state["best_model_files"],
                            options.checkpoints_total_limit, accelerator.is_main_process,
                            accelerator.wait_for_everyone)
        accelerator.log({"train/loss": train_loss, "val/loss": val_loss, "val/accuracy": val["accuracy"],
                         "val/macro_f1": val["macro_f1"], "lr": record["lr"],
                         "images_per_second": images_per_second}, step=epoch)
        accelerator.print(f"epoch {epoch}/{recipe.epochs}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} "
                          f"val_accuracy {val['accuracy']:.4f}"
                          + (f" (model {record['val_accuracy_model']:.4f})" if ema is not None else "")
                          + f" {images_per_second:.0f} images/s{' (best, saved)' if improved else ''}")
        if stopping:
            accelerator.print(f"stopped after epoch {epoch} (--stop_after_epoch); continue with "
                              "--resume_from_checkpoint latest")
            accelerator.end_training()
            return {"stopped_after_epoch": epoch, "state": state}

    if swa is not None:  # after the last checkpoint, so a resumed run gets here the same way
        finish_swa(accelerator, swa, train_images, train_labels, config, options.eval_batch_size,
                   recipe.channels_last)
        swa_val, _ = evaluate(accelerator, swa.module, val_loader, config, channels_last=recipe.channels_last)
        improved = keep_if_best(swa.module, swa_val["accuracy"], recipe.epochs, "swa")
        state["swa"] = {"val_accuracy": swa_val["accuracy"], "val_macro_f1": swa_val["macro_f1"],
                        "epochs_averaged": int(swa.n_averaged)}
        accelerator.print(f"SWA of the last {int(swa.n_averaged)} epoch(s): val_accuracy {swa_val['accuracy']:.4f}"
                          f"{' (best, saved)' if improved else ''}")

    # Test: reload the best checkpoint from disk (exactly what gets published) and evaluate it.
    accelerator.wait_for_everyone()
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"no best model in {output_dir}: was the run resumed into another --output_dir?")
    best = FerForImageClassification.from_pretrained(output_dir).to(accelerator.device)
    if recipe.channels_last:
        best = best.to(memory_format=torch.channels_last)
    test, _ = evaluate(accelerator, best, test_loader, config, channels_last=recipe.channels_last)
    tta_results = {}
    if recipe.tta != "none":  # validation figures too, so the TTA choice can be made on validation
        tta_report, _ = evaluate(accelerator, best, test_loader, config, tta=recipe.tta,
                                 channels_last=recipe.channels_last)
        tta_val, _ = evaluate(accelerator, best, val_loader, config, tta=recipe.tta, channels_last=recipe.channels_last)
        tta_results[recipe.tta] = {**{k: tta_report[k] for k in ("accuracy", "macro_f1", "per_class")},
                                   "validation_accuracy": tta_val["accuracy"]}
    history = state["history"]
    speeds = [h["images_per_second"] for h in history]
    metrics = {
        "split": "test",
        **test,
        "tta": tta_results,
        "validation": {"best_accuracy": state["best_accuracy"], "best_epoch": state["best_epoch"],
                       "best_model": state["best_model"], "history": history,
                       **({"swa": state["swa"]} if "swa" in state else {})},
        "training": {
            "epochs_completed": state["epoch"], "num_processes": accelerator.num_processes,
            "device": accelerator.device.type, "mixed_precision": recipe.mixed_precision,
            "train_samples": len(train_labels), "validation_samples": len(val_labels), "test_samples": len(test_labels),
            "images_per_second": float(np.mean(speeds)), "images_per_second_median": float(np.median(speeds)),
            "train_time_s": float(sum(h["train_time_s"] for h in history)),
            "wall_time_s": time.perf_counter() - run_start,  # this process only: a resumed run counts from the resume
            "class_weights": None if weights is None else dict(zip(label_names, weights.tolist(), strict=True)),
        },
    }
    accelerator.log({"test/accuracy": test["accuracy"], "test/macro_f1": test["macro_f1"]}, step=state["epoch"])
    accelerator.print(f"test: accuracy {test['accuracy']:.4f} macro_f1 {test['macro_f1']:.4f} "
                      f"({test['num_samples']} samples)"
                      + "".join(f", {m} TTA accuracy {r['accuracy']:.4f}" for m, r in tta_results.items()))
    if accelerator.is_main_process:
        write_model_folder(output_dir, metrics, recipe, options, argv, accelerator.num_processes)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def write_model_folder(output_dir: Path, metrics: dict[str, Any], recipe: Recipe, options: RunOptions,
                       argv: list[str], num_processes: int) -> None:
    """metrics.json, confusion matrix, resolved recipe and the model card beside the best model; then push."""
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], output_dir / CONFUSION_MATRIX_PNG)
    (output_dir / "train_config.yaml").write_text(yaml.safe_dump(asdict(recipe), sort_keys=False))
    repo_id = options.hub_model_id or output_dir.resolve().name
    card = render_model_card(metrics, model_name=repo_id, dataset=options.dataset,
                             command=command_line(argv, num_processes), recipe=asdict(recipe), preset=options.config)
    card.save(output_dir / "README.md")
    print(f"model, metrics.json and model card written to {output_dir}")
    if options.push_to_hub:
        pushed = push_to_hub(output_dir, repo_id, options.hub_private)
        print(f"pushed {output_dir} to https://huggingface.co/{pushed}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, options = parse_args(argv, description=__doc__)
    return training_function(recipe, options, argv)


if __name__ == "__main__":
    main()
