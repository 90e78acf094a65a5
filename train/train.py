#!/usr/bin/env python
"""Train FER-VGG16 on FER2013 with Accelerate (in the style of accelerate's examples/cv_example.py).

    python train/train.py --config train/configs/best.yaml --dataset ../shared/fer2013 --output_dir outputs/best
    accelerate launch --multi_gpu --num_processes 4 train/train.py --config train/configs/best.yaml ...
    python train/train.py --cpu --no-pretrained --epochs 1 --max_train_samples 2000 ...

The recipe (hyper-parameters) comes from a preset YAML (`--config`) and any flag overrides it. The run:
data (decoded once to uint8 tensors, kept on the device) -> model -> epochs (batched on-device
augmentation, each process on its own shard; validation through gather_for_metrics; the best-validation
model saved with save_pretrained into --output_dir; accelerate state under checkpoints/ for resuming)
-> test of the best model (metrics.json, confusion_matrix.png) -> model card (README.md) -> optional push.
`--batch_size` is per process, as in accelerate's examples: N processes train on N x batch_size per step.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout (python train/train.py), no install needed

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field, fields, replace  # noqa: E402
from typing import Any, Literal  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import (  # noqa: E402
    HfArgumentParser,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
)

from fer_model import FerConfig, FerForImageClassification, FerImageProcessor  # noqa: E402
from fer_model.card import CONFUSION_MATRIX_PNG, render_model_card  # noqa: E402
from fer_model.configuration import SUPPORTED_BACKBONES  # noqa: E402
from fer_model.data import DEFAULT_DATASET, load_fer2013, split_to_tensors  # noqa: E402
from fer_model.evaluation import (  # noqa: E402
    classification_report,
    confusion_matrix,
    gray_to_pixel_values,
    plot_confusion_matrix,
    predict_logits,
)
from fer_model.tta import TTA_MODES  # noqa: E402
from train.augment import BatchAugment, mix_batch  # noqa: E402

PROJECT_NAME = "fer-vgg16"
PUSH_IGNORE_PATTERNS = ["checkpoints/*", "logs/*"]
STATE_FILE = "trainer_state.json"


@dataclass
class Recipe:
    """Hyper-parameters: what a preset YAML holds. Every field is also a command-line flag.

    The defaults are the seed's recipe (train/configs/seed.yaml). Options that are not implemented
    are rejected, never silently ignored.
    """

    # model
    backbone: str = field(default="vgg16", metadata={"help": "timm VGG variant",
                                                      "choices": sorted(SUPPORTED_BACKBONES)})
    image_size: int = field(default=48, metadata={"help": "input side; faces are resized on the device"})
    hidden_size: int = field(default=32, metadata={"help": "width of the head's hidden layer"})
    head_dropout: float = field(default=0.0, metadata={"help": "dropout before the last linear layer"})
    pretrained: bool = field(default=True, metadata={
        "help": "ImageNet init (timm vgg16.tv_in1k); --no-pretrained: from scratch"})
    freeze_until: str | None = field(default="block4_conv1", metadata={
        "help": "freeze conv layers before this Keras layer name when fine-tuning from ImageNet (none: train all)"})
    # optimisation
    optimizer: Literal["adam", "adamw", "sgd"] = field(default="adam", metadata={"help": "sgd uses momentum/nesterov"})
    lr: float = field(default=1e-4, metadata={"help": "(peak) learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum for SGD"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 (adam, sgd) or decoupled (adamw) weight decay"})
    scheduler: Literal["none", "onecycle", "cosine"] = field(default="none", metadata={
        "help": "learning-rate schedule, stepped every optimizer step"})
    warmup_ratio: float | None = field(default=None, metadata={
        "help": "fraction of steps warming up (default: onecycle 0.3, others 0)"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    batch_size: int = field(default=512, metadata={"help": "per process"})
    epochs: int = field(default=20, metadata={"help": "training epochs"})
    seed: int = field(default=42, metadata={"help": "seeds init, shuffling, augmentation, dropout"})
    # augmentation (batched, on the device)
    augment: bool = field(default=False, metadata={"help": "random affine + flip + erasing"})
    rotation: float = field(default=10.0, metadata={"help": "max rotation, degrees"})
    scale: float = field(default=0.1, metadata={"help": "max zoom in/out, fraction"})
    translate: float = field(default=0.1, metadata={"help": "max shift, fraction of the side"})
    hflip: bool = field(default=True, metadata={"help": "random horizontal flip"})
    erasing_p: float = field(default=0.5, metadata={"help": "probability of random erasing per image"})
    erasing_size: int = field(default=16, metadata={"help": "side of the erased square, pixels (of 48)"})
    mixup_alpha: float = field(default=0.0, metadata={"help": "MixUp Beta(alpha, alpha); 0 = off"})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 = off"})
    ema_decay: float | None = field(default=None, metadata={"help": "weight EMA (not implemented yet: must be unset)"})
    # runtime
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="no", metadata={"help": "autocast precision"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    channels_last: bool = field(default=False, metadata={"help": "NHWC memory format (faster convs on GPUs)"})
    tta: str = field(default="none", metadata={"help": "extra test evaluation with test-time augmentation",
                                               "choices": list(TTA_MODES)})

    def __post_init__(self) -> None:
        if isinstance(self.freeze_until, str) and self.freeze_until.lower() in ("none", "null", ""):
            self.freeze_until = None
        for name, choices in (("backbone", SUPPORTED_BACKBONES), ("optimizer", ("adam", "adamw", "sgd")),
                              ("scheduler", ("none", "onecycle", "cosine")),
                              ("mixed_precision", ("no", "fp16", "bf16")), ("tta", TTA_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(choices)}")
        checks = {
            "lr": self.lr > 0, "batch_size": self.batch_size >= 2, "epochs": self.epochs >= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1, "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0, "rotation": 0 <= self.rotation <= 180,
            "scale": 0 <= self.scale < 1, "translate": 0 <= self.translate < 1, "erasing_p": 0 <= self.erasing_p <= 1,
            "erasing_size": self.erasing_size >= 0, "mixup_alpha": self.mixup_alpha >= 0,
            "cutmix_alpha": self.cutmix_alpha >= 0, "head_dropout": 0 <= self.head_dropout < 1,
            "warmup_ratio": self.warmup_ratio is None or 0 <= self.warmup_ratio < 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid recipe value(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        if self.scheduler == "onecycle" and self.warmup_ratio == 0:
            raise ValueError("scheduler=onecycle needs warmup_ratio > 0 (its rising phase), or leave it unset (0.3)")
        if self.ema_decay is not None:
            raise ValueError("ema_decay: weight EMA is not implemented yet; remove it from the preset/command line")


@dataclass
class RunOptions:
    """Where the data comes from and where the run goes: command-line only, never in a preset."""

    config: str | None = field(default=None, metadata={
        "help": "preset YAML (train/configs/NAME.yaml); flags override it"})
    dataset: str = field(default=DEFAULT_DATASET, metadata={
        "help": "Hub id, Hub-style folder, fer2013.csv or Kaggle image folder (see fer_model.data)"})
    image_column: str | None = field(default=None, metadata={"help": "image column, if not detected"})
    label_column: str | None = field(default=None, metadata={"help": "label column, if not detected"})
    skip_bad_rows: bool = field(default=False, metadata={"help": "drop (and count) bad rows instead of failing"})
    output_dir: str = field(default="outputs/fer-vgg16", metadata={"help": "model folder, metrics, card, checkpoints/"})
    pretrained_weights: str | None = field(default=None, metadata={
        "help": "local ImageNet VGG16 state dict (.safetensors/.pth) instead of downloading it"})
    max_train_samples: int | None = field(default=None, metadata={"help": "random subset of train (quick runs)"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "random subset of validation and test"})
    eval_batch_size: int = field(default=256, metadata={"help": "per process"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "a checkpoints/epoch_N folder, or 'latest' (in --output_dir)"})
    stop_after_epoch: int | None = field(default=None, metadata={
        "help": "stop once this epoch is done (its checkpoint kept), as an interrupted run would"})
    checkpoints_total_limit: int = field(default=1, metadata={"help": "resume checkpoints kept (newest)"})
    report_to: Literal["none", "tensorboard"] = field(default="none", metadata={
        "help": "experiment tracker (logs under OUTPUT_DIR/logs)"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload the model folder to the Hub at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "repo id (default: the output folder's name)"})
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})


def parse_args(argv: list[str] | None = None) -> tuple[Recipe, RunOptions]:
    """Preset YAML values become the parser's defaults, so any flag given on the command line wins."""
    preset_parser = argparse.ArgumentParser(add_help=False)
    preset_parser.add_argument("--config")
    config_path = preset_parser.parse_known_args(argv)[0].config
    parser = HfArgumentParser((Recipe, RunOptions), description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    # HfArgumentParser adds --no_X (and, depending on the transformers version, --no-X) for True defaults
    # only; a preset may turn any switch on, so every boolean gets both spellings.
    for spec in fields(Recipe):
        if spec.type in (bool, "bool"):
            for option in (f"--no_{spec.name}", f"--no-{spec.name.replace('_', '-')}"):
                with contextlib.suppress(argparse.ArgumentError):  # already defined by HfArgumentParser
                    parser.add_argument(option, action="store_false", dest=spec.name, help=f"turn {spec.name} off")
    if config_path:
        parser.set_defaults(**load_preset(config_path))
    recipe, options = parser.parse_args_into_dataclasses(args=argv)
    return recipe, options


def load_preset(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        presets = sorted(p.name for p in (REPO_ROOT / "train" / "configs").glob("*.yaml"))
        raise FileNotFoundError(f"preset {path} not found (presets in train/configs: {presets})")
    values = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(Recipe)}
    if not isinstance(values, dict) or set(values) - known:
        unknown = sorted(set(values) - known) if isinstance(values, dict) else values
        raise ValueError(f"{path}: unknown option(s) {unknown}; a preset sets recipe fields only: {sorted(known)}")
    return values


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


def build_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def build_scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """Per-step schedule. One-cycle keeps the recipe's momentum constant (cycle_momentum=False)."""
    if recipe.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=total_steps, cycle_momentum=False,
            pct_start=0.3 if recipe.warmup_ratio is None else recipe.warmup_ratio)
    warmup_steps = int((recipe.warmup_ratio or 0.0) * total_steps)
    if recipe.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return get_constant_schedule_with_warmup(optimizer, warmup_steps)


