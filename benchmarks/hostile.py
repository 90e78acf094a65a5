"""Issue 21's attacks for benchmarks/soak.py, one per call in turn; each must be refused (True when it was).

The hostile files come from tests/helpers/hostile_images.py (made from PIL and bytes, nothing downloaded).
"""

from __future__ import annotations

import base64
import itertools
import socket
import threading
from functools import cache
from typing import Any
from urllib.parse import urlparse

import app_process  # noqa: F401  -- benchmarks/app_process.py puts the checkout on sys.path (tests.helpers)

from tests.helpers.hostile_images import png_of_shape, progressive_scan_bomb

FLOOD = 8  # video jobs joined and never read per flood, each from its own address
_TURN = itertools.count()
_LOCK = threading.Lock()


@cache
def hostile_files() -> dict[str, str]:
    """The hostile images as data: URLs (made once)."""
    encode = base64.b64encode
    return {"scan bomb": "data:image/jpeg;base64," + encode(progressive_scan_bomb(repeats=300)).decode(),
            "1 x 49,000,000 PNG": "data:image/png;base64," + encode(png_of_shape(1, 49_000_000)).decode()}


def hostile_request(browser: Any) -> bool:
    """The next attack in turn against the server behind `browser` (soak.Browser); True when refused."""
    with _LOCK:
        turn = next(_TURN) % 5
    if turn < 2:
        name = list(hostile_files())[turn]
        kind, message = browser.call({"url": hostile_files()[name]})
        return kind == "error" and ("scans" in str(message) or "a side" in str(message))
    if turn == 2:
        return declared_body(browser.url).startswith(b"HTTP/1.1 413")
    if turn == 3:
        return browser.http.post(f"{browser.url}gradio_api/process_recording").status_code == 404
    return video_flood(browser)


def declared_body(url: str) -> bytes:
    """A POST declaring a 400 MB body, of which one byte is sent; the server's first answer bytes."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=15) as connection:
        connection.sendall(f"POST /gradio_api/call/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {400 * 2**20}\r\n\r\n{{".encode())
        return connection.recv(4096)


def video_flood(browser: Any) -> bool:
    """FLOOD video jobs joined from FLOOD addresses and never read: each accepted (200) or refused (503)."""
    statuses = []
    for address in range(FLOOD):
        body = {"data": [{"path": "clip.mp4"}], "fn_index": browser.fn_index["predict_video"],
                "session_hash": base64.b16encode(bytes([address, next(_TURN) % 256])).decode()}
        response = browser.http.post(f"{browser.url}gradio_api/queue/join", json=body,
                                     headers={"X-Forwarded-For": f"10.21.{address}.{len(statuses)}"})
        statuses.append(response.status_code)
    return set(statuses) <= {200, 503} and 503 in statuses

