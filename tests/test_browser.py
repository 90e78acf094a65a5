"""The Space in headless Chromium (Debian's /usr/bin/chromium driven by Playwright): load, run an example, look.

Writes a full-page screenshot to tests/artifacts/browser_photo_tab.png (ignored by git) for a human to check.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import app
from fer_model import EmotionRecognizer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "browser_photo_tab.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path) -> Iterator[str]:
    demo = app.build_demo(EmotionRecognizer.from_pretrained(tiny_model_dir), "tiny random model")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def page(url: str) -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        yield page
        browser.close()


def test_example_runs_and_shows_boxes_labels_and_probabilities(page, url: str) -> None:
    labels = app.COLOURS.keys()  # the 7 FER2013 emotions of the random test model
    page.wait_for_selector("#photo")
    assert "FER-VGG16" in page.title()
    page.locator("img[src*='group.jpg']").first.click()  # the two-face example

    annotated = page.wait_for_selector("#annotated img", timeout=60_000)
    assert "/gradio_api/file=" in annotated.get_attribute("src")
    page.wait_for_function("document.querySelector('#status').innerText.includes('found')", timeout=60_000)
    assert "2 faces found" in page.inner_text("#status")
    probabilities = page.inner_text("#probabilities")
    assert "Face 2 (largest)" in probabilities and all(label in probabilities for label in labels)
    table = page.inner_text("#faces")
    assert sum(label in table for label in labels) >= 1 and "497" in table  # Grace Hopper's box x
    assert '"face_found"' in page.inner_text("#json")

    page.locator("#faces").get_by_text("135", exact=True).locator("visible=true").first.click()  # select face 1 (the astronaut)
    page.wait_for_function("document.querySelector('#probabilities').innerText.includes('Face 1')", timeout=30_000)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000


def test_live_tab_offers_the_webcam(page) -> None:
    page.get_by_role("tab", name="Live").click()
    page.wait_for_selector("text=One frame every 0.5 s")
    assert page.get_by_text("Click to Access Webcam").is_visible()
