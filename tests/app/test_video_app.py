"""The `predict_video` endpoint launched on localhost and driven through gradio_client, as an API user would."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import space.video_tab
from fer_model import EmotionRecognizer
from space.uploads import MAX_IMAGE_SIZE, MAX_VIDEO_SIZE
from tests.helpers.app_server import launched_demo
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.video_clips import Clip, moving_faces_clip


@pytest.fixture(scope="module")
def client(recognizer: EmotionRecognizer) -> Iterator[Client]:
    with launched_demo(recognizer) as demo:
        yield Client(demo.local_url, verbose=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return moving_faces_clip(tmp_path_factory.mktemp("clip") / "faces.mp4")


def test_predict_video_returns_the_summary_csv_video_and_timeline(client: Client, clip: Clip,
                                                                  recognizer: EmotionRecognizer) -> None:
    summary, csv_path, video_path, timeline_path = client.predict(handle_file(clip.path), api_name="/predict_video")
    assert summary["video"] == "faces.mp4" and summary["frames_analysed"] == len(clip.frames) == 20
    assert [(f["face_id"], f["frames_seen"]) for f in summary["faces"]] == [(1, 20), (2, 8)]
    assert all(f["dominant_emotion"] in recognizer.labels for f in summary["faces"])
    rows = list(csv.DictReader(Path(csv_path).open()))
    assert len(rows) == 28 and {row["face_id"] for row in rows} == {"1", "2"}
    assert Path(csv_path).name == "emotions.csv" and Path(timeline_path).name == "timeline.png"
    assert Image.open(timeline_path).format == "PNG"
    with av.open(video_path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.frames == 20
        assert (stream.width, stream.height) == clip.size
    assert "/tmp" not in json.dumps(summary)  # the summary names the video by its file name only


@pytest.mark.parametrize("name, data, phrase", [
    ("text.mp4", b"not a video\n" * 100, "not a video file"),
    ("photo.mp4", ASTRONAUT.read_bytes(), "not a video file"),
    ("empty.webm", b"", "the file is empty"),
])
def test_bad_videos_give_a_readable_error_and_the_app_keeps_answering(client: Client, clip: Clip, tmp_path: Path,
                                                                      name: str, data: bytes, phrase: str) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(tmp_path / name), api_name="/predict_video")
    message = str(caught.value)
    assert message.startswith("Cannot use this video") and phrase in message and "/tmp" not in message, message
    assert client.predict(handle_file(ASTRONAUT), api_name="/predict")[0]["face_found"] is True


def test_a_truncated_clip_is_analysed_as_far_as_it_decodes(client: Client, clip: Clip, tmp_path: Path) -> None:
    """A clip cut in the middle of its frames (index first): the frames before the cut, and a warning saying so."""
    whole = tmp_path / "whole.mp4"
    with av.open(str(clip.path)) as source, av.open(str(whole), "w", options={"movflags": "+faststart"}) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 3 // 4])
    summary = client.predict(handle_file(tmp_path / "cut.mp4"), api_name="/predict_video")[0]
    assert 0 < summary["frames_read"] < 20 and "could be decoded" in summary["warnings"][0], summary


def test_videos_may_exceed_the_image_limit(client: Client, clip: Clip, tmp_path: Path) -> None:
    """The server takes uploads of up to 50 MB for videos while images stay limited to 20 MB: a 25 MB clip (a
    valid MP4 with a 25 MB `free` box) is analysed."""
    padding = 25 * 2**20
    big = tmp_path / "big.mp4"
    big.write_bytes(clip.path.read_bytes() + (padding + 8).to_bytes(4, "big") + b"free" + bytes(padding))
    assert MAX_IMAGE_SIZE < big.stat().st_size < MAX_VIDEO_SIZE
    summary = client.predict(handle_file(big), api_name="/predict_video")[0]
    assert summary["frames_analysed"] == 20


def test_the_video_tab_states_its_limits(client: Client) -> None:
    page = json.dumps(client.config)
    assert "at most 60 s and 50 MB" in page and space.video_tab.VIDEO_LIMITS.max_seconds == 60


def test_video_tab_smooths_and_offers_summary_json_as_a_download(recognizer: EmotionRecognizer, clip: Clip) -> None:
    """The tab's handler: the smoothed analysis (the CSV has both scores), summary.json both shown and a file."""
    import app

    demo = app.build_demo(recognizer, "tiny random model")
    (analyze_clip,) = [fn.fn for fn in demo.fns.values() if fn.api_name == "analyze_clip"]
    video, timeline, table, summary, csv_path, summary_path, message = analyze_clip(str(clip.path))
    assert Path(summary_path).name == "summary.json" and json.loads(Path(summary_path).read_text()) == summary
    assert summary["smooth_frames"] == 5 and "smoothed_label" in Path(csv_path).read_text().splitlines()[0]
    assert [row[0] for row in table] == [1, 2] and "2 faces followed" in message  # numbered from 1
