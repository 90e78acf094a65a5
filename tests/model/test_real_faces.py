"""16 real FER2013 faces through the processor and a (random-init) model, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fer_model import FerForImageClassification, FerImageProcessor
from tests.helpers.paths import FER2013_DIR, needs_fer2013


@needs_fer2013
def test_sixteen_real_faces_end_to_end(tiny_model_dir: Path) -> None:
    from datasets import load_dataset

    faces = load_dataset(str(FER2013_DIR), split="test[:16]")
    images = list(faces["image"])
    assert len(images) == 16 and all(image.size == (48, 48) for image in images)
    processor = FerImageProcessor.from_pretrained(tiny_model_dir)
    model = FerForImageClassification.from_pretrained(tiny_model_dir).eval()
    pixel_values = processor(images)["pixel_values"]
    # 48x48 faces need no resize: channel 0 is exactly the normalised original grey values.
    originals = torch.from_numpy(np.stack([np.asarray(image.convert("L")) for image in images])).float() / 255
    torch.testing.assert_close(pixel_values[:, 0] * processor.image_std[0] + processor.image_mean[0], originals,
                               atol=1e-5, rtol=0)
    with torch.inference_mode():
        output = model(pixel_values, labels=torch.tensor(list(faces["label"])))
    assert output.logits.shape == (16, 7)
    assert torch.isfinite(output.loss)
    assert set(model.config.id2label.values()) == set(faces.features["label"].names)
