"""What --output_dir becomes: the best-validation model (save_pretrained format), metrics.json, the confusion
matrix, the resolved recipe, the model card, and optionally its upload to the Hub (one HfApi call each).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator

from fer_model import FerImageProcessor
from fer_model.card import CONFUSION_MATRIX_PNG, render_model_card
from fer_model.evaluation import plot_confusion_matrix
from train.checkpoints import replace_files

# Never uploaded: resume checkpoints, TensorBoard logs, and any staging folder a killed run left (.best-*).
PUSH_IGNORE_PATTERNS = ["checkpoints/*", "logs/*", ".*"]


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


def command_line(argv: list[str], num_processes: int) -> str:
    launcher = "python" if num_processes == 1 else f"accelerate launch --multi_gpu --num_processes {num_processes}"
    return f"{launcher} train/train.py {shlex.join(argv)}".strip()


def write_model_folder(output_dir: Path, metrics: dict[str, Any], recipe: dict[str, Any], *, dataset: str,
                       preset: str | None, argv: list[str], num_processes: int, hub_model_id: str | None = None,
                       push: bool = False, private: bool = False) -> None:
    """metrics.json, confusion matrix, resolved recipe and the model card beside the best model; then push."""
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], output_dir / CONFUSION_MATRIX_PNG)
    (output_dir / "train_config.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    repo_id = hub_model_id or output_dir.resolve().name
    card = render_model_card(metrics, model_name=repo_id, dataset=dataset, command=command_line(argv, num_processes),
                             recipe=recipe, preset=preset)
    card.save(output_dir / "README.md")
    print(f"model, metrics.json and model card written to {output_dir}")
    if push:
        pushed = push_to_hub(output_dir, repo_id, private)
        print(f"pushed {output_dir} to https://huggingface.co/{pushed}")


def push_to_hub(folder: Path, repo_id: str, private: bool) -> str:
    """Create the repo if missing, then upload the model folder once (checkpoints and logs left out)."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=PUSH_IGNORE_PATTERNS,
                      commit_message="Upload FER-VGG16 trained with train/train.py")
    return repo_id
