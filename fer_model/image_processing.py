"""FerImageProcessor: any image -> grayscale -> square resize -> normalised 3-channel pixel_values.

FER2013 faces are 48x48 grayscale; the VGG base expects 3 channels, so the grey plane is replicated
and normalised with the config's per-channel mean/std. Training normalises its uint8 batches with the
same `normalize_gray` function, so the model sees identical inputs in training and inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .configuration import IMAGENET_MEAN, IMAGENET_STD

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as PIL's "L" mode
ImageInput = Image.Image | np.ndarray | torch.Tensor


def normalize_gray(gray: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, 1, H, W) grey in [0, 1] -> (N, 3, H, W) normalised pixel_values."""
    mean_t = torch.as_tensor(mean, dtype=gray.dtype, device=gray.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=gray.dtype, device=gray.device).view(1, 3, 1, 1)
    return (gray.expand(-1, 3, -1, -1) - mean_t) / std_t


class FerImageProcessor(BaseImageProcessor):
    """Prepares PIL images, numpy arrays or torch tensors, single or batched, for the FER model.

    Accepted: PIL images in any mode (L, RGB, RGBA, LA, P, CMYK, I;16, I, F, 1); numpy arrays HxW or
    HxWxC (C in 1, 3, 4) and batches NxHxWxC; torch tensors HxW, CxHxW and batches NxCxHxW; lists of
    any of these. uint8 is scaled from [0, 255], uint16 from [0, 65535], floats are taken as [0, 1]
    (or [0, 255] when their maximum exceeds 1). Transparent pixels are composited onto white.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 48,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]

    @classmethod
    def from_model_config(cls, config: Any) -> "FerImageProcessor":
        """The processor a FerConfig implies (training saves it beside the model)."""
        return cls(image_size=config.image_size, image_mean=config.image_mean, image_std=config.image_std)

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        grays = [self.resize_gray(to_gray(image)) for image in split_batch(images)]
        gray = torch.from_numpy(np.stack(grays)[:, None])
        pixel_values = normalize_gray(gray, self.image_mean, self.image_std)
        return BatchFeature(data={"pixel_values": pixel_values.numpy()}, tensor_type=return_tensors)

    def resize_gray(self, gray: np.ndarray) -> np.ndarray:
        """Antialiased bilinear resize of a float grey plane to image_size x image_size."""
        size = (self.image_size, self.image_size)
        if gray.shape == size:
            return gray
        resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(resized, dtype=np.float32)


def split_batch(images: Any) -> list[ImageInput]:
    """One image or a batch -> a list of single images."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("got an empty list of images")
        return [image for batch in images for image in split_batch(batch)]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return [image for image in images]
    return [images]


def to_gray(image: Any) -> np.ndarray:
    """One image -> float32 HxW grey plane in [0, 1]."""
    if isinstance(image, Image.Image):
        return pil_to_gray(image)
    if isinstance(image, torch.Tensor):
        image = tensor_to_hwc(image)
    if isinstance(image, np.ndarray):
        return array_to_gray(image)
    raise ValueError(f"unsupported image type {type(image).__name__}: pass a PIL image, a numpy array "
                     "or a torch tensor (open files with PIL.Image.open first)")


def pil_to_gray(image: Image.Image) -> np.ndarray:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"empty image: {image.width}x{image.height}")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return array_to_gray(np.asarray(image))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        image = image.convert("RGBA")
    else:
        image = image.convert("RGB")  # CMYK, YCbCr, HSV, LAB, P, 1, L: one well-defined path to RGB
    return array_to_gray(np.asarray(image))


def tensor_to_hwc(tensor: torch.Tensor) -> np.ndarray:
    """Torch images are channels-first (CxHxW) or HxW."""
    array = tensor.detach().cpu().numpy()
    if array.ndim == 3:
        return np.moveaxis(array, 0, -1)
    return array


def array_to_gray(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        raise ValueError(f"empty image array of shape {array.shape}")
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        channels = array.shape[-1]
    elif array.ndim == 2:
        channels = 0
    else:
        raise ValueError(f"image array of shape {array.shape} is not HxW or HxWxC with C in (1, 3, 4) "
                         "(torch tensors: CxHxW)")
    values = scale_to_unit(array)
    if channels == 0:
        return values
    if channels == 1:
        return values[..., 0]
    gray = values[..., :3] @ LUMA_WEIGHTS
    if channels == 4:  # composite onto white so transparent areas do not turn black
        alpha = values[..., 3]
        gray = gray * alpha + (1.0 - alpha)
    return np.ascontiguousarray(gray, dtype=np.float32)


def scale_to_unit(array: np.ndarray) -> np.ndarray:
    """Integer or float pixel values -> float32 in [0, 1]."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        top = 255.0 if array.dtype.itemsize == 1 or array.max() <= 255 else 65535.0
        return np.clip(array.astype(np.float32) / top, 0.0, 1.0)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"image array has unsupported dtype {array.dtype}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("image array contains NaN or infinite values")
    if values.max() > 1.0:
        values = values / 255.0
    return np.clip(values, 0.0, 1.0)


FerImageProcessor.register_for_auto_class("AutoImageProcessor")
