"""What the Space reads: only what gradio received for this request, within the limits, through one safe loader.

An image input is a data: URL (the webcam's frames; at most MAX_IMAGE_SIZE, checked before decoding) or a file in
gradio's upload folder (uploads, snapshots, the examples' copies; at most MAX_IMAGE_SIZE), read by
fer_model.images.load_image. A video input is a file in the upload folder of at most MAX_VIDEO_SIZE (the server's
upload limit, checked again here), handed to fer_model.video, which probes the container before decoding.
Anything else (a server path, a URL) gets one generic answer that does not say whether the path exists.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import route_utils
from gradio.data_classes import ImageData
from gradio.utils import get_upload_folder, is_in_or_equal
from gradio_client.utils import is_http_url_like
from PIL import Image
from pydantic import ConfigDict, model_validator

from fer_model.images import ImageLoadError, load_image

MAX_IMAGE_SIZE = 20 * 2**20  # bytes: larger image uploads and data: URLs are refused before decoding
MAX_VIDEO_SIZE = 50 * 2**20  # bytes: gradio's upload route refuses larger files (server.LAUNCH_OPTIONS)
NOT_UPLOADED = ("Not an uploaded image: send the image itself (from gradio_client: handle_file('photo.jpg')); "
                "server paths and URLs are not read.")
NOT_UPLOADED_VIDEO = ("Not an uploaded video: send the video itself (from gradio_client: handle_file('clip.mp4')); "
                      "server paths, URLs and data: URLs are not read.")

MAX_FILES_PER_UPLOAD = 1  # every input of the page and the API is one file, uploaded alone


class OneFileUploads(route_utils.GradioMultiPartParser):
    """gradio's multipart parser for its upload route, held to one file (and a few form fields) a request: the page
    and gradio_client upload each file alone, gradio itself takes 1,000 files a request (each up to the size limit:
    40 files of 5 MB were stored in 0.9 s). A request with more gets gradio's own 400 "Too many files"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "max_files": MAX_FILES_PER_UPLOAD, "max_fields": 4})


route_utils.GradioMultiPartParser = OneFileUploads  # what gradio's upload_fn builds, looked up at each upload


def received_file(path: str | None) -> bool:
    """True for a file in gradio's upload folder: what it received (gradio's own containment check)."""
    return bool(path) and is_in_or_equal(path, get_upload_folder()) and os.path.isfile(path)


def read_upload(payload: ImageData) -> Image.Image:
    """An input gradio validated -> upright RGB image (fer_model.images.load_image), or gr.Error saying why not.
    Read: a data: URL (the webcam's frames) or a file in gradio's upload folder (what it received: uploads, snapshots,
    the examples' copies). Anything else (a server path without `meta`) gets NOT_UPLOADED, whether it exists or not.
    """
    url = payload.url or ""
    try:
        if url.startswith("data:"):
            return load_image(decode_data_url(url))
        if received_file(payload.path):
            check_size(os.path.getsize(payload.path), MAX_IMAGE_SIZE, "image")
            return load_image(payload.path)
    except ImageLoadError as error:
        raise gr.Error(f"Cannot use this file: {error}.", title="Unreadable image", print_exception=False) from None
    raise gr.Error(NOT_UPLOADED, title="Not an uploaded image", print_exception=False)


def check_size(size: int, limit: int, what: str) -> None:
    """ImageLoadError "the image is too large: 25 MB (the limit is 20 MB)" over the limit (the limit itself is ok)."""
    if size > limit:
        raise ImageLoadError(f"the {what} is too large: {size / 2**20:.0f} MB (the limit is {limit >> 20} MB)")


def decode_data_url(url: str) -> bytes:
    """The bytes of an inline image, refused before decoding when over MAX_IMAGE_SIZE (like an upload)."""
    encoded = url.partition(",")[2]
    check_size(len(encoded) * 3 // 4 - encoded[-2:].count("="), MAX_IMAGE_SIZE, "image")  # the decoded size, exactly
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageLoadError("the data: URL is not valid base64") from None


def read_video_upload(payload: ImageData) -> str:
    """An input gradio validated -> the path of the video file it received (at most MAX_VIDEO_SIZE), or gr.Error."""
    if not received_file(payload.path) or (payload.url or "").startswith("data:"):
        raise gr.Error(NOT_UPLOADED_VIDEO, title="Not an uploaded video", print_exception=False)
    try:
        check_size(os.path.getsize(payload.path), MAX_VIDEO_SIZE, "video")
    except ImageLoadError as error:
        raise gr.Error(f"Cannot use this video: {error}.", title="Video too large", print_exception=False) from None
    return payload.path


class UploadData(ImageData):
    """gradio's ImageData; a bare string (a path or URL, not a file object) is read as a path: read_upload's hint."""

    model_config = ConfigDict(json_schema_extra={"description": "A local image file: handle_file(\"photo.jpg\") "
                                                 "(at most 20 MB; URLs and server paths are not read)."})

    @model_validator(mode="before")
    @classmethod
    def string_as_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class VideoUploadData(UploadData):
    """The same file object for a video: no `meta` required, so that every refusal is read_video_upload's."""

    model_config = ConfigDict(json_schema_extra={"description": "A local video file: handle_file(\"clip.mp4\") "
                                                 "(at most 60 s and 50 MB; URLs and server paths are not read)."})


def local_file_example(name: str) -> dict[str, Any]:
    """What the API page shows as the call: handle_file('photo.jpg'), a local file (gradio's default example is a
    URL, which this server refuses)."""
    return {"path": name, "url": name, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def refuse_urls(url_or_file_path: str | Path | None, refusal: str) -> None:
    """gr.Error(refusal) for a file object naming a URL: gradio would download it into its cache (no size limit)."""
    if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):
        raise gr.Error(refusal, title="Not an uploaded file", print_exception=False)


class UploadedImage(gr.Image):
    """gr.Image whose preprocessing is read_upload: the function gets an RGB PIL image (or None when cleared).
    gradio first refuses file objects (with `meta`) outside its upload folder; this class never downloads a URL
    nor lets PIL's other decoders see the data (gradio's own preprocessing would). A subclass, not a patched
    instance: gradio re-creates a component from its class for a session's updates (it writes uploads.pyi for it).
    """

    is_template = True  # the browser draws it as a gr.Image (gradio names the block after the first base class)
    data_model = UploadData

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        refuse_urls(url_or_file_path, NOT_UPLOADED)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def example_payload(self) -> dict[str, Any]:
        return local_file_example("photo.jpg")

    def preprocess(self, payload: ImageData | None) -> Image.Image | None:
        return None if payload is None else read_upload(payload)


class UploadedVideo(gr.Video):
    """gr.Video whose preprocessing is read_video_upload: the function gets the received file's path. gr.Video's
    own preprocessing would pass any path on and may run ffmpeg on it (format, audio); here nothing is converted:
    fer_model.video probes the container (PyAV) before anything is decoded."""

    is_template = True  # the browser draws it as a gr.Video
    data_model = VideoUploadData

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        refuse_urls(url_or_file_path, NOT_UPLOADED_VIDEO)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def example_payload(self) -> dict[str, Any]:
        return local_file_example("clip.mp4")

    def preprocess(self, payload: ImageData | None) -> str | None:
        return None if payload is None else read_video_upload(payload)
