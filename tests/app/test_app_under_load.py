"""A small load test of the real entry point (`python app.py` on 127.0.0.1): 5 gradio_client clients for 10 s.

benchmarks/load.py runs the full version (20 clients, 60 s) and prints the figures; here it must end with
0 errors, every response in the documented schema, and a server that still enforces its upload limit.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.image_files import ASTRONAUT
from tests.helpers.paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmarks import their neighbours by name
import load  # noqa: E402  benchmarks/load.py
from app_process import Server  # noqa: E402  benchmarks/app_process.py

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with Server(tiny_model_dir, tmp_path_factory.mktemp("app") / "app.log") as server:
        yield server


def test_five_clients_for_ten_seconds_without_errors(server) -> None:
    rss_before = server.rss_mb()
    figures = load.run_load(server.url, clients=5, seconds=10, image=ASTRONAUT, max_requests=2000, rss=server.rss_mb)
    print("\n" + load.report({**figures, "rss_start_mb": rss_before, "rss_warm_mb": rss_before,
                              "rss_after_mb": server.rss_mb(), "model": "tiny random", "image": ASTRONAUT.name}))
    assert figures["errors"] == 0, figures["error_kinds"]
    assert figures["ok"] == figures["requests"] >= 5  # every response had the schema (else it counts as an error)
    assert figures["face_found"] == {True: figures["ok"]}  # the astronaut's face, every time
    assert figures["threads_alive"] == 0 and figures["wall_s"] < 10 + 60
    assert math.isfinite(figures["p50_ms"]) and figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    assert server.process.poll() is None, server.log_tail()
    assert server.rss_mb() - rss_before < 300  # no runaway growth over ~100 requests


def test_the_real_entry_point_enforces_the_upload_limit(server) -> None:
    """app.py launches with max_file_size: over 50 MB (the video limit; images are held to 20 MB when read) is
    refused by the server itself."""
    assert httpx.get(f"{server.url}config", timeout=10).json()["max_file_size"] == 50 * 1024 * 1024
    body = b"\xff\xd8\xff" + b"\0" * (50 * 1024 * 1024 + 1024)
    response = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("big.jpg", body, "image/jpeg")},
                          timeout=60)
    assert response.status_code == 413 and "maximum allowed size of 52428800 bytes" in response.text
    assert "Traceback" not in response.text and "/tmp" not in response.text


def test_the_real_entry_point_builds_the_module_demo_with_its_guards(server, tiny_model_dir: Path) -> None:
    """`python app.py --model FOLDER` serves the module-level demo: the folder's name in the header (not its path),
    no route around the queue, unknown endpoints answered 404."""
    config = httpx.get(f"{server.url}config", timeout=10).text
    assert f"Model: `{tiny_model_dir.name}`" in config and str(tiny_model_dir.parent) not in config
    response = httpx.post(f"{server.url}gradio_api/run/predict", json={"data": [None]}, timeout=30)
    assert response.status_code == 404 and "join the queue" in response.text
    response = httpx.post(f"{server.url}gradio_api/queue/join", json={"data": [], "fn_index": 99, "session_hash": "x"},
                          timeout=30)
    assert response.status_code == 404, response.text
