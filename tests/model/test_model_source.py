"""One model resolution for every entry point (fer_model.model_source): --model, FER_MODEL, the release folder
beside the checkout, the Hub id; offline, a Hub model not in the cache fails at once, saying what was tried.
No test reaches the network: the Hub probe is replaced wherever it could run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_model import model_source
from fer_model.__main__ import main
from fer_model.loading import DEFAULT_MODEL_ID
from tests.helpers.image_files import ASTRONAUT

COMMANDS = {  # every CLI command that loads a model, with the arguments it needs besides --model
    "predict": ["predict", str(ASTRONAUT)],
    "video": ["video", "clip.mp4", "--out", "out"],
    "evaluate": ["evaluate", "--dataset", "nowhere"],
    "export-onnx": ["export-onnx", "--out", "x.onnx"],
    "calibrate": ["calibrate", "--dataset", "nowhere"],
}


@pytest.fixture
def no_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FER_MODEL, no release folder beside the checkout, the Hub never probed unless a test says so."""
    monkeypatch.delenv("FER_MODEL", raising=False)
    monkeypatch.setattr(model_source, "LOCAL_RELEASE", tmp_path / "shared" / "models" / "fer-vgg16")
    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=0: pytest.fail("the network was probed"))
    return model_source.LOCAL_RELEASE


def test_order_cli_then_env_then_release_then_hub(no_release: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(model_source.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=0: True)  # online: the Hub id is kept
    assert model_source.resolve_model() == DEFAULT_MODEL_ID
    no_release.mkdir(parents=True)
    (no_release / "config.json").write_text("{}")
    assert model_source.resolve_model() == str(no_release)
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "env"))
    assert model_source.resolve_model() == str(tmp_path / "env")
    assert model_source.resolve_model(str(tmp_path / "cli")) == str(tmp_path / "cli")


def test_release_folder_is_beside_the_checkout() -> None:
    assert model_source.LOCAL_RELEASE == model_source.CHECKOUT.parent / "shared" / "models" / "fer-vgg16"
    assert (model_source.CHECKOUT / "fer_model" / "model_source.py").is_file()


def test_offline_missing_model_fails_at_once_listing_what_was_tried(no_release: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(no_release.parent / "empty-cache"))
    monkeypatch.setattr(model_source, "try_to_load_from_cache", lambda repo, name: None)
    with pytest.raises(OSError) as caught:
        model_source.resolve_model()
    message = str(caught.value)
    assert message.startswith("No FER model could be loaded. Tried, in order: --model (not given); FER_MODEL (not "
                              f"set); {no_release} (no config.json there); the Hub model {DEFAULT_MODEL_ID} "
                              "(offline: HF_HUB_OFFLINE is set, and it is not in the Hugging Face cache).")
    assert "--model" in message and "FER_MODEL environment variable" in message


def test_unreachable_hub_is_offline_too(no_release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(model_source.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=0: False)
    monkeypatch.setattr(model_source, "try_to_load_from_cache", lambda repo, name: None)
    with pytest.raises(OSError, match=r"--model owner/model \(the Hub \(.*\) is unreachable, and it is not in"):
        model_source.resolve_model("owner/model")


def test_offline_cached_hub_model_is_served_from_its_snapshot(no_release: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    snapshot = tmp_path / "models--owner--model" / "snapshots" / "abc"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_source, "try_to_load_from_cache",
                        lambda repo, name: str(snapshot / name) if repo == "owner/model" else None)
    assert model_source.resolve_model("owner/model") == str(snapshot)


def test_hub_probe_gives_up_quickly_on_a_closed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a port nothing listens on is refused, so the probe says unreachable (no outside network)."""
    from tests.helpers.network import free_port

    monkeypatch.setattr(model_source.constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert model_source.hub_reachable(timeout=1.0) is False


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_resolves_the_same_way(command: str, no_release: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_source, "try_to_load_from_cache", lambda repo, name: None)
    assert main(COMMANDS[command]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No FER model could be loaded. Tried, in order: --model (not given); ")
    assert len(err.splitlines()) == 1, "one message"


def test_cli_takes_fer_model(tiny_model_dir: Path, no_release: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FER_MODEL", str(tiny_model_dir))
    assert main(["predict", str(ASTRONAUT)]) == 0
    assert json.loads(capsys.readouterr().out)["face_found"] is True
