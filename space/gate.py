"""The one ASGI middleware in front of gradio's app, for what gradio has no setting for: only the routes the page
and the API use are served (ROUTES, the one allow-list: gradio's other routes answer 404), request bodies are held
to just above the largest legitimate one (BODY_LIMITS: refused from Content-Length before a byte of the body is
read, or once a chunked body passes it), a stream of an unknown event or session answers 404 (gradio: 200, then
a cut stream and a logged traceback), and each session's open event streams are counted for space.queue_guard (a
job starts only once its client listens).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from space.uploads import MAX_IMAGE_SIZE, MAX_VIDEO_SIZE

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
# The largest legitimate body per route: one video upload (multipart), one image as a data: URL in JSON (the
# webcam's frames, /call and /queue/join; base64 is 4/3 of the bytes); anything else is small.
BODY_LIMITS = [(re.compile(f"{API}/upload$"), MAX_VIDEO_SIZE + 2**20),
               (re.compile(f"{API}/(?:queue/join|call/|stream/)"), MAX_IMAGE_SIZE * 4 // 3 + 2**20)]
SMALL_BODY = 64 * 2**10
NO_SESSION = (b'{"detail": "No such event or session: POST /gradio_api/call/NAME (or join the queue) first, then '
              b'read its stream with the event_id (or session_hash) it answered."}')
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
        if scope["type"] == "http":
            limit = body_limit(scope["path"])
            declared = content_length(scope)
            if declared is not None and declared > limit:
                return await answer(send, 413, too_large(declared, limit))
            body = LimitedBody(receive, send, limit)
            receive, send = body.receive, body.send
        guard = queue_guard(scope) if scope["type"] == "http" else None
        if guard is not None:
            guard.gated = True  # the jobs' listeners are counted: only jobs listened to start
        session = stream_session(scope) if guard is not None and scope["method"] == "GET" else None
        if session is None:
            return await self.app(scope, receive, send)
        if session not in guard.queue.pending_messages_per_session:  # gradio would answer 200, then cut the stream
            return await answer(send, 404, NO_SESSION)
        guard.listeners[session] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            guard.listeners[session] -= 1
            if guard.listeners[session] <= 0:
                del guard.listeners[session]


def body_limit(path: str) -> int:
    return next((limit for pattern, limit in BODY_LIMITS if pattern.match(path)), SMALL_BODY)


def content_length(scope: Scope) -> int | None:
    """The declared body size (an unreadable Content-Length counts as too large)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 2**63
    return None


def too_large(size: int, limit: int) -> bytes:
    return (f'{{"detail": "Request too large: {size / 2**20:,.1f} MB (the limit is {limit / 2**20:,.1f} MB): send '
            f'images of at most {MAX_IMAGE_SIZE >> 20} MB and videos of at most {MAX_VIDEO_SIZE >> 20} MB."}}').encode()


class LimitedBody:
    """`receive` and `send` for one request whose body may not pass `limit`: once it does, the app is told the
    client left and whatever it answers is replaced by a 413 (FastAPI would turn a raised error into a 400)."""

    def __init__(self, receive: Callable, send: Callable, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.total, self.refused = 0, False

    async def receive(self) -> dict:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        self.total += len(message.get("body", b""))
        if self.total > self.limit:
            self.refused = True
            await answer(self._send, 413, too_large(self.total, self.limit))
            return {"type": "http.disconnect"}
        return message

    async def send(self, message: dict) -> None:
        if not self.refused:
            await self._send(message)


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
    queue = queue_guard(scope).queue  # as gradio's /call/NAME/ID route finds the session
    event = queue.event_ids_to_events.get(match[1])
    if event is not None:
        return event.session_hash
    return next((session for session, ids in queue.pending_event_ids_session.items() if match[1] in ids), match[1])


def queue_guard(scope: Scope) -> Any:
    """The QueueGuard installed on the served Blocks' queue, if any."""
    blocks = getattr(scope.get("app"), "blocks", None)
    return getattr(getattr(blocks, "_queue", None), "queue_guard", None)
