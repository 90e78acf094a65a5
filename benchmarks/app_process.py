"""`python app.py` in a subprocess on a free loopback port, and a random-init model folder: what the load and soak
benchmarks (and tests/app/test_app_under_load.py) start, so they measure the real entry point. The random model
(speed does not depend on the weights) serves the other benchmarks too (inference, folder_predict, video)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout (fer_model, app), no install
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (psutil if installed, else /proc/PID/status)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {pid}") from None


def save_random_model(folder: Path, int8: bool = False) -> Path:
    """A random-init model folder (weights do not change speed); with `int8`, its model_int8.onnx too."""
    import torch
    from transformers.utils import logging as transformers_logging

    from fer_model import FerConfig, FerForImageClassification, FerImageProcessor
    from fer_model.configuration import input_size
    from fer_model.onnx_runtime import INT8_FILENAME, export_onnx

    transformers_logging.disable_progress_bar()
    torch.manual_seed(0)
    config = FerConfig()
    model = FerForImageClassification(config).eval()
    model.save_pretrained(folder)
    FerImageProcessor.from_model_config(config).save_pretrained(folder)
    if int8:
        side = input_size(config)
        export_onnx(model, folder / INT8_FILENAME, calibration=torch.rand(256, 3, side, side).numpy())
    return folder


class Server:
    """`python app.py --model FOLDER` on 127.0.0.1:PORT, its output in a log file; stopped on exit."""

    def __init__(self, model: Path | str, log: Path, extra_args: list[str] | None = None,
                 startup_timeout: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
               "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        self._log = log.open("wb")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", str(model),
                                         *(extra_args or [])], cwd=ROOT, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait_until_ready(startup_timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}gradio_api/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"app.py did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
