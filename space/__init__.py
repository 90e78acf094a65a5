"""The Space's server side, beside app.py (the UI): what it reads (uploads), how it serves (server), which model it
shows (model) and the Video tab (video_tab). A local package: Spaces runs app.py from the repository root."""
