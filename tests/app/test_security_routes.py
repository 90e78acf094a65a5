"""The route attacks of issue 21 (point 3), replayed over HTTP against the app launched on 127.0.0.1: gradio's
routes that the app does not use (process_recording, the monitoring pages, file=URL, openapi.json...) answer 404,
and what the page and gradio_client use still answers. The allow-list is space.gate.ROUTES.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from space.gate import allowed
from tests.helpers.app_server import FILE_META, call, upload
from tests.helpers.image_files import ASTRONAUT

DASH = (b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period><AdaptationSet>'
        b'<Representation id="1" bandwidth="1"><BaseURL>/etc/hostname</BaseURL></Representation></AdaptationSet>'
        b'</Period></MPD>')
UNUSED = [  # (method, path): what an attacker finds in /openapi.json and gradio's source
    ("POST", "gradio_api/process_recording"), ("GET", "monitoring"), ("GET", "monitoring/summary"),
    ("GET", "monitoring/0123456789abcdef"), ("GET", "gradio_api/file=http://example.com/face.jpg"),
    ("GET", "gradio_api/file=https://example.com/face.jpg"), ("GET", "gradio_api/file=//example.com/face.jpg"),
    ("GET", "gradio_api/proxy=https://example.com/"), ("GET", "openapi.json"), ("GET", "gradio_api/openapi.json"),
    ("GET", "docs"), ("POST", "gradio_api/component_server"), ("GET", "gradio_api/queue/status"),
    ("POST", "gradio_api/run/predict"), ("POST", "gradio_api/api/predict"), ("POST", "gradio_api/call/v2/predict"),
    ("GET", "gradio_api/vibe-code"), ("POST", "gradio_api/vibe-edit"), ("GET", "gradio_api/runs"),
    ("GET", "gradio_api/profiling/summary"), ("GET", "gradio_api/deep_link"), ("GET", "gradio_api/dev/reload"),
    ("GET", "gradio_api/file/etc/hostname"), ("GET", "pwa_icon"), ("GET", "gradio_api/run-history/buckets"),
    ("GET", "gradio_api/stream/s/0/1/playlist.m3u8"), ("POST", "gradio_api/call/no_such_endpoint"),
]


@pytest.mark.parametrize(("method", "path"), UNUSED, ids=[f"{m} {p}" for m, p in UNUSED])
def test_unused_gradio_routes_are_served(url: str, method: str, path: str) -> None:
    """Each route the app does not use answers 404 with a reason, whatever the method (the monitoring pages
    named the hidden functions; process_recording ran ffmpeg on any file a DASH manifest named)."""
    files = {"video": ("clip.mpd", DASH, "application/dash+xml")} if "process_recording" in path else None
    response = httpx.request(method, f"{url}{path}", files=files, timeout=30)
    assert response.status_code == 404 and "No such route" in response.text, (response.status_code,
                                                                             response.text[:200])
    other = "GET" if method == "POST" else "POST"
    assert httpx.request(other, f"{url}{path}", timeout=30).status_code == 404


def test_what_the_page_and_the_client_use_still_answers(url: str) -> None:
    """The page, its config and assets, the API page's info, uploads, cached files and the queue API."""
    for path in ("", "config", "gradio_api/info", "theme.css", "manifest.json"):
        response = httpx.get(f"{url}{path}", timeout=30)
        assert response.status_code == 200, (path, response.status_code)
    path = upload(url, ASTRONAUT)
    assert httpx.get(f"{url}gradio_api/file={path}", timeout=30).status_code == 200
    kind, result = call(url, "predict", [{"path": path, "meta": FILE_META, "orig_name": "a.jpg"}])
    assert kind == "complete" and result[0]["face_found"] is True


def test_allow_list() -> None:
    """space.gate.ROUTES, the one list: whole paths only, the public endpoints only, never a URL as a file."""
    for method, path in [("GET", "/"), ("GET", "/config"), ("POST", "/gradio_api/upload"),
                         ("POST", "/gradio_api/call/predict"), ("GET", "/gradio_api/call/predict_video/abc"),
                         ("GET", "/gradio_api/file=/tmp/gradio/x/a.jpg"), ("POST", "/gradio_api/stream/e1/close"),
                         ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/queue/data")]:
        assert allowed(method, path), (method, path)
    for method, path in [("POST", "/"), ("GET", "/config/x"), ("GET", "/gradio_api/upload"),
                         ("POST", "/gradio_api/call/analyze"), ("GET", "/gradio_api/file=HTTP://x/a.jpg"),
                         ("GET", "/gradio_api/file=data:image/png;base64,AA"), ("GET", "/gradio_api/queue/data/x")]:
        assert not allowed(method, path), (method, path)


def test_requests_that_raised_http_500(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Each answered 500 (or 200, then a cut stream) with a traceback in the log: now a 4xx saying what was wrong,
    and nothing logged with a traceback."""
    requests = [("POST", "gradio_api/call/v2/predict", {"data": [1]}),
                ("POST", "gradio_api/component_server", {"component_id": 99999, "fn_name": "x", "data": None,
                                                         "session_hash": "x"}),
                ("GET", "gradio_api/call/predict/0123456789abcdef", None),
                ("GET", "gradio_api/queue/data?session_hash=no-such-session", None)]
    with caplog.at_level(logging.INFO):
        for method, path, body in requests:
            response = httpx.request(method, f"{url}{path}", json=body, timeout=30)
            assert 400 <= response.status_code < 500 and "No such" in response.text, (path, response.status_code,
                                                                                      response.text[:200])
            assert "Traceback" not in response.text
    assert not [record for record in caplog.records if record.exc_info], [r.getMessage() for r in caplog.records]
