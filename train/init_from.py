"""Where a run's weights start (issue 22, point 3), and how the card says so.

`--init_from MODEL` (a saved FER-VGG16 folder or Hub id) starts from ALL its weights, backbone and head, with
the recipe's new schedule: e.g. the released model continued with a longer recipe or another crop size (the
head follows a global pooling, so any input size fits). Its labels must be the dataset's, in order, and its
architecture the recipe's. The card then names it as `base_model` when it has a Hub id, and says so in words;
`--pretrained_weights FILE` is described as "backbone weights from FILE", never as ImageNet's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from fer_model import FerForImageClassification
from fer_model.loading import is_hub_id
from fer_model.modeling import PRETRAINED_TAGS


def load_init_weights(model: FerForImageClassification, init_from: str) -> None:
    """Copy every weight of `init_from` into `model` (built from the recipe), refusing other labels or shapes."""
    source = FerForImageClassification.from_pretrained(init_from)
    ours, theirs = model.config, source.config
    if list(theirs.id2label.values()) != list(ours.id2label.values()):
        raise ValueError(f"--init_from {init_from}: its labels {list(theirs.id2label.values())} are not the "
                         f"dataset's {list(ours.id2label.values())}")
    different = [name for name in ("backbone", "hidden_size") if getattr(theirs, name) != getattr(ours, name)]
    if different:
        raise ValueError(f"--init_from {init_from}: its {', '.join(f'{n}={getattr(theirs, n)!r}' for n in different)}"
                         f" differ from the recipe's; give the same architecture (--backbone, --hidden_size)")
    model.load_state_dict(source.state_dict())


def base_model_id(init_from: str) -> str | None:
    """The Hub id of the starting model: itself, or for a local folder the repo its card names (if any)."""
    if not Path(init_from).exists():
        return init_from if is_hub_id(init_from) else None
    card = Path(init_from) / "README.md"
    name = ModelCard.load(card).data.model_name if card.is_file() else None  # train.py's cards name their repo
    return name if name and is_hub_id(name) else None


def init_description(recipe: Any, options: Any) -> dict[str, Any]:
    """metrics.json's training.init: kind (model, file, imagenet, random), source, base_model (the card's)."""
    if options.init_from:
        return {"kind": "model", "source": options.init_from, "base_model": base_model_id(options.init_from)}
    if options.pretrained_weights:
        return {"kind": "file", "source": Path(options.pretrained_weights).name, "base_model": None}
    if recipe.pretrained:
        tag = f"timm/{PRETRAINED_TAGS[recipe.backbone]}"
        return {"kind": "imagenet", "source": tag, "base_model": tag}
    return {"kind": "random", "source": None, "base_model": None}
