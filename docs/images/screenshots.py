"""Screenshots of the Space for the docs: `python app.py` on the released model in a subprocess, headless Chromium.

Photo tab with a face near the right edge, the same tab with examples/cameraman.jpg (a head turned
three-quarters), Live tab without a camera (the button clicked), the API page; each saved as a small PNG (palette,
at most 900 px wide) named PREFIX_photo.png, PREFIX_turned.png, PREFIX_live.png, PREFIX_api.png.

    python docs/images/screenshots.py --prefix after [--model ../shared/models/fer-vgg16] [--detector haar]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from app_process import Server  # benchmarks/app_process.py: app.py on a free port

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]


def edge_photo(folder: Path) -> Path:
    """The astronaut's face moved to the right edge of a wider picture: its label used to be cut off there."""
    astronaut = Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB").resize((400, 400))
    canvas = Image.new("RGB", (900, 400), "#d8d8d8")
    canvas.paste(astronaut.crop((0, 0, 330, 400)), (570, 0))
    path = folder / "face-at-right-edge.jpg"
    canvas.save(path, quality=90)
    return path


def small_png(source: Path, target: Path) -> None:
    image = Image.open(source).convert("RGB")
    if image.width > 900:
        image = image.resize((900, round(image.height * 900 / image.width)))
    image.quantize(64).save(target, optimize=True)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "fer-vgg16"))
    parser.add_argument("--detector", default=None, help="app.py's --detector (default: the app's)")
    parser.add_argument("--only_turned", action="store_true", help="the turned-head screenshot only")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    extra = ["--detector", args.detector] if args.detector else []
    with Server(args.model, tmp / "app.log", extra) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server.url)
        page.locator("#photo input[type=file]").set_input_files(str(ROOT / "examples" / "cameraman.jpg"))
        page.wait_for_function("document.querySelector('#status').innerText.includes('found')", timeout=60_000)
        page.wait_for_timeout(2000)  # the outputs stay dimmed until gradio's last update lands
        page.hover("#annotated")
        page.screenshot(path=str(tmp / "turned.png"))
        small_png(tmp / "turned.png", HERE / f"{args.prefix}_turned.png")
        if args.only_turned:
            return
        page.reload()
        page.locator("#photo input[type=file]").set_input_files(str(edge_photo(tmp)))
        page.wait_for_function("document.querySelector('#status').innerText.includes('found')", timeout=60_000)
        page.hover("#annotated")
        page.screenshot(path=str(tmp / "photo.png"))
        small_png(tmp / "photo.png", HERE / f"{args.prefix}_photo.png")
        page.get_by_role("tab", name="Live").click()
        page.get_by_text("Click to Access Webcam").click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(tmp / "live.png"))
        small_png(tmp / "live.png", HERE / f"{args.prefix}_live.png")
        page.get_by_text("Use via API").click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(tmp / "api.png"))
        small_png(tmp / "api.png", HERE / f"{args.prefix}_api.png")
        browser.close()


if __name__ == "__main__":
    main()
