"""The Space in headless Chromium (Debian's /usr/bin/chromium driven by Playwright): load, run an example, look.

The Live tab streams Chromium's fake camera, fed with the astronaut photo as a Y4M video; the Video tab gets a clip
made from the examples. Full-page screenshots go to tests/artifacts/browser_photo_tab.png, browser_live_tab.png and
browser_video_tab.png (ignored by git) for a human to check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from fer_model import EmotionRecognizer
from fer_model.images import load_image
from tests.helpers.image_files import ASTRONAUT, GROUP
from tests.helpers.paths import ARTIFACTS
from tests.helpers.video_clips import moving_faces_clip

CHROMIUM = Path("/usr/bin/chromium")
LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # the random test model's
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")


def write_y4m(image: Image.Image, path: Path, frames: int = 2) -> Path:
    """A raw YUV 4:2:0 video of one still image: what Chromium's fake camera can play."""
    ycc = np.asarray(image.convert("YCbCr"))
    half = (image.width // 2, image.height // 2)
    planes = [ycc[..., 0]] + [np.asarray(Image.fromarray(ycc[..., c]).resize(half)) for c in (1, 2)]
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{image.width} H{image.height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + b"".join(plane.tobytes() for plane in planes))
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def page(url: str, playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    camera = write_y4m(Image.open(ASTRONAUT).convert("RGB").resize((640, 640)).crop((0, 80, 640, 560)),
                       tmp_path_factory.mktemp("camera") / "astronaut.y4m")
    fake_camera = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                   f"--use-file-for-fake-video-capture={camera}"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_camera)
    context = browser.new_context(viewport={"width": 1280, "height": 1400}, permissions=["camera"])
    page = context.new_page()
    page.goto(url)
    yield page
    browser.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    return ARTIFACTS / name


def test_example_runs_and_shows_boxes_labels_and_probabilities(page, recognizer: EmotionRecognizer) -> None:
    labels = recognizer.labels  # the 7 FER2013 emotions of the random test model
    expected = recognizer.recognize(load_image(GROUP))["faces"]
    astronaut_x, hopper_x = (str(face["box"][0]) for face in expected)  # left to right
    page.wait_for_selector("#photo")
    assert "FER-VGG16" in page.title()
    page.locator("img[src*='group.jpg']").first.click()  # the two-face example

    annotated = page.wait_for_selector("#annotated img", timeout=60_000)
    assert "/gradio_api/file=" in annotated.get_attribute("src")
    image_top = page.eval_on_selector("#annotated img", "e => e.getBoundingClientRect().top")
    for overlay in ("#annotated .icon-button-wrapper", "#annotated label[data-testid=block-label]"):
        bottom = page.eval_on_selector(overlay, "e => e.getBoundingClientRect().bottom")
        assert image_top >= bottom, f"{overlay} covers the top of the annotated image (labels drawn there)"
    page.wait_for_function("document.querySelector('#status').innerText.includes('found')", timeout=60_000)
    assert "2 faces found" in page.inner_text("#status")
    probabilities = page.inner_text("#probabilities")
    assert "Face 2 (largest)" in probabilities and all(label in probabilities for label in labels)
    table = page.inner_text("#faces")
    assert sum(label in table for label in labels) >= 1 and hopper_x in table  # Grace Hopper's box x
    assert '"face_found"' in page.inner_text("#json")

    astronaut_cell = page.locator("#faces").get_by_text(astronaut_x, exact=True).locator("visible=true").first
    astronaut_cell.click()  # select face 1 (the astronaut)
    page.wait_for_function("document.querySelector('#probabilities').innerText.includes('Face 1')", timeout=30_000)

    assert screenshot(page, "browser_photo_tab.png").stat().st_size > 50_000


def test_no_face_example_says_so_without_an_emotion(page, recognizer: EmotionRecognizer) -> None:
    page.wait_for_selector("#photo")
    page.locator("img[src*='cat.jpg']").first.click()  # the photo without a person
    page.wait_for_function("document.querySelector('#status').innerText.includes('No face found')", timeout=60_000)
    assert "so no emotion" in page.inner_text("#status")
    assert not any(label in page.inner_text("#probabilities") for label in recognizer.labels)
    assert '{"face_found":false,"faces":[]}' in "".join(page.inner_text("#json").split())
    page.locator("#whole-image input").check()  # asked for: the whole image is classified, and says so
    page.wait_for_function("document.querySelector('#status').innerText.includes('as asked')", timeout=60_000)
    assert sum(label in page.inner_text("#probabilities") for label in recognizer.labels) == len(recognizer.labels)


def test_live_tab_streams_the_webcam_and_labels_the_face(page, recognizer: EmotionRecognizer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams past the stream time limit: the browser queues again by itself and frames keep being analysed."""
    analysed: list[float] = []
    recognize = recognizer.recognize
    monkeypatch.setattr(recognizer, "recognize",
                        lambda image, **options: analysed.append(time.monotonic()) or recognize(image, **options))
    page.get_by_role("tab", name="Live").click()
    assert "Start" in page.inner_text("#live-help") and f"{app.LIVE_LIMIT_S} s" in page.inner_text("#live-help")
    page.get_by_text("Click to Access Webcam").click()
    start = page.locator("#webcam button[aria-label='Start streaming']")
    assert start.inner_text().strip() == "Start"  # gradio's "Record", named for what it does
    start.click()
    started = time.monotonic()
    page.wait_for_selector("#live-annotated img", timeout=60_000)
    page.wait_for_function("document.querySelector('#live-probabilities').innerText.includes('%')", timeout=60_000)
    live = page.inner_text("#live-probabilities")
    assert all(label in live for label in recognizer.labels)
    screenshot(page, "browser_live_tab.png")
    time.sleep(max(0.0, started + app.LIVE_LIMIT_S + 3 - time.monotonic()))
    assert [t for t in analysed if t > started + app.LIVE_LIMIT_S + 1], "the stream stopped at its time limit"
    assert not page.locator(".toast-body").all_inner_texts()  # no error shown
    assert not page.locator("#camera-message").is_visible()  # the camera opened: no message
    page.locator("#webcam button[aria-label='Start streaming']").click()  # "Stop"


@pytest.mark.parametrize("camera, permissions, expected", [
    ([], ["camera"], "No camera was found"),  # permission granted, no camera at all
    (["--use-fake-device-for-media-stream"], [], "Camera access was denied"),  # a camera, the permission refused
])
def test_live_tab_says_why_the_camera_cannot_be_opened(url: str, playwright, camera: list[str],
                                                       permissions: list[str], expected: str) -> None:
    """No camera or permission denied: a message under the tab's help, not a silent button."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + camera)
    page = browser.new_context(permissions=permissions).new_page()
    page.goto(url)
    page.get_by_role("tab", name="Live").click()
    assert not page.locator("#camera-message").is_visible()
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_selector("#camera-message", state="visible", timeout=30_000)
    assert expected in page.inner_text("#camera-message")
    if permissions:
        screenshot(page, "browser_live_no_camera.png")
    browser.close()


def test_video_tab_analyses_an_uploaded_clip(page, tmp_path: Path) -> None:
    """Upload a 1 s clip (two faces, one entering and leaving): the annotated video plays in Chromium (H.264), the
    timeline, the faces table, the summary and the CSV appear."""
    clip = moving_faces_clip(tmp_path / "two-faces.mp4", seconds=1.0, enter_leave=(0.3, 0.8))
    page.get_by_role("tab", name="Video").click()
    assert "at most 60 s and 50 MB" in page.inner_text("body")
    page.locator("#video input[type=file]").set_input_files(str(clip.path))
    page.wait_for_function("document.querySelector('#video-status').innerText.includes('followed')", timeout=120_000)
    assert "2 faces followed over 10 analysed frames" in page.inner_text("#video-status")
    video = page.wait_for_selector("#video-annotated video", timeout=60_000)
    assert "annotated.mp4" in video.get_attribute("src")
    page.wait_for_function("document.querySelector('#video-annotated video').readyState >= 2", timeout=30_000)
    assert page.evaluate("document.querySelector('#video-annotated video').videoWidth") == clip.size[0]  # decoded
    timeline = page.wait_for_selector("#video-timeline img", timeout=30_000)
    assert "timeline.png" in timeline.get_attribute("src")
    page.wait_for_function("document.querySelector('#video-timeline img').naturalWidth > 0", timeout=30_000)
    faces = page.inner_text("#video-faces")
    assert "dominant emotion" in faces and sum(label in faces for label in LABELS) >= 1
    assert "emotions.csv" in page.inner_text("#video-csv") and '"frames_analysed"' in page.inner_text("#video-summary")
    assert not page.locator(".toast-body").all_inner_texts()  # no error shown
    page.evaluate("document.querySelector('#video-annotated video').currentTime = 0.5")
    time.sleep(1)  # the frame at 0.5 s, with both faces boxed, in the screenshot
    assert screenshot(page, "browser_video_tab.png").stat().st_size > 50_000
