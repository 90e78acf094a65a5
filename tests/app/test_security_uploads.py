"""The upload-folder attacks of issue 21 (point 8), replayed over HTTP against the app launched on 127.0.0.1:
uploads land in the app's own private folder, not gradio's shared /tmp/gradio (where files other apps left could
be named in a request), one file per upload request, and the sweep leaves no empty folder behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

import space
import space.server
from fer_model import EmotionRecognizer
from tests.helpers.app_server import launched_demo, upload
from tests.helpers.image_files import ASTRONAUT


def test_uploads_go_to_the_shared_gradio_folder(url: str) -> None:
    """An upload lands in the app's own folder (0700), not in gradio's folder shared by every app on the host."""
    path = Path(upload(url, ASTRONAUT))
    assert path.is_file() and path.is_relative_to(space.UPLOAD_FOLDER), path
    assert not path.is_relative_to(Path(tempfile.gettempdir()) / "gradio"), path
    assert stat.S_IMODE(os.stat(space.UPLOAD_FOLDER).st_mode) == 0o700


def test_sweep_leaves_empty_folders(recognizer: EmotionRecognizer, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    """After the cache sweep (shortened here to every 1 s, files older than 1 s), the folder gradio made for an
    upload is gone too, not only the file (one empty folder per upload was left)."""
    monkeypatch.setattr(space.server, "DELETE_CACHE", (1, 1))
    photo = tmp_path / f"photo-{time.time_ns()}.png"  # new content: a new folder in gradio's cache
    Image.open(ASTRONAUT).rotate(time.time_ns() % 360).save(photo)
    with launched_demo(recognizer) as demo:
        folder = Path(upload(demo.local_url, photo)).parent
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
    assert not folder.exists(), sorted(folder.iterdir())


def test_one_request_uploads_many_files(url: str) -> None:
    """One upload request carried 40 files of 5 MB (1,000 allowed): now a request holds one file, the others
    answer gradio's own 400, and nothing of theirs reaches the upload folder's files gradio hands out."""
    photo = ASTRONAUT.read_bytes()
    before = {p for p in Path(space.UPLOAD_FOLDER).rglob("*") if p.is_file()}
    files = [("files", (f"photo{i}.jpg", photo)) for i in range(5)]
    response = httpx.post(f"{url}gradio_api/upload", files=files, timeout=30)
    assert response.status_code == 400 and "Too many files" in response.text, response.text[:200]
    assert not any(p.name.startswith("photo") for p in Path(space.UPLOAD_FOLDER).rglob("*") if p not in before)
    path = Path(upload(url, ASTRONAUT))  # one file a request still works
    assert path.is_file() and path.read_bytes() == photo
