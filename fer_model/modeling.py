"""FerForImageClassification: timm's VGG16 convolutional base + the seed's small head.

Only the convolutional base (`features`) of timm's VGG is built: its fc6/fc7 classifier (~120M
parameters) is replaced by Linear(512 -> 32) -> LeakyReLU -> BatchNorm1d -> Linear(32 -> 7), so the
whole model has about 14.7M parameters. Module names match timm's (`features.N`), so ImageNet weights
load straight into `features`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from timm.models.vgg import cfgs as TIMM_VGG_CFGS
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration import SUPPORTED_BACKBONES, FerConfig

# timm weights used for ImageNet initialisation (torchvision's VGG weights, re-hosted by timm).
PRETRAINED_TAGS: dict[str, str] = {"vgg16": "vgg16.tv_in1k", "vgg16_bn": "vgg16_bn.tv_in1k"}
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def vgg_layer_indices(backbone: str) -> dict[str, int]:
    """Keras VGG16 layer names (`block4_conv1`, `block3_pool`, ...) -> index in timm's `features`.

    The seed froze Keras' first 10 layers (input, block1-3 convs and pools): that is everything before
    `block4_conv1`, i.e. `features[:17]` for vgg16 and `features[:24]` for vgg16_bn.
    """
    modules_per_conv = 3 if SUPPORTED_BACKBONES[backbone] else 2  # conv (+ bn) + relu
    indices: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for channels in TIMM_VGG_CFGS[backbone.split("_")[0]]:
        if channels == "M":
            indices[f"block{block}_pool"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            indices[f"block{block}_conv{conv}"] = index
            index, conv = index + modules_per_conv, conv + 1
    return indices


def build_vgg_features(backbone: str) -> nn.Sequential:
    """timm's VGG `features` stack (same layout and names), without timm's fc6/fc7 `pre_logits`."""
    with_bn = SUPPORTED_BACKBONES[backbone]
    layers: list[nn.Module] = []
    in_channels = 3
    for channels in TIMM_VGG_CFGS[backbone.split("_")[0]]:
        if channels == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(channels), kernel_size=3, padding=1))
        if with_bn:
            layers.append(nn.BatchNorm2d(int(channels)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(channels)
    return nn.Sequential(*layers)


def feature_size(config: FerConfig) -> int:
    """Flattened size of the conv base's output: 512 channels x (image_size // 32)^2."""
    side = config.image_size // 32
    return 512 * side * side


class FerHead(nn.Module):
    """The seed's head: Linear -> LeakyReLU -> BatchNorm1d -> (Dropout) -> Linear."""

    def __init__(self, in_features: int, hidden_size: int, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_size)
        self.act = nn.LeakyReLU(negative_slope=0.3)  # Keras' LeakyReLU default slope, as in the seed
        self.norm = nn.BatchNorm1d(hidden_size)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_size, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.norm(self.act(self.fc1(x)))))


class FerPreTrainedModel(PreTrainedModel):
    config_class = FerConfig
    base_model_prefix = "fer"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        """timm's VGG init for convs; Keras' Glorot init for the head, as the seed had."""
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """Load safetensors weights only (pickle files can run code and are refused), strictly.

        Strict: a weight missing from the checkpoint or an unexpected one is a ValueError (transformers
        would only log it and leave random weights in the model), and so is a shape that differs from
        the config's unless the caller passes ignore_mismatched_sizes=True.
        """
        refuse_pickle_only_folder(pretrained_model_name_or_path)
        kwargs["use_safetensors"] = True
        wants_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                                  **kwargs)
        except SafetensorError as error:  # a truncated or overwritten model.safetensors
            raise OSError(f"The weights file in {str(pretrained_model_name_or_path)!r} is truncated or corrupt "
                          f"({error}); save or download the model again.") from error
        except RuntimeError as error:  # transformers raises this (and logs a load report) on a size mismatch
            if "ignore_mismatched_sizes" not in str(error):
                raise
            raise ValueError(f"The weights in {str(pretrained_model_name_or_path)!r} have a size mismatch with the "
                             "model its config.json describes (the load report above names the tensors); was the "
                             "checkpoint saved with a different config?") from error
        problems = {kind: sorted(map(str, info[kind])) for kind in ("missing_keys", "unexpected_keys") if info[kind]}
        if problems:
            raise ValueError(f"The weights in {str(pretrained_model_name_or_path)!r} do not match the model its "
                             f"config.json describes ({'; '.join(f'{k}: {v}' for k, v in problems.items())}); "
                             "was the checkpoint saved by a different version or config?")
        return (model, info) if wants_info else model


