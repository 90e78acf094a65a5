"""Every command README.md and docs/ mark as runnable works, pasted as a reader would paste it (offline)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fer_model import EmotionRecognizer
from tests.docs.doc_blocks import APP_URL, HUB_ID, DocBlock, doc_files, marked_blocks
from tests.helpers.app_server import launched_demo
from tests.helpers.paths import FER2013_DIR, RELEASED_MODEL_DIR, REPO

BLOCKS = [block for path in doc_files(REPO) for block in marked_blocks(path)]
MISSING = {
    "model": None if (RELEASED_MODEL_DIR / "config.json").is_file() else f"no released model at {RELEASED_MODEL_DIR}",
    "data": None if FER2013_DIR.is_dir() else f"FER2013 copy not found at {FER2013_DIR}",
    "app": None,
}
TIMEOUT_S = 300


@contextlib.contextmanager
def app_url(needed: bool, tiny_model_dir: Path) -> Iterator[str]:
    """The Space on loopback (the released model when present, else the tiny one) while the block runs."""
    if not needed:
        yield APP_URL
        return
    model = RELEASED_MODEL_DIR if MISSING["model"] is None else tiny_model_dir
    with launched_demo(EmotionRecognizer.from_pretrained(model), model.name) as demo:
        yield demo.local_url


def command_for(block: DocBlock, code: str) -> list[str]:
    if block.lang == "bash":
        return ["bash", "-euo", "pipefail", "-c", code]
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_runnable_block(block: DocBlock, tmp_path: Path, tiny_model_dir: Path) -> None:
    for need in sorted(block.needs):
        if MISSING[need]:
            pytest.skip(MISSING[need])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMP_DOCS": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with app_url("app" in block.needs, tiny_model_dir) as url:
        code = block.code.replace(APP_URL, url)
        if "model" in block.needs:
            code = code.replace(HUB_ID, str(RELEASED_MODEL_DIR))  # the Hub's copy, read from disk
        result = subprocess.run(command_for(block, code), cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{block.name} exited {result.returncode}:\n{code}\n{result.stderr[-3000:]}"


def test_docs_mark_blocks_to_run() -> None:
    """The front page and the reference pages each have commands under test, not a vacuous pass."""
    files = {block.path.relative_to(REPO).as_posix() for block in BLOCKS}
    assert "README.md" in files, files
    assert {"docs/app.md", "docs/cli.md", "docs/training.md"} <= files, files


def test_marks_are_parsed_and_checked(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- runnable: needs=model,app -->\n```python\nprint(1)\n```\n"
                    "```bash\necho not marked\n```\n<!-- runnable -->\n```bash\necho a\necho b\n```\n")
    first, second = marked_blocks(page)
    assert (first.lang, first.code, first.needs, first.line) == ("python", "print(1)\n", {"model", "app"}, 3)
    assert (second.lang, second.code, second.needs) == ("bash", "echo a\necho b\n", frozenset())
    page.write_text("<!-- runnable: needs=gpu -->\n```bash\necho\n```\n")
    with pytest.raises(ValueError, match="page.md:1: bad runnable mark options 'needs=gpu'"):
        marked_blocks(page)
    page.write_text("<!-- runnable -->\n```text\nhello\n```\n")
    with pytest.raises(ValueError, match="must stand right above a ```bash or ```python block"):
        marked_blocks(page)
