"""The request-body attacks of issue 21 (point 6), replayed over raw sockets against the app launched on
127.0.0.1: a body declared far over the limit is refused before it is sent, a chunked one once it passes the
limit, and the largest legitimate request still goes through. Bounded: at most ~40 MB sent, deadlines everywhere.
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlparse

import httpx

from space.gate import BODY_LIMITS
from space.uploads import MAX_IMAGE_SIZE
from tests.helpers.app_server import call, data_url
from tests.helpers.image_files import ASTRONAUT

JSON_LIMIT = BODY_LIMITS[1][1]


def raw_request(url: str, head: str, body_chunks: list[bytes], read_s: float = 15) -> tuple[bytes, int]:
    """Send a request head, then body chunks while the server has not answered; (its answer, bytes sent)."""
    address = urlparse(url)
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=read_s) as connection:
        connection.sendall(head.encode())
        answer = b""
        for chunk in body_chunks:
            if select.select([connection], [], [], 0.01)[0]:  # the server answered (or closed)
                break
            try:
                connection.sendall(chunk)
            except OSError:  # the server closed the connection
                break
            sent += len(chunk)
        deadline = time.monotonic() + read_s
        while not complete(answer) and time.monotonic() < deadline:
            try:
                data = connection.recv(65536)
            except (TimeoutError, OSError):
                break
            if not data:
                break
            answer += data
    return answer, sent


def complete(answer: bytes) -> bool:
    """True once a response's head and its Content-Length of body have arrived."""
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                   if line.startswith(b"content-length:")), None)
    return bool(_) and length is not None and len(body) >= length


def test_huge_declared_body_is_read(url: str) -> None:
    """A 400 MB body is refused from its Content-Length, before any of it is sent (it was read, 14-18 s)."""
    head = (f"POST /gradio_api/call/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {400 * 2**20}\r\n\r\n")
    answer, _ = raw_request(url, head, [b"{"])
    assert answer.startswith(b"HTTP/1.1 413") and b"Request too large" in answer, answer[:300]
    for route in ("gradio_api/upload", "gradio_api/queue/join", "gradio_api/reset"):
        response = httpx.post(f"{url}{route}", content=b"x" * (BODY_LIMITS[0][1] + 1), timeout=60)
        assert response.status_code == 413 and "the limit is" in response.text, (route, response.text[:200])


def test_chunked_body_without_length(url: str) -> None:
    """A chunked body (no Content-Length) is cut off with 413 once past the limit, not read to its end."""
    head = ("POST /gradio_api/call/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (2**20, b" " * 2**20)
    answer, sent = raw_request(url, head, [chunk] * 40)
    assert answer.startswith(b"HTTP/1.1 413") and b"Request too large" in answer, answer[:300]
    assert sent < JSON_LIMIT + 8 * 2**20, sent  # what sits in the socket buffers when the answer comes


def test_largest_legitimate_request_still_passes(url: str) -> None:
    """A 20 MB image as a data: URL (the largest JSON body the app takes) reaches the app, which reads it."""
    padded = ASTRONAUT.read_bytes() + b"\0" * (MAX_IMAGE_SIZE - ASTRONAUT.stat().st_size)
    kind, result = call(url, "predict", [{"url": data_url(padded)}], timeout=120)
    assert kind == "complete" and result[0]["face_found"] is True, (kind, str(result)[:200])
