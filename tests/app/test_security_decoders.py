"""The decoder attacks of issue 21 (points 2, 4, 5), replayed over HTTP against the app launched on 127.0.0.1: a
progressive JPEG that repeats its scans, and PNGs of extreme aspect ratio, each refused from its header before
decoding, by the API (an upload) and by the Live tab (a data: URL); a video whose frames grow past its header's
size, refused at the first such frame. Bounded: a few requests, each under 500 KB.
"""

from __future__ import annotations

import pytest

from fer_model.images import MAX_ASPECT, MAX_IMAGE_SIDE, MAX_SCANS
from tests.helpers.app_server import FILE_META, call, data_url, fn_index, outcome, run_event, upload
from tests.helpers.hostile_images import growing_frames_avi, png_of_shape, progressive_scan_bomb

SHAPES = [(1, 5_000_000), (5_000_000, 1), (MAX_IMAGE_SIDE + 1, 2), (4000, 4000 // (MAX_ASPECT + 1))]


def sent(url: str, endpoint: str, data: bytes, mime: str, tmp_path: object) -> tuple[str, object]:
    """The bytes to `predict` as an upload, or to the Live stream as a webcam frame (data: URL)."""
    if endpoint == "predict":
        path = tmp_path / ("hostile.jpg" if mime == "image/jpeg" else "hostile.png")
        path.write_bytes(data)
        return call(url, "predict", [{"path": upload(url, path), "meta": FILE_META, "orig_name": path.name}])
    return outcome(run_event(url, fn_index(url, "live"), [{"url": data_url(data, mime)}]))


@pytest.mark.parametrize("endpoint", ["predict", "live"])
def test_progressive_jpeg_scan_bomb(url: str, endpoint: str, tmp_path: object) -> None:
    """A 42 KB progressive JPEG repeating its last scan 300 times is refused before decoding (such files took
    10-71 s each and stalled every other request)."""
    bomb = progressive_scan_bomb(repeats=MAX_SCANS * 3)
    kind, message = sent(url, endpoint, bomb, "image/jpeg", tmp_path)
    assert kind == "error" and "scans" in str(message) and f"limit is {MAX_SCANS}" in str(message), (kind, message)
    normal = progressive_scan_bomb(side=256, repeats=0)  # a progressive JPEG as encoders write it: accepted
    assert sent(url, endpoint, normal, "image/jpeg", tmp_path)[0] == "complete"


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{w}x{h}" for w, h in SHAPES])
@pytest.mark.parametrize("endpoint", ["predict", "live"])
def test_extreme_aspect_ratio(url: str, endpoint: str, shape: tuple[int, int], tmp_path: object) -> None:
    """A 1 x 5,000,000 PNG of 10 KB (the attack used 1 x 49,000,000: 2.15 GB and 7.5 s a request), a side over
    MAX_IMAGE_SIDE or a ratio over MAX_ASPECT is refused from the header, with the reason."""
    kind, message = sent(url, endpoint, png_of_shape(*shape), "image/png", tmp_path)
    assert kind == "error" and ("side" in str(message) or "aspect" in str(message)), (kind, str(message)[:200])
    assert f"{shape[0]}x{shape[1]}" in str(message), message


@pytest.mark.parametrize("endpoint", ["predict_video", "analyze_clip"])
def test_frame_size_growing_mid_stream(url: str, endpoint: str, tmp_path: object) -> None:
    """An AVI whose header and first frames are 320x240 and whose next frames are 4096x2304 (over the 4K limit)
    is refused at the first large frame, before it is converted (OpenCV rescaled such frames to the first one's
    size and let them through: +930 MB for a 15360x8640 clip)."""
    path = growing_frames_avi(tmp_path / "growing.avi")
    video = {"path": upload(url, path), "meta": FILE_META, "orig_name": path.name}
    if endpoint == "predict_video":
        kind, message = call(url, "predict_video", [video])
    else:
        kind, message = outcome(run_event(url, fn_index(url, endpoint), [video]))
    assert kind == "error" and "frames are too large: 4096x2304" in str(message), (kind, str(message)[:200])
