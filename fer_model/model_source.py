"""Which model every entry point uses (app, predict, video, evaluate, export-onnx, calibrate), by one function.

Order: --model, else the FER_MODEL environment variable, else the release folder beside the checkout
(../shared/models/fer-vgg16, when it holds a config.json), else the project's Hub model. A Hub id is checked before
anything loads: offline (HF_HUB_OFFLINE, or the Hub unreachable within HUB_PROBE_S) it is served from the Hugging
Face cache when it is there, and otherwise fails at once with one message listing what was tried, instead of
transformers' retries (33 s offline).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, try_to_load_from_cache

from .loading import DEFAULT_MODEL_ID, is_hub_id

CHECKOUT = Path(__file__).resolve().parents[1]
LOCAL_RELEASE = CHECKOUT.parent / "shared" / "models" / "fer-vgg16"
HUB_PROBE_S = 1.5  # how long the Hub may take to accept a connection before it is taken as unreachable


def model_candidates(cli_value: str | None = None) -> tuple[str, list[str]]:
    """(the source chosen by the order above, what was looked at on the way, in words)."""
    tried = []
    if cli_value:
        return cli_value, [f"--model {cli_value}"]
    tried.append("--model (not given)")
    if os.environ.get("FER_MODEL"):
        return os.environ["FER_MODEL"], [*tried, f"FER_MODEL={os.environ['FER_MODEL']}"]
    tried.append("FER_MODEL (not set)")
    if (LOCAL_RELEASE / "config.json").is_file():
        return str(LOCAL_RELEASE), [*tried, str(LOCAL_RELEASE)]
    tried.append(f"{LOCAL_RELEASE} (no config.json there)")
    return DEFAULT_MODEL_ID, [*tried, f"the Hub model {DEFAULT_MODEL_ID}"]


def resolve_model(cli_value: str | None = None) -> str:
    """The model folder or Hub id to load; OSError (listing what was tried) when it is a Hub id that cannot be
    had: offline and not in the cache. A Hub id in the cache while offline gives its cached snapshot folder."""
    source, tried = model_candidates(cli_value)
    if not is_hub_id(source):
        return source  # a folder: load_model says clearly if it is missing
    offline = hub_offline()
    if offline is None:
        return source
    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return str(Path(cached).parent)
    tried[-1] += f" ({offline}, and it is not in the Hugging Face cache)"
    raise OSError("No FER model could be loaded. Tried, in order: " + "; ".join(tried) + ". Point --model (or "
                  "the FER_MODEL environment variable) at a model folder written by train/train.py or "
                  "save_pretrained(), or connect to the Hub.")


def hub_offline() -> str | None:
    """Why the Hub cannot be used ("offline: HF_HUB_OFFLINE is set", "the Hub is unreachable"), or None."""
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return "offline: HF_HUB_OFFLINE is set"
    return None if hub_reachable() else f"the Hub ({constants.ENDPOINT}) is unreachable"


def hub_reachable(timeout: float = HUB_PROBE_S) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within `timeout` s (name lookup included: it runs in a
    thread that is abandoned, not waited for, when it takes longer)."""
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    reached: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=timeout).close()
            reached.append(True)
        except OSError:
            reached.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(reached and reached[0])
