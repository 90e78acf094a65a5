"""The one ASGI middleware in front of gradio's app, for what gradio has no setting for: only the routes the page
and the API use are served (ROUTES, the one allow-list: gradio's other routes answer 404), and each session's open
event streams are counted for space.queue_guard (a job starts only once its client listens).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

QUEUE_STREAM = re.compile(r"/gradio_api/queue/data/?$")
CALL_STREAM = re.compile(r"/gradio_api/call/(?:v2/)?[^/]+/([^/]+)/?$")
API = "/gradio_api"
ENDPOINTS = "(?:predict|predict_video)"  # the public API (app.py)
# (methods, path) of every route the page and gradio_client use; anything else answers 404. Left out on purpose:
# process_recording (ffmpeg on any media a manifest names), monitoring pages (their key is logged), file=http...
# and proxy= (the server would fetch URLs), openapi.json and /docs (they list all of the above), /run/ and /api/
# (around the queue), component_server (no component here has server functions), the vibe-*, runs, run-history,
# profiling, deep_link, dev/reload, queue/status, pwa_icon and HLS stream routes (unused).
ROUTES = [
    ("GET HEAD", "/"), ("GET", "/config/?"), ("GET", "/(?:gradio_api/)?theme\\.css"), ("GET", "/favicon\\.ico"),
    ("GET", "/robots\\.txt"), ("GET", "/manifest\\.json"), ("GET", "/(?:static|assets|svelte)/.+"),
    ("GET", f"{API}/custom_component/.+"), ("GET", f"{API}/info/?"), ("GET", f"{API}/(?:startup-events|app_id/?)"),
    ("GET", f"{API}/(?:user|login_check|token)/?"), ("GET", f"{API}/heartbeat/[^/]+"),
    ("POST", f"{API}/upload"), ("GET", f"{API}/upload_progress"),
    ("GET HEAD", f"{API}/file=(?!(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)).+"),  # a cached file; never a URL
    ("POST", f"{API}/queue/join"), ("GET", f"{API}/queue/data"),
    ("POST", f"{API}/call/{ENDPOINTS}/?"), ("GET", f"{API}/call/{ENDPOINTS}/[^/]+/?"),
    ("POST", f"{API}/stream/[^/]+(?:/close)?"),  # the Live tab's frames
    ("POST", f"{API}/(?:cancel|reset)/?"),
]
ALLOWED = [(frozenset(methods.split()), re.compile(path + "$")) for methods, path in ROUTES]
NOT_FOUND = (b'{"detail": "No such route or endpoint: this Space serves its page and its queue API only (POST '
             b'/gradio_api/call/predict or /gradio_api/call/predict_video, which join the queue, then GET the event '
             b'stream)."}')


class Gate:
    """ASGI middleware (FastAPI(middleware=[Middleware(Gate)]), i.e. LAUNCH_OPTIONS' app_kwargs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] == "http" and not allowed(scope["method"], scope["path"]):
            return await answer(send, 404, NOT_FOUND)
        guard = queue_guard(scope) if scope["type"] == "http" else None
        if guard is not None:
            guard.gated = True  # the jobs' listeners are counted: only jobs listened to start
        session = stream_session(scope) if guard is not None and scope["method"] == "GET" else None
        if session is None:
            return await self.app(scope, receive, send)
        guard.listeners[session] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            guard.listeners[session] -= 1
            if guard.listeners[session] <= 0:
                del guard.listeners[session]


def allowed(method: str, path: str) -> bool:
    """True when ROUTES lists this method and path (the whole path must match)."""
    return any(method in methods and pattern.match(path) for methods, pattern in ALLOWED)


async def answer(send: Callable, status: int, body: bytes) -> None:
    """A complete JSON response, without calling the app (nothing of the request body is read)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def stream_session(scope: Scope) -> str | None:
    """The session_hash whose events a GET streams: /queue/data?session_hash=S, or /call/NAME/EVENT_ID (the
    event's session; an API call without a session is its own event id)."""
    path = scope["path"]
    if QUEUE_STREAM.search(path):
        return (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [None])[0]
    match = CALL_STREAM.search(path)
    if not match:
        return None
    guard = queue_guard(scope)
    event = guard.queue.event_ids_to_events.get(match[1]) if guard and guard.queue else None
    return event.session_hash if event else match[1]


def queue_guard(scope: Scope) -> Any:
    """The QueueGuard installed on the served Blocks' queue, if any."""
    blocks = getattr(scope.get("app"), "blocks", None)
    return getattr(getattr(blocks, "_queue", None), "queue_guard", None)
