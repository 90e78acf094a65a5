"""The Space's server side, beside app.py (the UI): what it reads (uploads), how it serves (server), which model it
shows (model) and the Video tab (video_tab). A local package: Spaces runs app.py from the repository root.

Importing it gives the app its own upload and cache folder, private to this process (0700), unless
GRADIO_TEMP_DIR names one: gradio's default, /tmp/gradio, is shared by every gradio app on the host, and the files
other apps left there could be named in a request (README, Reliability). gradio reads it when the app is built.
"""

import os
import tempfile

UPLOAD_FOLDER = os.environ.get("GRADIO_TEMP_DIR") or os.environ.setdefault(
    "GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="fer-space-uploads-"))
