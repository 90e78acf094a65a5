"""The training recipe (what a preset YAML holds) and the run options, parsed from a preset plus flags.

Every Recipe field is both a preset key and a command-line flag; flags win over the preset. The model's
architecture fields come from fer_model.configuration.ModelArguments (their one declaration, shared with
FerConfig). Choices are Literal types only: HfArgumentParser turns them into argparse choices, and
`Recipe.__post_init__` checks preset values (which argparse does not) against the same Literals.
An option that is not implemented, or that only means something together with another, is refused.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml
from transformers import HfArgumentParser

from fer_model.configuration import FerConfig, ModelArguments
from fer_model.data import DEFAULT_DATASET
from fer_model.image_processing import TtaMode
from train.budget import parse_max_time

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
Optimizer = Literal["adam", "sgd"]
Scheduler = Literal["none", "onecycle", "plateau"]
MixedPrecision = Literal["no", "fp16", "bf16"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


@dataclass
class Recipe(ModelArguments):
    """Hyper-parameters: what a preset YAML holds (the model fields first, from ModelArguments).

    The defaults are the seed's recipe (train/configs/seed.yaml).
    """

    pretrained: bool = field(default=True, metadata={
        "help": "ImageNet init (timm vgg16.tv_in1k); --no-pretrained: from scratch"})
    freeze_until: str | None = field(default="block4_conv1", metadata={
        "help": "freeze conv layers before this Keras layer name when fine-tuning from ImageNet (none: train all)"})
    # optimisation
    optimizer: Optimizer = field(default="adam", metadata={"help": "sgd uses momentum/nesterov"})
    lr: float = field(default=1e-4, metadata={"help": "(peak) learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum for SGD"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay"})
    scheduler: Scheduler = field(default="none", metadata={
        "help": "learning-rate schedule: none (constant after any warm-up) or onecycle (torch's OneCycleLR), "
                "stepped every optimizer step; plateau (torch's ReduceLROnPlateau, mode max), stepped once per "
                "epoch with the validation accuracy of the kept candidate"})
    warmup_ratio: float | None = field(default=None, metadata={
        "help": "fraction of steps warming up linearly (default: onecycle 0.3, none and plateau 0)"})
    warmup_epochs: int | None = field(default=None, metadata={
        "help": "warm up linearly over this many epochs' steps instead of warmup_ratio (plateau: then "
                "ReduceLROnPlateau takes over)"})
    plateau_factor: float = field(default=0.75, metadata={
        "help": "plateau: multiply the lr by this when validation accuracy stalls (usef-kh: 0.75)"})
    plateau_patience: int = field(default=5, metadata={
        "help": "plateau: epochs without improvement before the lr drops (usef-kh: 5)"})
    min_lr: float = field(default=0.0, metadata={"help": "plateau: the lr never drops below this"})
    grad_clip_value: float | None = field(default=None, metadata={
        "help": "clamp every gradient element to [-v, v] before the step (accelerator.clip_grad_value_; "
                "WuJie1010: 0.1); none: off"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    batch_size: int = field(default=512, metadata={"help": "per process"})
    epochs: int = field(default=20, metadata={"help": "training epochs"})
    seed: int = field(default=42, metadata={"help": "seeds init, shuffling, augmentation, dropout, mixing"})
    drop_last: bool = field(default=False, metadata={
        "help": "drop each epoch's last partial batch, so every step has one shape (a compiled model, CUDA graphs)"})
    # augmentation (batched, on the device; train/augment.py)
    augment: bool = field(default=False, metadata={"help": "random (resized crop +) affine, flip, erasing"})
    resized_crop_scale: list[float] | None = field(default=None, metadata={
        "help": "random resized crop: area range as torchvision's RandomResizedCrop(scale=(lo, hi)), aspect "
                "3/4-4/3 (usef-kh: 0.8 1.2); none: off"})
    rotation: float = field(default=10.0, metadata={"help": "max rotation, degrees"})
    scale: float = field(default=0.1, metadata={"help": "max zoom in/out, fraction"})
    translate: float = field(default=0.1, metadata={"help": "max shift, fraction of the side"})
    hflip: bool = field(default=True, metadata={"help": "random horizontal flip"})
    erasing_p: float = field(default=0.5, metadata={"help": "probability of random erasing per image"})
    erasing_scale: list[float] = field(default_factory=lambda: [0.02, 0.33], metadata={
        "help": "erased area range, fraction of the image (torchvision's RandomErasing scale); "
                "0.111111 0.111111 with ratio 1 1 is a 16x16 square of 48x48"})
    erasing_ratio: list[float] = field(default_factory=lambda: [0.3, 3.3], metadata={
        "help": "erased aspect-ratio range, log-uniform (torchvision's RandomErasing ratio)"})
    mixup_alpha: float = field(default=0.0, metadata={
        "help": "MixUp Beta(alpha, alpha) per batch (torchvision.transforms.v2.MixUp); 0 = off"})
    # weight averaging
    ema_decay: float | None = field(default=None, metadata={
        "help": "exponential moving average of the weights (and BatchNorm statistics), updated every step; "
                "the EMA model is validated, kept and published"})
    # runtime
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": "autocast precision"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    compile_mode: CompileMode = field(default="default", metadata={
        "help": "torch.compile mode (torch_compile only); reduce-overhead uses CUDA graphs"})
    channels_last: bool = field(default=False, metadata={"help": "NHWC memory format (faster convs on GPUs)"})
    tta: TtaMode = field(default="none", metadata={"help": "extra test evaluation with test-time augmentation"})

    def __post_init__(self) -> None:
        if isinstance(self.freeze_until, str) and self.freeze_until.lower() in ("none", "null", ""):
            self.freeze_until = None
        for name, annotation in get_type_hints(type(self)).items():  # presets bypass argparse's choices
            if get_origin(annotation) is Literal and getattr(self, name) not in get_args(annotation):
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(get_args(annotation))}")
        FerConfig(**self.model_arguments())  # the config (the contract) checks the model fields
        checks = {
            "lr": self.lr > 0, "batch_size": self.batch_size >= 2, "epochs": self.epochs >= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1, "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0, "rotation": 0 <= self.rotation <= 180,
            "scale": 0 <= self.scale < 1, "translate": 0 <= self.translate < 1, "erasing_p": 0 <= self.erasing_p <= 1,
            "erasing_scale": is_range(self.erasing_scale, 0, 1), "erasing_ratio": is_range(self.erasing_ratio, 0),
            "resized_crop_scale": self.resized_crop_scale is None or is_range(self.resized_crop_scale, 0),
            "mixup_alpha": self.mixup_alpha >= 0,
            "warmup_ratio": self.warmup_ratio is None or 0 <= self.warmup_ratio < 1,
            "warmup_epochs": self.warmup_epochs is None or 0 <= self.warmup_epochs < self.epochs,
            "ema_decay": self.ema_decay is None or 0 < self.ema_decay < 1,
            "plateau_factor": 0 < self.plateau_factor < 1, "plateau_patience": self.plateau_patience >= 0,
            "min_lr": 0 <= self.min_lr <= self.lr,
            "grad_clip_value": self.grad_clip_value is None or self.grad_clip_value > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid recipe value(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        # Options that only mean something together with another: refuse rather than silently ignore.
        if self.warmup_ratio and self.warmup_epochs is not None:  # a preset's ratio, overridden by --warmup_ratio 0
            raise ValueError(f"warmup_ratio={self.warmup_ratio} and warmup_epochs={self.warmup_epochs}: give one "
                             "(over a preset's warmup_ratio: --warmup_ratio 0 --warmup_epochs N)")
        rising = self.warmup_ratio if self.warmup_epochs is None else self.warmup_epochs  # what optim.py uses
        if self.scheduler == "onecycle" and rising == 0:
            raise ValueError("scheduler=onecycle needs warmup_ratio > 0 (its rising phase), or leave it unset (0.3)")
        if self.compile_mode != "default" and not self.torch_compile:
            raise ValueError(f"compile_mode={self.compile_mode!r} needs torch_compile: true")

    def model_arguments(self) -> dict[str, Any]:
        """The FerConfig fields of this recipe (backbone, image_size, hidden_size, head_dropout, crop_size)."""
        return {spec.name: getattr(self, spec.name) for spec in fields(ModelArguments)}


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
        "help": "local VGG16 backbone state dict (.safetensors/.pth) instead of downloading ImageNet's"})
    init_from: str | None = field(default=None, metadata={
        "help": "a saved FER-VGG16 folder or Hub id: start from ALL its weights (backbone and head) with this "
                "recipe's new schedule; the card names it as base_model"})
    max_train_samples: int | None = field(default=None, metadata={"help": "random subset of train (quick runs)"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "random subset of validation and test"})
    eval_batch_size: int = field(default=256, metadata={"help": "per process"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "a checkpoints/checkpoint_N folder, 'latest' (in --output_dir), or 'hub' / a Hub repo id: the "
                "repo's last-checkpoint/ (--push_checkpoints), downloaded into --output_dir"})
    push_checkpoints: bool = field(default=False, metadata={
        "help": "upload every checkpoint saved to the Hub repo's last-checkpoint/ folder (--hub_model_id, as "
                "--push_to_hub names it), replacing the previous one, so another machine can resume"})
    checkpoint_optimizer: bool = field(default=True, metadata={
        "help": "false: leave the optimizer's momentum out of checkpoints (about half their size; a resume "
                "rebuilds it from zero, so it no longer matches an uninterrupted run exactly)"})
    max_time: str | None = field(default=None, metadata={
        "help": "time budget, DD:HH:MM:SS (as Lightning's max_time) or minutes: stop at the epoch boundary where the "
                "next epoch and the finish would not fit, and finish the folder with the best model so far "
                "(marked 'stopped at epoch N of M (time budget)'); continue with --resume_from_checkpoint latest"})
    stop_after_epoch: int | None = field(default=None, metadata={
        "help": "stop once this epoch is done (its checkpoint kept), as an interrupted run would"})
    checkpoints_total_limit: int = field(default=2, metadata={
        "help": "resume checkpoints kept (accelerate's ProjectConfiguration.total_limit); accelerate removes the "
                "oldest before writing the next, so with 1 a kill during that write leaves none"})
    checkpoint_every: int = field(default=1, metadata={
        "help": "write a resume checkpoint every N epochs (and always after the last one)"})
    report_to: Literal["none", "tensorboard"] = field(default="none", metadata={
        "help": "experiment tracker (logs under OUTPUT_DIR/logs)"})
    export_int8: bool = field(default=False, metadata={
        "help": "also write the fingerprinted int8 model_int8.onnx (as `python -m fer_model export-onnx --int8`), "
                "which the recognizer, CLI and app then serve by default"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload the model folder to the Hub at the end"})
    hub_model_id: str | None = field(default=None, metadata={
        "help": "repo id the card names and --push_to_hub uploads to (default: the project's model for the card; "
                "the output folder's name under your account when pushing)"})
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})

    def __post_init__(self) -> None:
        for name in ("checkpoint_every", "checkpoints_total_limit", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} {getattr(self, name)}: must be >= 1")
        if self.max_time is not None:
            parse_max_time(self.max_time)  # a bad budget fails before anything is loaded


def is_range(values: list[float], low: float, high: float = float("inf")) -> bool:
    """[lo, hi] with low < lo <= hi < high (a torchvision scale or ratio range)."""
    return isinstance(values, (list, tuple)) and len(values) == 2 and low < values[0] <= values[1] < high


def parse_args(argv: list[str] | None = None, description: str | None = None) -> tuple[Recipe, RunOptions]:
    """Preset YAML values become the parser's defaults, so any flag given on the command line wins."""
    preset_parser = argparse.ArgumentParser(add_help=False)
    preset_parser.add_argument("--config")
    config_path = preset_parser.parse_known_args(argv)[0].config
    parser = HfArgumentParser((Recipe, RunOptions), description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    # HfArgumentParser adds --no_X (and, depending on the transformers version, --no-X) for True defaults
    # only; a preset may turn any switch on, so every boolean gets both spellings.
    for name, annotation in get_type_hints(Recipe).items():
        if annotation is bool:
            for option in (f"--no_{name}", f"--no-{name.replace('_', '-')}"):
                with contextlib.suppress(argparse.ArgumentError):  # already defined by HfArgumentParser
                    parser.add_argument(option, action="store_false", dest=name, help=f"turn {name} off")
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
