"""How the Space serves: the queue's limits, readable client errors, a bounded cache, memory given back.

Every event goes through the queue (`queue_every_event`): photo/API requests share the "model" group (CONCURRENCY at
a time), the Live stream and the Video analysis have their own groups of one. Each group has its own waiting line
(WAITING: a flood of videos never refuses a photo), video jobs are capped per client (PER_CLIENT), and a job starts
only once its client listens (space.queue_guard; space.gate counts the listeners).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import gradio as gr
from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from gradio.route_utils import FnIndexInferError, delete_files_created_by_app
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from space.gate import Gate
from space.queue_guard import QueueGuard
from space.uploads import MAX_IMAGE_SIZE, MAX_VIDEO_SIZE

CONCURRENCY = 2  # photo/API requests run at once: the model already uses every core of a small CPU Space
MAX_QUEUE = 32  # photo/API requests waiting beyond this are refused with "queue full" rather than piling up
LIVE_QUEUE, VIDEO_QUEUE = 4, 4  # Live streams and videos waiting (a 60-s clip takes about a minute)
VIDEO_PER_CLIENT = 1  # videos waiting per session and per IP address
MAX_FILE_SIZE = max(MAX_IMAGE_SIZE, MAX_VIDEO_SIZE)  # gradio's upload route; images are held to theirs when read
SESSIONS_KEPT = 8  # gradio keeps each session's last inputs (a data: URL in full) for its 10,000 latest by default
DELETE_CACHE = (60, 300)  # every 60 s, the uploads and outputs gradio cached over 5 minutes ago are deleted
ENDPOINT_ROUTES = re.compile(r"/gradio_api/(queue/join|run/|api/|call/)")


def queue_every_event(demo: gr.Blocks) -> gr.Blocks:
    """The queue with the app's limits, and no route around it: gradio's example loader is made with queue=False
    and api_open would let /gradio_api/run/ skip the queue."""
    for event in demo.fns.values():
        event.queue = True
    waiting = {"model": MAX_QUEUE, "live": LIVE_QUEUE, "video": VIDEO_QUEUE}
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=sum(waiting.values()), api_open=False)
    QueueGuard(waiting, {"video": VIDEO_PER_CLIENT}).install(demo._queue)
    return demo


def client_error(request: Request, error: Exception) -> Response:
    """gradio 6.31 answers an unknown fn_index or api_name (KeyError, FnIndexInferError) and an upload without a
    file name (TypeError) with HTTP 500: say what was wrong instead. Anything else stays a logged 500."""
    if isinstance(error, (KeyError, FnIndexInferError)) and ENDPOINT_ROUTES.search(request.url.path):
        return JSONResponse({"detail": "No such endpoint: unknown api_name or fn_index (see the API page)."}, 404)
    if isinstance(error, TypeError) and request.url.path.endswith("/gradio_api/upload"):
        return JSONResponse({"detail": "Upload refused: each file needs a file name."}, 400)
    logging.getLogger(__name__).error("%s %s failed", request.method, request.url.path, exc_info=error)
    return PlainTextResponse("Internal Server Error", status_code=500)


@contextlib.asynccontextmanager
async def sweep_cache(server: Any) -> AsyncIterator[None]:
    """gradio's delete_files_created_by_app every DELETE_CACHE[0] s. Not Blocks(delete_cache=...): in gradio 6.31 its
    schedule dies when a request adds a file during a sweep (set changed size), soon on a busy server."""
    async def sweep() -> None:
        while True:
            await asyncio.sleep(DELETE_CACHE[0])
            with contextlib.suppress(RuntimeError):
                await anyio.to_thread.run_sync(delete_files_created_by_app, server.get_blocks(), DELETE_CACHE[1])
            await anyio.to_thread.run_sync(remove_empty_folders, get_upload_folder(), DELETE_CACHE[1])

    task = asyncio.create_task(sweep())
    yield
    task.cancel()


# mcp_server=False: the app is no MCP server, whatever GRADIO_MCP_SERVER says (README, API)
LAUNCH_OPTIONS = dict(max_file_size=MAX_FILE_SIZE, state_session_capacity=SESSIONS_KEPT, mcp_server=False, app_kwargs={
    "lifespan": sweep_cache, "middleware": [Middleware(Gate)],
    "exception_handlers": {KeyError: client_error, TypeError: client_error, FnIndexInferError: client_error}})


def remove_empty_folders(root: str, age_s: float) -> None:
    """The empty folders under `root` untouched for age_s (gradio's sweep deletes files, not their folders: one
    per upload was left behind)."""
    now = time.time()
    for folder, subfolders, files in os.walk(root, topdown=False):
        if folder != root and not subfolders and not files:
            with contextlib.suppress(OSError):  # filled or removed meanwhile
                if now - os.stat(folder).st_mtime > age_s:
                    os.rmdir(folder)


def return_freed_memory() -> None:
    """glibc keeps freed blocks under 32 MB in per-thread arenas: each decoded photo or data: URL would raise the
    server's memory for good (benchmarks/soak.py). Mmap blocks of 1 MB+ (freed for real), 2 arenas; glibc only."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 2**20)  # M_MMAP_THRESHOLD: 1 MB, fixed
        libc.mallopt(-8, 2)  # M_ARENA_MAX
