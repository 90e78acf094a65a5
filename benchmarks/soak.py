"""Soak test of the Space: `python app.py` on 127.0.0.1 under a mixed loop of requests for N minutes.

What each client thread sends, in a seeded random order (the kinds of request the Space gets, good and bad):
  photo        predict on the astronaut photo (gradio_client: upload + queue)
  large photo  predict on a 24-megapixel JPEG (gradio_client)
  data url     predict on an inline data: URL, a new session each time (raw HTTP, /gradio_api/call)
  photo tab    the Photo tab's event on an uploaded photo, as the browser calls it (fn_index; an annotated copy
               is written to gradio's cache)
  live         a Live-tab stream: 6 webcam frames (data: URLs) 0.5 s apart, then closed
  refused      a truncated JPEG, a 25 MB data: URL and a server path, each of which must be refused
  hostile      one of issue 21's attacks, each of which must be refused: a progressive JPEG repeating its scans
               300 times, a 1 x 49,000,000 PNG, a 400 MB declared body, process_recording, or a flood of 8 video
               jobs joined from 8 addresses and never read (at most VIDEO_QUEUE wait; the rest answer 503)
The server's resident memory is sampled every 0.5 s; gradio's cache lives in a private GRADIO_TEMP_DIR so its
files can be counted. Prints memory at start (idle), after one round of every request (warm-up), its peak and
at the end, per minute its median and highest memory and the cache's files, and the latency (p50/p95) of the
"photo" requests, sent while the hostile ones flood the server.
Exit code 1 on any unexpected answer. A random-init model unless --model names a folder (same speed).

    python benchmarks/soak.py [--minutes 10] [--clients 3] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from app_process import ASTRONAUT, Server, save_random_model  # benchmarks/app_process.py, beside this script
from hostile import hostile_request  # benchmarks/hostile.py
from load import valid_result  # benchmarks/load.py
from PIL import Image

FILE_META = {"_type": "gradio.FileData"}
WEIGHTS = {"photo": 3, "large photo": 1, "data url": 2, "photo tab": 2, "live": 1, "refused": 2, "hostile": 3}


class Browser:
    """What the page (or curl) sends: uploads, /call/predict, the UI's events by fn_index, stream frames."""

    def __init__(self, url: str) -> None:
        self.url, self.http = url, httpx.Client(timeout=120)
        dependencies = self.http.get(f"{url}config").json()["dependencies"]
        self.fn_index = {dep["api_name"]: dep["id"] for dep in dependencies if dep.get("api_name")}

    def upload(self, path: Path) -> dict:
        response = self.http.post(f"{self.url}gradio_api/upload", files={"files": (path.name, path.read_bytes())})
        return {"path": response.raise_for_status().json()[0], "meta": FILE_META, "orig_name": path.name}

    def call(self, value: dict) -> tuple[str, Any]:
        """/gradio_api/call/predict: ("complete" | "error", the last data line, or the refusal's text)."""
        response = self.http.post(f"{self.url}gradio_api/call/predict", json={"data": [value]})
        if response.status_code != 200:  # refused before the queue (space.gate: body limit)
            return "error", response.text
        event_id = response.json()["event_id"]
        event, data = "", None
        with self.http.stream("GET", f"{self.url}gradio_api/call/predict/{event_id}") as response:
            for line in response.iter_lines():
                event = line[7:] if line.startswith("event: ") else event
                if line.startswith("data: ") and event in ("complete", "error"):
                    return event, json.loads(line[6:])
        return event, data

    def event(self, name: str, value: dict, frames: list[dict] = ()) -> list[dict]:
        """Join the queue for a UI event (and stream more frames to it, then close it); its messages."""
        session = os.urandom(8).hex()
        data = [value, False] if name == "analyze" else [value]  # the Photo tab's "whole image" box, unticked
        body = {"data": data, "fn_index": self.fn_index[name], "session_hash": session}
        event_id = self.http.post(f"{self.url}gradio_api/queue/join", json=body).json()["event_id"]
        for frame in frames:
            time.sleep(0.5)
            self.http.post(f"{self.url}gradio_api/stream/{event_id}", json={**body, "data": [frame]})
        if frames:
            self.http.post(f"{self.url}gradio_api/stream/{event_id}/close")
        messages = []
        with self.http.stream("GET", f"{self.url}gradio_api/queue/data", params={"session_hash": session}) as sse:
            for line in sse.iter_lines():
                if line.startswith("data: "):
                    messages.append(json.loads(line[6:]))
                    if messages[-1].get("msg") == "process_completed":
                        break
        return messages


