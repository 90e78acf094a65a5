"""Where the repository and the shared assets (FER2013, the released model) are, and skip marks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FER2013_DIR = SHARED / "fer2013"
RELEASED_MODEL_DIR = SHARED / "models" / "fer-vgg16"
ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots and counts for a human to look at (ignored by git)

needs_fer2013 = pytest.mark.skipif(not FER2013_DIR.is_dir(), reason=f"FER2013 copy not found at {FER2013_DIR}")
needs_released_model = pytest.mark.skipif(
    not (RELEASED_MODEL_DIR / "config.json").is_file(),
    reason=f"no released model at {RELEASED_MODEL_DIR} (published by a train/train.py run)",
)