class FerForImageClassification(FerPreTrainedModel):
    """VGG16 features -> flatten -> seed head. `forward(pixel_values, labels)` -> ImageClassifierOutput."""

    def __init__(self, config: FerConfig, pretrained_backbone: bool | str | os.PathLike = False) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.features = build_vgg_features(config.backbone)
        self.head = FerHead(feature_size(config), config.hidden_size, config.num_labels, config.head_dropout)
        self.frozen_until: int = 0  # number of leading `features` modules that are frozen
        self.post_init()
        if pretrained_backbone:
            self.load_backbone_weights(pretrained_backbone)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.features(pixel_values)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(features, 1))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ImageClassifierOutput | tuple:
        _check_pixel_values(pixel_values, self.config)
        logits = self.forward_head(self.forward_features(pixel_values))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        if return_dict is False:
            return (loss, logits) if loss is not None else (logits,)
        return ImageClassifierOutput(loss=loss, logits=logits)

    def freeze_backbone(self, until: str | None) -> int:
        """Freeze the conv layers before the Keras-style layer `until` (e.g. "block4_conv1").

        Returns the number of `features` modules frozen. `None` unfreezes everything. Frozen BatchNorm
        layers (vgg16_bn) also stay in eval mode, so their running statistics do not drift either.
        """
        indices = vgg_layer_indices(self.config.backbone)
        if until is not None and until not in indices:
            raise ValueError(f"freeze_until={until!r} is not a layer of {self.config.backbone}; "
                             f"choose one of {list(indices)} or None")
        self.frozen_until = indices[until] if until is not None else 0
        for index, module in enumerate(self.features):
            module.requires_grad_(index >= self.frozen_until)
        self.train(self.training)
        return self.frozen_until

    def train(self, mode: bool = True) -> "FerForImageClassification":
        super().train(mode)
        for module in list(self.features)[: getattr(self, "frozen_until", 0)]:
            module.eval()
        return self

    def load_backbone_weights(self, source: bool | str | os.PathLike = True) -> None:
        """Initialise `features` from ImageNet: timm's `vgg16.tv_in1k` (True) or a local weights file."""
        state = _read_local_backbone(Path(source)) if not isinstance(source, bool) else _download_backbone(
            self.config.backbone)
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        if not features:
            raise ValueError(f"no 'features.*' tensors in the backbone weights from {source!r}")
        self.features.load_state_dict(features, strict=True)


def _check_pixel_values(pixel_values: torch.Tensor, config: FerConfig) -> None:
    expected = (3, config.image_size, config.image_size)
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(f"pixel_values must have shape (batch, {', '.join(map(str, expected))}); "
                         f"got {tuple(pixel_values.shape)}. Use FerImageProcessor to prepare images.")


def _download_backbone(backbone: str) -> dict[str, torch.Tensor]:
    import timm

    tag = PRETRAINED_TAGS[backbone]
    try:
        return timm.create_model(tag, pretrained=True).state_dict()
    except Exception as error:  # offline / Hub unreachable: hf_hub, requests and urllib all raise differently
        raise RuntimeError(
            f"Could not download the ImageNet weights '{tag}' ({type(error).__name__}: {error}). "
            "Without network access, train from scratch with --no-pretrained, or pass a local VGG16 "
            "state dict (timm or torchvision, .safetensors or .pth) with --pretrained_weights PATH."
        ) from error


def _read_local_backbone(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    # torchvision ships .pth files: load them without unpickling arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def refuse_pickle_only_folder(source: str | os.PathLike) -> None:
    """A local model folder must hold safetensors weights; pickle weights alone are refused."""
    folder = Path(source)
    if not folder.is_dir():
        return
    names = {p.name for p in folder.iterdir()}
    if any(name.endswith(".safetensors") for name in names):
        return
    pickles = sorted(n for n in names if n.endswith(PICKLE_WEIGHT_SUFFIXES))
    if pickles:
        raise OSError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}). FER-VGG16 loads safetensors only, "
            "since unpickling can run arbitrary code: re-save the model with save_pretrained() "
            "(safe_serialization) from a trusted environment."
        )


FerConfig.register_for_auto_class()
FerForImageClassification.register_for_auto_class("AutoModelForImageClassification")