def data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def make_assets(folder: Path) -> dict[str, Any]:
    """The files and payloads the requests send."""
    photo = Image.open(ASTRONAUT).convert("RGB")
    large = folder / "large.jpg"
    photo.resize((6000, 4000), Image.Resampling.BICUBIC).save(large, quality=90)  # 24 MP
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(ASTRONAUT.read_bytes()[:20_000])
    frame = io.BytesIO()
    photo.resize((640, 480)).save(frame, "JPEG", quality=80)  # about what a webcam frame weighs
    (folder / "scratch").mkdir()
    return {"large": large, "truncated": truncated, "frame": frame.getvalue(), "scratch": folder / "scratch",
            "oversize": {"url": data_url(ASTRONAUT.read_bytes() + b"\0" * (25 * 2**20))}}


def request_kinds(browser: Browser, client: Any, assets: dict[str, Any]) -> dict[str, Callable[[], bool]]:
    """Each kind of request -> a function that sends one and says whether the answer was the expected one."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    def refused() -> bool:
        try:
            client.predict(handle_file(assets["truncated"]), api_name="/predict")
            return False
        except AppError as error:
            corrupt = "truncated or corrupt" in str(error)
        too_large = browser.call(assets["oversize"])
        server_path = browser.call({"path": "/etc/hostname"})
        return corrupt and too_large[0] == server_path[0] == "error" and "too large" in str(too_large[1])

    def live() -> bool:  # a stream closed while it waited for the slot gets one final answer, no streaming ones
        final = browser.event("live", new_frame(), [new_frame() for _ in range(5)])[-1]
        return final.get("success") is True and bool(final["output"]["data"][0])

    def new_frame() -> dict:
        return {"url": data_url(assets["frame"] + os.urandom(16))}

    def predict(path: Path) -> bool:
        with unique(path, assets["scratch"]) as copy:
            return valid_result(client.predict(handle_file(copy), api_name="/predict"))

    def photo_tab() -> bool:
        with unique(ASTRONAUT, assets["scratch"]) as copy:
            return browser.event("analyze", browser.upload(copy))[-1].get("success") is True

    return {"photo": lambda: predict(ASTRONAUT), "hostile": lambda: hostile_request(browser),
            "large photo": lambda: predict(assets["large"]),
            "data url": lambda: browser.call(new_frame())[0] == "complete", "photo tab": photo_tab, "live": live,
            "refused": refused}


@contextlib.contextmanager
def unique(path: Path, scratch: Path) -> Iterator[Path]:
    """A copy with 16 random bytes after the image data (ignored by decoders): new content, so gradio caches it
    anew, as it would a new user's photo (it names cached files by their hash). Deleted after use."""
    copy = scratch / f"{os.urandom(8).hex()}-{path.name}"
    copy.write_bytes(path.read_bytes() + os.urandom(16))
    try:
        yield copy
    finally:
        copy.unlink()


def cache_files(folder: Path) -> tuple[int, float]:
    sizes = [path.stat().st_size for path in folder.rglob("*") if path.is_file()]
    return len(sizes), sum(sizes) / 2**20


