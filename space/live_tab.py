"""The Live tab: the webcam streamed to the model, one frame every LIVE_EVERY_S, the largest face's probabilities.

gradio's webcam says nothing when the camera cannot be opened (no camera, permission denied, an http page where
browsers offer none: its getUserMedia promise is not awaited), and its button reads "Record" for what is a stream.
LIVE_JS, run once on page load (launch(js=...)), wraps navigator.mediaDevices.getUserMedia to write why into the
tab's #camera-message, and names the webcam's buttons Start / Stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr
from PIL import Image

from space.uploads import UploadedImage

LIVE_EVERY_S = 0.5  # the webcam sends one frame every 0.5 s
LIVE_LIMIT_S = 10  # a stream holds its slot 10 s, then the browser queues again; a vanished client no longer
CAMERA_MESSAGES = {
    "unsupported": "This browser offers no camera on this page: open it over https (or on localhost) in a browser "
                   "with camera support. The Photo and Video tabs work without a camera.",
    "NotAllowedError": "Camera access was denied: allow the camera for this site (the icon in the address bar), "
                       "then press the webcam area again.",
    "NotFoundError": "No camera was found: connect one, then press the webcam area again. The Photo and Video tabs "
                     "work without a camera.",
    "other": "The camera could not be opened (it may be in use by another application): close the other "
             "application, then press the webcam area again.",
}
BUTTON_NAMES = {"Record": "Start", "capture photo": "Start streaming", "stop recording": "Stop streaming"}

LIVE_JS = """
() => {
  const messages = MESSAGES, names = NAMES;
  const say = (text) => {
    const box = document.querySelector('#camera-message');
    if (box) { box.textContent = text; box.style.display = text ? 'block' : 'none'; }
  };
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia) {
    document.addEventListener('click', (event) => {
      if (event.target.closest && event.target.closest('#webcam')) say(messages.unsupported);
    }, true);
  } else {
    const open = media.getUserMedia.bind(media);
    media.getUserMedia = async (constraints) => {
      try { const stream = await open(constraints); say(''); return stream; }
      catch (error) { say(messages[error.name] || messages.other); throw error; }
    };
  }
  const rename = (root) => {
    root.querySelectorAll('button, [title], [aria-label]').forEach((node) => {
      for (const attribute of ['aria-label', 'title']) {
        const name = names[node.getAttribute(attribute)];
        if (name) node.setAttribute(attribute, name);
      }
    });
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const text = walker.currentNode.nodeValue.trim();
      if (names[text]) walker.currentNode.nodeValue = ' ' + names[text];
    }
  };
  new MutationObserver(() => {
    const webcam = document.querySelector('#webcam');
    if (webcam) rename(webcam);
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true,
                             attributeFilter: ['aria-label', 'title']});
}
""".replace("MESSAGES", json.dumps(CAMERA_MESSAGES)).replace("NAMES", json.dumps(BUTTON_NAMES))

LIVE_HELP = (f"Press the webcam area to allow the camera, then **Start**: one frame every {LIVE_EVERY_S:g} s is "
             "analysed (frames are not stored) and the largest face's emotions are shown; **Stop** ends it. One "
             f"stream at a time: each holds the model {LIVE_LIMIT_S} s, then queues again, so viewers take turns. "
             "Needs a camera, and the page over https or on localhost.")


def build_live_tab(analyse: Callable[[Image.Image], tuple[Image.Image, dict | None]]) -> None:
    """The tab's components and stream event, inside the caller's `with gr.Tab(...)`; `analyse` maps a frame to
    (annotated frame, probabilities of the largest face or None)."""

    def live(frame: Image.Image | None) -> tuple[Any, Any]:
        return (None, None) if frame is None else analyse(frame)

    gr.Markdown(LIVE_HELP, elem_id="live-help")
    gr.HTML('<div id="camera-message" role="alert" style="display:none"></div>')
    with gr.Row():
        webcam = UploadedImage(label="Webcam", sources=["webcam"], type="pil", streaming=True,
                               elem_id="webcam", webcam_options=gr.WebcamOptions(mirror=False))
        with gr.Column():
            annotated = gr.Image(label="Faces", interactive=False, elem_id="live-annotated",
                                 buttons=["download", "fullscreen"])
            probabilities = gr.Label(label="Largest face", elem_id="live-probabilities")
    webcam.stream(live, webcam, [annotated, probabilities], stream_every=LIVE_EVERY_S, time_limit=LIVE_LIMIT_S,
                  concurrency_limit=1, concurrency_id="live", api_visibility="private", show_progress="hidden")
