"""Who may wait in the queue: a cap per concurrency group and per client, and no job for a client that is gone.

gradio 6.31's queue has one max_size shared by every group (33 video jobs joined and never read made
/call/predict answer "Queue is full"), no cap per client, and runs a job whose client never opened its event
stream, or left, once its turn comes (an abandoned 4K clip held the video slot for minutes). gradio has no knob
for these, so `QueueGuard` wraps the queue's own `push` (refuse before an event is made) and `get_events` (pick
the next job to start). A client is its session and its IP address (request.client.host: uvicorn takes it from
X-Forwarded-For only when the proxy is trusted, FORWARDED_ALLOW_IPS). Whether a session listens is counted by
space.gate as its event streams (/queue/data, /call/NAME/ID) open and close.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from gradio.queueing import Event, Queue
from gradio.route_utils import get_fn

CLAIM_S = 10.0  # a job starts only once its client listens; one nobody has listened to for 10 s is dropped


class QueueGuard:
    """The queue's limits beyond gradio's: `waiting[group]` jobs may wait per group, `per_client[group]` per
    session and per IP address; only jobs whose session listens start. Install with `install(queue)`."""

    def __init__(self, waiting: dict[str, int], per_client: dict[str, int], claim_s: float | None = None) -> None:
        self.waiting, self.per_client = waiting, per_client
        self.claim_s = CLAIM_S if claim_s is None else claim_s
        self.listeners: Counter[str] = Counter()  # open event streams per session_hash (space.gate)
        self.gated = False  # set by space.gate: launched without it (no LAUNCH_OPTIONS), no job waits for a listener
        self.queue: Queue | None = None

    def install(self, queue: Queue) -> None:
        """Wrap `queue.push` and `queue.get_events` (instance attributes: gradio's code calls them unchanged)."""
        self.queue = queue
        queue.queue_guard = self  # type: ignore[attr-defined]  # found by space.gate through the Blocks
        push, get_events = queue.push, queue.get_events

        async def guarded_push(body: Any, request: Any, username: str | None) -> tuple:
            if body.fn_index is not None:
                refusal = self.refusal(get_fn(queue.blocks, None, body).concurrency_id, body.session_hash,
                                       client_address(request))
                if refusal:
                    return False, refusal, "queue_full"
            return await push(body, request, username)

        def guarded_get_events() -> tuple | None:
            hidden = self.hide_unclaimed()
            try:
                return get_events()
            finally:
                for group, events in hidden.items():
                    waiting = queue.event_queue_per_concurrency_id[group].queue
                    waiting[:] = sorted(waiting + events, key=lambda event: event.enqueue_time)

        queue.push, queue.get_events = guarded_push, guarded_get_events  # type: ignore[method-assign]

    def refusal(self, group: str, session_hash: str | None, address: str | None) -> str | None:
        """Why a new job of `group` from this client may not wait, or None when it may."""
        assert self.queue is not None
        event_queue = self.queue.event_queue_per_concurrency_id.get(group)
        waiting = event_queue.queue if event_queue else []
        if group in self.waiting and len(waiting) >= self.waiting[group]:
            return (f"Queue is full: {len(waiting)} {group} jobs are already waiting (the limit is "
                    f"{self.waiting[group]}). Try again in a few minutes.")
        limit = self.per_client.get(group)
        if limit is not None:
            mine = sum(1 for event in waiting if event.session_hash == session_hash
                       or client_address(event.request) == address)
            if mine >= limit:
                return (f"Queue is full for you: you already have {mine} {group} job(s) waiting (the limit is "
                        f"{limit} per user). Wait for it to finish.")
        return None

    def listened(self, event: Event) -> bool:
        return not self.gated or self.listeners[event.session_hash] > 0

    def hide_unclaimed(self) -> dict[str, list[Event]]:
        """Take the jobs nobody listens to out of the waiting lines (gradio then picks among the rest) and drop
        those unclaimed for over claim_s; the others go back once gradio has picked. Runs under the queue's lock."""
        assert self.queue is not None
        now, hidden = time.monotonic(), {}
        for group, event_queue in self.queue.event_queue_per_concurrency_id.items():
            unclaimed = [event for event in event_queue.queue if not self.listened(event)]
            if not unclaimed:
                continue
            event_queue.queue[:] = [event for event in event_queue.queue if self.listened(event)]
            hidden[group] = [event for event in unclaimed if now - event.enqueue_time <= self.claim_s]
            for event in unclaimed:
                if now - event.enqueue_time > self.claim_s:
                    self.drop(event)
        return hidden

    def drop(self, event: Event) -> None:
        """Forget a waiting job as gradio's clean_events does (its client is gone: nobody to tell)."""
        assert self.queue is not None
        self.queue.event_ids_to_events.pop(event._id, None)
        self.queue.event_analytics.pop(event._id, None)
        pending = self.queue.pending_event_ids_session.get(event.session_hash)
        if pending is not None:
            pending.discard(event._id)
            if not pending:
                self.queue.pending_event_ids_session.pop(event.session_hash, None)


def client_address(request: Any) -> str | None:
    """The client's IP address as uvicorn resolved it (None when unknown)."""
    client = getattr(request, "client", None)
    return client.host if client else None
