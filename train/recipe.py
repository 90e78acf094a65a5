"""The training recipe (what a preset YAML holds) and the run options, parsed from a preset plus flags.

Every Recipe field is both a preset key and a command-line flag; flags win over the preset. Options that
are not implemented, or that only mean something together with another, are refused, never ignored.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

from fer_model.configuration import SUPPORTED_BACKBONES
from fer_model.data import DEFAULT_DATASET
from fer_model.tta import TTA_MODES

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
SCHEDULERS = ("none", "onecycle", "cosine", "cosine_restarts")
CLASS_WEIGHTS = ("none", "inverse", "effective")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEFAULT_CLASS_WEIGHTS_BETA = 0.999


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
    scheduler: Literal["none", "onecycle", "cosine", "cosine_restarts"] = field(default="none", metadata={
        "help": "learning-rate schedule, stepped every optimizer step; cosine_restarts: warm restarts"})
    warmup_ratio: float | None = field(default=None, metadata={
        "help": "fraction of steps warming up (default: onecycle 0.3, others 0)"})
    restart_cycles: int | None = field(default=None, metadata={
        "help": "cosine_restarts only: number of cosine cycles (cycles - 1 warm restarts)"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    class_weights: Literal["none", "inverse", "effective"] = field(default="none", metadata={
        "help": "class-balanced loss from the training label counts: inverse frequency, or the effective "
                "number of samples (Cui et al. 2019)"})
    class_weights_beta: float | None = field(default=None, metadata={
        "help": f"class_weights=effective only: beta (default {DEFAULT_CLASS_WEIGHTS_BETA})"})
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
    # weight averaging
    ema_decay: float | None = field(default=None, metadata={
        "help": "exponential moving average of the weights (and BatchNorm statistics), updated every step; "
                "the EMA model is validated, kept and published"})
    swa_epochs: int = field(default=0, metadata={
        "help": "SWA: average the weights at the end of the last N epochs, then recompute BatchNorm statistics; "
                "kept if it validates better"})
    swa_lr: float | None = field(default=None, metadata={
        "help": "SWA only: the schedule ends swa_epochs early and the last epochs anneal to this constant lr"})
    # runtime
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="no", metadata={"help": "autocast precision"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = field(
        default="default", metadata={"help": "torch.compile mode (torch_compile only)"})
    channels_last: bool = field(default=False, metadata={"help": "NHWC memory format (faster convs on GPUs)"})
    tta: str = field(default="none", metadata={"help": "extra test evaluation with test-time augmentation",
                                               "choices": list(TTA_MODES)})

    def __post_init__(self) -> None:
        if isinstance(self.freeze_until, str) and self.freeze_until.lower() in ("none", "null", ""):
            self.freeze_until = None
        for name, choices in (("backbone", SUPPORTED_BACKBONES), ("optimizer", ("adam", "adamw", "sgd")),
                              ("scheduler", SCHEDULERS), ("class_weights", CLASS_WEIGHTS),
                              ("mixed_precision", ("no", "fp16", "bf16")), ("tta", TTA_MODES),
                              ("compile_mode", COMPILE_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(choices)}")
        if self.class_weights == "effective" and self.class_weights_beta is None:
            self.class_weights_beta = DEFAULT_CLASS_WEIGHTS_BETA
        checks = {
            "lr": self.lr > 0, "batch_size": self.batch_size >= 2, "epochs": self.epochs >= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1, "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0, "rotation": 0 <= self.rotation <= 180,
            "scale": 0 <= self.scale < 1, "translate": 0 <= self.translate < 1, "erasing_p": 0 <= self.erasing_p <= 1,
            "erasing_size": self.erasing_size >= 0, "mixup_alpha": self.mixup_alpha >= 0,
            "cutmix_alpha": self.cutmix_alpha >= 0, "head_dropout": 0 <= self.head_dropout < 1,
            "warmup_ratio": self.warmup_ratio is None or 0 <= self.warmup_ratio < 1,
            "restart_cycles": self.restart_cycles is None or self.restart_cycles >= 1,
            "class_weights_beta": self.class_weights_beta is None or 0 < self.class_weights_beta < 1,
            "ema_decay": self.ema_decay is None or 0 < self.ema_decay < 1,
            "swa_epochs": 0 <= self.swa_epochs <= self.epochs,
            "swa_lr": self.swa_lr is None or self.swa_lr > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid recipe value(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        # Options that only mean something together with another: refuse rather than silently ignore.
        if self.scheduler == "onecycle" and self.warmup_ratio == 0:
            raise ValueError("scheduler=onecycle needs warmup_ratio > 0 (its rising phase), or leave it unset (0.3)")
        if (self.scheduler == "cosine_restarts") != (self.restart_cycles is not None):
            raise ValueError("restart_cycles goes with scheduler=cosine_restarts (and that scheduler needs it): "
                             f"got scheduler={self.scheduler!r}, restart_cycles={self.restart_cycles!r}")
        if self.class_weights_beta is not None and self.class_weights != "effective":
            raise ValueError(f"class_weights_beta only applies to class_weights=effective, not {self.class_weights!r}")
        if self.swa_lr is not None and not 1 <= self.swa_epochs < self.epochs:
            raise ValueError(f"swa_lr needs 1 <= swa_epochs < epochs (the schedule runs first); got swa_epochs="
                             f"{self.swa_epochs}, epochs={self.epochs}")
        if self.compile_mode != "default" and not self.torch_compile:
            raise ValueError(f"compile_mode={self.compile_mode!r} needs torch_compile: true")


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
    checkpoint_every: int = field(default=1, metadata={
        "help": "write a resume checkpoint every N epochs (and always after the last one)"})
    report_to: Literal["none", "tensorboard"] = field(default="none", metadata={
        "help": "experiment tracker (logs under OUTPUT_DIR/logs)"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload the model folder to the Hub at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "repo id (default: the output folder's name)"})
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})


def parse_args(argv: list[str] | None = None, description: str | None = None) -> tuple[Recipe, RunOptions]:
    """Preset YAML values become the parser's defaults, so any flag given on the command line wins."""
    preset_parser = argparse.ArgumentParser(add_help=False)
    preset_parser.add_argument("--config")
    config_path = preset_parser.parse_known_args(argv)[0].config
    parser = HfArgumentParser((Recipe, RunOptions), description=description,
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
        presets = sorted(p.name for p in CONFIGS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"preset {path} not found (presets in train/configs: {presets})")
    values = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(Recipe)}
    if not isinstance(values, dict) or set(values) - known:
        unknown = sorted(set(values) - known) if isinstance(values, dict) else values
        raise ValueError(f"{path}: unknown option(s) {unknown}; a preset sets recipe fields only: {sorted(known)}")
    return values
