"""What --output_dir becomes: the best-validation model (save_pretrained format, its temperature fitted at the
end: train/calibrate.py), metrics.json, the confusion matrix and reliability diagram, the resolved recipe, the
model card, with --export_int8 the int8 ONNX file the recognizer serves, and optionally its upload to the Hub
(one HfApi call each).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from fer_model import FerForImageClassification, FerImageProcessor
from fer_model.calibration import RELIABILITY_PNG
from fer_model.card import CONFUSION_MATRIX_PNG, render_model_card
from fer_model.evaluation import plot_confusion_matrix, predict_logits
from fer_model.image_processing import gray_to_pixel_values
from fer_model.onnx_runtime import CALIBRATION_METHODS, INT8_FILENAME, OnnxClassifier, export_onnx
from train.checkpoints import replace_files

# Never uploaded: resume checkpoints, TensorBoard logs, and any staging folder a killed run left (.best-*).
PUSH_IGNORE_PATTERNS = ["checkpoints/*", "last-checkpoint/*", "logs/*", ".*"]
# What a finish writes beside the model: a folder with them is finished (complete, or stopped by --max_time).
FINISH_FILES = ("metrics.json", "README.md", CONFUSION_MATRIX_PNG, RELIABILITY_PNG, INT8_FILENAME,
                "train_config.yaml")


def save_best_model(accelerator: Accelerator, model: Any, output_dir: Path) -> list[str]:
    """The seed's ModelCheckpoint: the best-validation model in save_pretrained format, on the main process.

    Written to a temporary folder first, then each file is moved in with os.replace, so a kill while
    saving never leaves a half-written model.safetensors. Returns the file names.
    """
    accelerator.wait_for_everyone()
    names: list[str] = []
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output_dir, prefix=".best-") as staging:  # same filesystem
            unwrapped.save_pretrained(staging)
            FerImageProcessor.from_model_config(unwrapped.config).save_pretrained(staging)
            names = replace_files(Path(staging), output_dir)
    return names


def clear_finish(accelerator: Accelerator, output_dir: Path) -> None:
    """On a resume: remove what the last finish wrote beside the model (metrics, card, plots, int8 file), which
    no longer describe the folder once the checkpoint's best model is back; the next finish writes them again."""
    if accelerator.is_main_process:
        for name in FINISH_FILES:
            (output_dir / name).unlink(missing_ok=True)
    accelerator.wait_for_everyone()


def command_line(argv: list[str], num_processes: int) -> str:
    launcher = "python" if num_processes == 1 else f"accelerate launch --multi_gpu --num_processes {num_processes}"
    return f"{launcher} train/train.py {shlex.join(argv)}".strip()


def export_int8(accelerator: Accelerator, output_dir: Path, faces: torch.Tensor,
                test: tuple[torch.Tensor, torch.Tensor], batch_size: int = 256) -> dict[str, Any]:
    """--export_int8: OUTPUT_DIR/model_int8.onnx, exported from the folder as saved (on the CPU, main process)
    and calibrated on `faces` (fer_model.onnx_runtime.int8_calibration_faces, as `python -m fer_model
    export-onnx --int8` chooses them), as that command writes it: fingerprinted, so the recognizer serves it by
    default. Its accuracy on `test` (uint8 faces, labels in the model's order) is measured with onnxruntime: the
    "int8" metrics entry."""
    accelerator.wait_for_everyone()
    shared: list[dict[str, Any] | None] = [None]
    if accelerator.is_main_process:
        model = FerForImageClassification.from_pretrained(output_dir).eval()
        calibration = gray_to_pixel_values(faces, model.config).numpy()  # as `export-onnx --int8` makes them
        path = export_onnx(model, output_dir / INT8_FILENAME, calibration=calibration)
        classifier = OnnxClassifier(path, temperature=model.config.temperature)
        images, labels = test
        predictions = torch.cat([predict_logits(classifier, images[start : start + batch_size], model.config)
                                 .argmax(-1) for start in range(0, len(labels), batch_size)])
        shared = [{"file": INT8_FILENAME, "calibration_samples": len(faces),
                   "calibration_method": CALIBRATION_METHODS[0], "test_samples": len(labels),
                   "test_accuracy": float((predictions == labels).double().mean())}]
        print(f"int8 ONNX written to {path} (test accuracy {shared[0]['test_accuracy']:.4f} with onnxruntime)")
    accelerator.wait_for_everyone()
    return broadcast_object_list(shared)[0]


def write_model_folder(output_dir: Path, metrics: dict[str, Any], recipe: dict[str, Any], *, dataset: str,
                       preset: str | None, argv: list[str], num_processes: int, hub_model_id: str | None = None,
                       push: bool = False, private: bool = False) -> None:
    """metrics.json, confusion matrix, resolved recipe and the model card beside the best model; then push.

    The card names the model by `hub_model_id`, or when pushing without one by the repo created for it (the
    output folder's name under your account), else as the project's model (fer_model's DEFAULT_MODEL_ID): never
    by a local folder's name, which nobody else can load.
    """
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], output_dir / CONFUSION_MATRIX_PNG)
    (output_dir / "train_config.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    repo_id = create_repo(hub_model_id or output_dir.resolve().name, private) if push else hub_model_id
    card = render_model_card(metrics, model_name=repo_id, dataset=dataset, command=command_line(argv, num_processes),
                             recipe=recipe, preset=preset)
    card.save(output_dir / "README.md")
    print(f"model, metrics.json and model card written to {output_dir}")
    if push:
        upload_folder(output_dir, repo_id)
        print(f"pushed {output_dir} to https://huggingface.co/{repo_id}")


def checkpoint_repo(options: Any, output_dir: Path) -> str | None:
    """--push_checkpoints: the Hub repo (created if missing, as --push_to_hub names it) the checkpoints go to."""
    if not options.push_checkpoints:
        return None
    return create_repo(options.hub_model_id or output_dir.resolve().name, options.hub_private)


def create_repo(repo_id: str, private: bool) -> str:
    """The Hub repo the folder goes to, created if missing; its full id (namespace/name)."""
    from huggingface_hub import HfApi

    return HfApi().create_repo(repo_id, private=private, exist_ok=True).repo_id


def upload_folder(folder: Path, repo_id: str) -> None:
    """Upload the model folder once (checkpoints and logs left out)."""
    from huggingface_hub import HfApi

    HfApi().upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=PUSH_IGNORE_PATTERNS,
                          commit_message="Upload FER-VGG16 trained with train/train.py")