# --- the loop ---------------------------------------------------------------------------------------


def train_one_epoch(
    accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, scheduler: Any, recipe: Recipe,
    config: FerConfig, images: torch.Tensor, labels: torch.Tensor, epoch: int, augment: BatchAugment | None,
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
    seen = 0
    start = time.perf_counter()
    for index in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not accelerator.is_local_main_process):
        index = index.to(images.device)
        gray, target = images[index].float() / 255.0, labels[index]
        if augment is not None:
            gray = augment(gray, generator)
        soft_target = F.one_hot(target, config.num_labels).float()
        if mixing:
            gray, soft_target = mix_batch(gray, soft_target, rng, recipe.mixup_alpha, recipe.cutmix_alpha, generator)
        logits = model(pixel_values=gray_to_pixel_values(gray, config, recipe.channels_last)).logits
        loss = F.cross_entropy(logits.float(), soft_target if mixing else target,
                               label_smoothing=recipe.label_smoothing)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach() * len(index)
        seen += len(index)
    totals = accelerator.reduce(torch.stack([loss_sum, torch.tensor(float(seen), device=loss_sum.device)]), "sum")
    elapsed = time.perf_counter() - start
    return float(totals[0] / totals[1]), float(totals[1]) / elapsed


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


def save_best_model(accelerator: Accelerator, model: torch.nn.Module, output_dir: Path) -> None:
    """The seed's ModelCheckpoint: the best-validation model, in save_pretrained format, on the main process."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)
        unwrapped.save_pretrained(output_dir)
        FerImageProcessor.from_model_config(unwrapped.config).save_pretrained(output_dir)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, epoch: int, state: dict[str, Any], keep: int) -> Path:
    """Accelerate state (model, optimizer, scheduler, RNG) + trainer_state.json; keep the newest `keep`."""
    path = output_dir / "checkpoints" / f"epoch_{epoch}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / STATE_FILE).write_text(json.dumps(state, indent=2))
        for old in sorted(checkpoint_dirs(output_dir), key=checkpoint_epoch)[: -max(keep, 1)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return path


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    return [p for p in (output_dir / "checkpoints").glob("epoch_*") if (p / STATE_FILE).is_file()]


def checkpoint_epoch(path: Path) -> int:
    return int(path.name.removeprefix("epoch_"))


def find_checkpoint(spec: str, output_dir: Path) -> Path:
    if spec == "latest":
        found = checkpoint_dirs(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no checkpoint in {output_dir / 'checkpoints'}")
        return max(found, key=checkpoint_epoch)
    path = Path(spec)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {spec}: not a checkpoint folder (no {STATE_FILE})")
    return path


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


def training_function(recipe: Recipe, options: RunOptions, argv: list[str]) -> dict[str, Any]:
    output_dir = Path(options.output_dir)
    accelerator = Accelerator(
        cpu=options.cpu,
        mixed_precision=recipe.mixed_precision,
        log_with=None if options.report_to == "none" else options.report_to,
        project_dir=str(output_dir / "logs"),
        step_scheduler_with_optimizer=False,  # our schedules count this process's optimizer steps
        dynamo_backend="inductor" if recipe.torch_compile else None,
    )
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

    # Model: labels from the dataset; freezing only makes sense on top of ImageNet weights.
    if recipe.freeze_until and not recipe.pretrained:
        accelerator.print(f"note: freeze_until={recipe.freeze_until} ignored: training from scratch (--no-pretrained)")
        recipe = replace(recipe, freeze_until=None)
    config = FerConfig(backbone=recipe.backbone, image_size=recipe.image_size, hidden_size=recipe.hidden_size,
                       head_dropout=recipe.head_dropout, freeze_until=recipe.freeze_until,
                       id2label=dict(enumerate(label_names)))
    with accelerator.main_process_first():  # one ImageNet download, then the others read the cache
        model = FerForImageClassification(config, pretrained_backbone=backbone_init(recipe, options))
    model.freeze_backbone(recipe.freeze_until)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)

    shard = shard_size(len(train_labels), accelerator.num_processes)
    steps = steps_per_epoch(shard, recipe.batch_size)
    optimizer = build_optimizer(recipe, model)
    scheduler = build_scheduler(recipe, optimizer, steps * recipe.epochs)
    val_loader = DataLoader(TensorDataset(val_images, val_labels), batch_size=options.eval_batch_size)
    test_loader = DataLoader(TensorDataset(test_images, test_labels), batch_size=options.eval_batch_size)
    model, optimizer, val_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, val_loader, test_loader, scheduler)
    accelerator.print(
        f"num_processes={accelerator.num_processes} device={accelerator.device} "
        f"mixed_precision={recipe.mixed_precision} "
        f"train={len(train_labels)} validation={len(val_labels)} test={len(test_labels)} "
        f"batch_size={recipe.batch_size}x{accelerator.num_processes} steps_per_epoch={steps}")

    state: dict[str, Any] = {"epoch": 0, "best_accuracy": -1.0, "best_epoch": 0, "history": [],
                             "recipe": asdict(recipe)}
    if options.resume_from_checkpoint:
        checkpoint = find_checkpoint(options.resume_from_checkpoint, output_dir)
        state = json.loads((checkpoint / STATE_FILE).read_text())
        changed = sorted(k for k, v in state["recipe"].items() if asdict(recipe).get(k) != v)
        if changed:
            raise ValueError(f"--resume_from_checkpoint {checkpoint}: the recipe differs from the checkpoint's in "
                             f"{changed}; resume with the same preset and flags")
        accelerator.load_state(str(checkpoint))
        accelerator.print(f"resumed from {checkpoint} (epoch {state['epoch']}, best val {state['best_accuracy']:.4f})")
    if options.report_to != "none":
        accelerator.init_trackers(PROJECT_NAME, config=tracker_config(recipe, options))
    augment = BatchAugment(recipe.rotation, recipe.scale, recipe.translate, recipe.hflip, recipe.erasing_p,
                           recipe.erasing_size) if recipe.augment else None

    for epoch in range(state["epoch"] + 1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        train_loss, images_per_second = train_one_epoch(accelerator, model, optimizer, scheduler, recipe, config,
                                                        train_images, train_labels, epoch, augment)
        train_time = time.perf_counter() - epoch_start
        val, val_loss = evaluate(accelerator, model, val_loader, config, channels_last=recipe.channels_last)
        improved = val["accuracy"] > state["best_accuracy"]
        if improved:
            state.update(best_accuracy=val["accuracy"], best_epoch=epoch)
            save_best_model(accelerator, model, output_dir)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val["accuracy"],
                  "val_macro_f1": val["macro_f1"], "val_samples": val["num_samples"],
                  "lr": scheduler.get_last_lr()[0], "images_per_second": images_per_second, "train_time_s": train_time}
        state["history"].append(record)
        state["epoch"] = epoch
        save_checkpoint(accelerator, output_dir, epoch, state, options.checkpoints_total_limit)
        accelerator.log({"train/loss": train_loss, "val/loss": val_loss, "val/accuracy": val["accuracy"],
                         "val/macro_f1": val["macro_f1"], "lr": record["lr"],
                         "images_per_second": images_per_second}, step=epoch)
        accelerator.print(f"epoch {epoch}/{recipe.epochs}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} "
                          f"val_accuracy {val['accuracy']:.4f} {images_per_second:.0f} images/s"
                          f"{' (best, saved)' if improved else ''}")
        if options.stop_after_epoch is not None and epoch >= options.stop_after_epoch and epoch < recipe.epochs:
            accelerator.print(f"stopped after epoch {epoch} (--stop_after_epoch); continue with "
                              "--resume_from_checkpoint latest")
            accelerator.end_training()
            return {"stopped_after_epoch": epoch, "state": state}

    # Test: reload the best checkpoint from disk (exactly what gets published) and evaluate it.
    accelerator.wait_for_everyone()
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"no best model in {output_dir}: was the run resumed into another --output_dir?")
    best = FerForImageClassification.from_pretrained(output_dir).to(accelerator.device)
    if recipe.channels_last:
        best = best.to(memory_format=torch.channels_last)
    test, _ = evaluate(accelerator, best, test_loader, config, channels_last=recipe.channels_last)
    tta_results = {}
    if recipe.tta != "none":
        tta_report, _ = evaluate(accelerator, best, test_loader, config, tta=recipe.tta,
                                 channels_last=recipe.channels_last)
        tta_results[recipe.tta] = {k: tta_report[k] for k in ("accuracy", "macro_f1", "per_class")}
    history = state["history"]
    metrics = {
        "split": "test",
        **test,
        "tta": tta_results,
        "validation": {"best_accuracy": state["best_accuracy"], "best_epoch": state["best_epoch"], "history": history},
        "training": {
            "epochs_completed": state["epoch"], "num_processes": accelerator.num_processes,
            "device": accelerator.device.type, "mixed_precision": recipe.mixed_precision,
            "train_samples": len(train_labels), "validation_samples": len(val_labels), "test_samples": len(test_labels),
            "images_per_second": float(np.mean([h["images_per_second"] for h in history])),
            "train_time_s": float(sum(h["train_time_s"] for h in history)),
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
    recipe, options = parse_args(argv)
    return training_function(recipe, options, argv)


if __name__ == "__main__":
    main()
