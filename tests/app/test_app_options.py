"""`python app.py --host H --port P` (and GRADIO_SERVER_PORT as before): the server listens where it is told."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import app
from tests.helpers.network import free_port
from tests.helpers.paths import REPO


def serve(args: list[str], env: dict[str, str], port: int) -> tuple[int, str]:
    """Start app.py, wait for /gradio_api/info on the port, stop it: (HTTP status, the app's output)."""
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), *args], env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status, deadline = 0, time.monotonic() + 180
    try:
        while process.poll() is None and time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.5)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    return status, output


def test_host_and_port_options(tiny_model_dir: Path) -> None:
    port = free_port()
    env = {"GRADIO_SERVER_PORT": str(free_port()), "HF_HUB_OFFLINE": "1"}  # --port wins over the environment
    status, output = serve(["--host", "127.0.0.1", "--port", str(port), "--model", str(tiny_model_dir)], env, port)
    assert status == 200, output[-2000:]
    assert f"127.0.0.1:{port}" in output


def test_gradio_server_port_still_works(tiny_model_dir: Path) -> None:
    port = free_port()
    env = {"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    status, output = serve(["--model", str(tiny_model_dir)], env, port)
    assert status == 200, output[-2000:]


@pytest.mark.parametrize("port", ["0", "70000", "http", "-1"])
def test_a_bad_port_is_refused_with_the_reason(port: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        app.parse_args(["--port", port])
    assert "is not a port number (1 to 65535)" in capsys.readouterr().err


def test_defaults_leave_host_and_port_to_gradio() -> None:
    args = app.parse_args([])
    assert args.host is None and args.port is None  # gradio then reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    assert app.parse_args(["--host", "0.0.0.0", "--port", "8080"]).port == 8080
