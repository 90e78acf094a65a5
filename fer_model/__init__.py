"""FER-VGG16: facial emotion recognition with a VGG16 base, transformers-native."""

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from .configuration import FER2013_LABELS, FerConfig
from .image_processing import FerImageProcessor
from .loading import DEFAULT_MODEL_ID, load_model
from .modeling import FerForImageClassification
from .recognizer import EmotionRecognizer

# Local Auto-class support (no trust_remote_code needed once fer_model is imported).
AutoConfig.register(FerConfig.model_type, FerConfig, exist_ok=True)
AutoModelForImageClassification.register(FerConfig, FerForImageClassification, exist_ok=True)
# One processor serves both of transformers' image backends: it needs neither torchvision nor a PIL-only
# path (its pixels come from torch). AutoImageProcessor asks for "torchvision" whenever torchvision is
# installed, so registering it as the "pil" (slow) class only made every load log a fallback warning.
AutoImageProcessor.register(
    FerConfig, image_processor_classes={"torchvision": FerImageProcessor, "pil": FerImageProcessor}, exist_ok=True)

__all__ = [
    "DEFAULT_MODEL_ID",
    "EmotionRecognizer",
    "FER2013_LABELS",
    "FerConfig",
    "FerForImageClassification",
    "FerImageProcessor",
    "load_model",
]
