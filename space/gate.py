"""The one ASGI middleware in front of gradio's app, for what gradio has no setting for: it counts each session's
open event streams for space.queue_guard (a job starts only once its client listens).
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


class Gate:
    """ASGI middleware (FastAPI(middleware=[Middleware(Gate)]), i.e. LAUNCH_OPTIONS' app_kwargs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
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