def soak(url: str, rss: Callable[[], float], cache: Path, minutes: float, clients: int, seed: int) -> dict[str, Any]:
    """Warm-up (each kind once), then `clients` threads looping random kinds for `minutes`; figures as a dict."""
    from gradio_client import Client

    assets = make_assets(cache.parent)
    figures: dict[str, Any] = {"rss_start_mb": rss(), "done": Counter(), "unexpected": Counter(), "minutes": [],
                               "photo_s": []}
    warm = request_kinds(Browser(url), Client(url, verbose=False), assets)
    for name, send in warm.items():
        figures["done"][name] += 1
        figures["unexpected"][name] += not send()
    figures["rss_warm_mb"] = rss()
    samples: list[tuple[float, float]] = []
    start, deadline = time.monotonic(), time.monotonic() + minutes * 60
    lock = threading.Lock()

    def client_loop(index: int) -> None:
        kinds = request_kinds(Browser(url), Client(url, verbose=False), assets)
        pick = random.Random(seed + index)
        while time.monotonic() < deadline:
            name = pick.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
            sent = time.monotonic()
            try:
                ok = kinds[name]()
            except Exception as error:  # noqa: BLE001 -- counted and shown: the figures say what failed
                ok = False
                print(f"{name}: {type(error).__name__}: {str(error)[:160]}", flush=True)
            with lock:
                figures["done"][name] += 1
                figures["unexpected"][name] += not ok
                if name == "photo":
                    figures["photo_s"].append(time.monotonic() - sent)

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    next_minute = start + 60
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.5)
        samples.append((time.monotonic() - start, rss()))
        if time.monotonic() >= next_minute or not any(thread.is_alive() for thread in threads):
            files, size = cache_files(cache)
            minute = [mb for t, mb in samples if t >= next_minute - 60 - start]
            row = {"minute": round((time.monotonic() - start) / 60, 1), "requests": sum(figures["done"].values()),
                   "rss_median_mb": statistics.median(minute), "rss_max_mb": max(minute), "cache_files": files,
                   "cache_mb": size}
            figures["minutes"].append(row)
            print(" ".join(f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            next_minute += 60
    time.sleep(5)  # the last requests finish; the server settles
    figures.update(rss_end_mb=rss(), rss_peak_mb=max(s[1] for s in samples), samples=len(samples))
    return figures


def report(figures: dict[str, Any]) -> str:
    done, unexpected = figures["done"], figures["unexpected"]
    last = figures["minutes"][-1]
    return "\n".join([
        (f"app.py on 127.0.0.1, model: {figures['model']}, {figures['clients']} clients, "
         f"{figures['minutes_run']:.0f} min, {os.cpu_count()} CPUs"),
        "requests: " + ", ".join(f"{name} {done[name]}" for name in WEIGHTS) + f" (total {sum(done.values())})",
        f"unexpected answers: {sum(unexpected.values())}" + (f" {dict(+unexpected)}" if +unexpected else ""),
        (f"server_rss_mb start={figures['rss_start_mb']:.0f} after_warmup={figures['rss_warm_mb']:.0f} "
         f"peak={figures['rss_peak_mb']:.0f} end={figures['rss_end_mb']:.0f}"),
        "server_rss_mb median by minute: " + " ".join(f"{row['rss_median_mb']:.0f}" for row in figures["minutes"]),
        f"gradio cache at the end: {last['cache_files']} files, {last['cache_mb']:.0f} MB",
        f"photo latency among the hostile requests: p50 {percentile(figures['photo_s'], 50):.2f} s, "
        f"p95 {percentile(figures['photo_s'], 95):.2f} s ({len(figures['photo_s'])} photos)",
    ])


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--model", default=None, help="model folder (default: random init, same speed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "gradio"
        os.environ["GRADIO_TEMP_DIR"] = str(cache)  # the server's upload/cache folder, counted per minute
        model = args.model or save_random_model(Path(folder) / "fer-random")
        with Server(model, Path(folder) / "app.log") as server:
            figures = soak(server.url, server.rss_mb, cache, args.minutes, args.clients, args.seed)
            alive = server.process.poll() is None
    figures.update(model=str(args.model or "random init"), clients=args.clients, minutes_run=args.minutes)
    print(report(figures))
    sys.exit(1 if sum(figures["unexpected"].values()) or not alive else 0)


if __name__ == "__main__":
    main()
