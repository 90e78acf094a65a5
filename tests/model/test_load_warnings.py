"""Loading a saved folder is silent: no log record, no Python warning and nothing on stderr.

Each case runs in a fresh interpreter, since transformers logs some warnings only once per process.
Progress bars are switched off (HF_HUB_DISABLE_PROGRESS_BARS): they are not warnings, and the
"Loading weights" bar would otherwise be the only thing on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

LOAD_EVERYTHING = """
import json, logging, sys, warnings
from PIL import Image

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name}: {record.getMessage()}")

for name in ("", "transformers", "huggingface_hub", "timm", "torch", "PIL"):
    logging.getLogger(name).addHandler(Keep(logging.WARNING))
folder, with_fer_model = sys.argv[1], sys.argv[2] == "with_fer_model"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if with_fer_model:
        from fer_model import FerForImageClassification, FerImageProcessor
        FerForImageClassification.from_pretrained(folder)
        FerImageProcessor.from_pretrained(folder)
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline
    AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
    scores = classifier(Image.new("RGB", (60, 50), (90, 120, 150)), top_k=7)
print(json.dumps({"logs": records, "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
                  "processor": type(processor).__name__, "labels": len(scores)}))
"""


@pytest.mark.parametrize("mode", ["with_fer_model", "remote_code_only"])
def test_from_pretrained_auto_classes_and_pipeline_print_no_warning(tiny_model_dir: Path, tmp_path: Path,
                                                                     mode: str) -> None:
    """With fer_model imported (its local Auto registration) and without it (the folder's own code, as a Hub user)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_MODULES_CACHE": str(tmp_path)}
    env["PYTHONPATH"] = str(REPO) if mode == "with_fer_model" else ""
    done = subprocess.run([sys.executable, "-W", "always", "-c", LOAD_EVERYTHING, str(tiny_model_dir), mode],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["logs"] == [] and report["warnings"] == []
    assert done.stderr == ""
    assert report["processor"] == "FerImageProcessor" and report["labels"] == 7
