"""The API page as a new user reads it: every parameter and output named and described, snippets that send a local
file (the server reads no URL), and the README's snippet run as written through gradio_client."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from gradio_client import Client

from tests.helpers.image_files import ASTRONAUT
from tests.helpers.paths import REPO

GENERATED = re.compile(r"^(parameter|value)_\d+$")
EXPECTED = {"/predict": (["image"], ["faces", "annotated image"]),
            "/predict_video": (["video"], ["summary", "csv", "annotated video", "timeline"])}
README_URL = "http://127.0.0.1:7860/"


def api_info(url: str) -> dict:
    return Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_every_parameter_and_output_is_named_and_described(url: str) -> None:
    endpoints = api_info(url)
    assert set(endpoints) == set(EXPECTED)
    for name, (parameters, outputs) in EXPECTED.items():
        info = endpoints[name]
        assert [p["label"] for p in info["parameters"]] == parameters
        assert [p["parameter_name"] for p in info["parameters"]] == parameters
        assert [r["label"] for r in info["returns"]] == outputs
        labels = [p["label"] for p in info["parameters"] + info["returns"]]
        assert not [label for label in labels if GENERATED.match(label)], labels
        assert "handle_file(" in info["description"] and "URLs" in info["description"]
        assert all("handle_file" in p["python_type"]["description"] for p in info["parameters"])


def test_the_api_page_snippets_send_a_local_file_not_a_url(url: str) -> None:
    """The page renders example_input as handle_file('<url>'): a local name here, never an http(s) address."""
    examples = {name: info["parameters"][0]["example_input"] for name, info in api_info(url).items()}
    assert examples["/predict"]["url"] == "photo.jpg" and examples["/predict_video"]["url"] == "clip.mp4"
    assert not any("http" in str(example) for example in examples.values())


def test_mcp_is_off(url: str) -> None:
    assert httpx.get(f"{url}gradio_api/mcp/schema", timeout=10).status_code == 404


def readme_snippet() -> str:
    """docs/app.md's Python block that calls /predict with a local photo.jpg (the API page's own form)."""
    for block in re.findall(r"```python\n(.*?)```", (REPO / "docs" / "app.md").read_text(), re.DOTALL):
        if 'api_name="/predict"' in block:
            return block
    raise AssertionError("no documented /predict snippet")


def test_the_documented_snippet_runs_end_to_end_with_a_local_file(url: str, tmp_path: Path) -> None:
    snippet = readme_snippet()
    assert README_URL in snippet and 'handle_file("photo.jpg")' in snippet
    shutil.copy(ASTRONAUT, tmp_path / "photo.jpg")
    (tmp_path / "snippet.py").write_text(snippet.replace(README_URL, url))
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found, count, annotated = done.stdout.strip().splitlines()[-1].split()  # after "Loaded as API: ..."
    assert found == "True" and count == "1" and Path(annotated).suffix == ".jpeg" and Path(annotated).is_file()
