"""The emotion timeline of a video as a PNG: per face, each emotion's probability over time.

One panel per face (the MAX_FACES faces seen in the most frames; the title says when others were left out),
one line per emotion in the app's colours (fer_model.annotation.label_colours), a gap where the face was not
seen. Readable at a glance: the smoothed scores when the analysis smoothed them (`--smooth`), the face's STRONG
top emotions (highest mean probability) drawn thick, the others thin and faint.
matplotlib's object API with the Agg canvas (no pyplot state): safe in a server's worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .annotation import label_colours
from .video_results import FaceRow, dominant_text, face_summary, rows_by_face

MAX_FACES = 6  # a crowd would make an unreadable plot; the CSV has every face
PANEL_HEIGHT_IN, WIDTH_IN, DPI = 2.0, 10.0, 100
STRONG = 2  # emotions drawn strongly per face: its top ones by mean probability


def plot_timeline(rows: Sequence[FaceRow], labels: Sequence[str], duration_s: float, interval_s: float,
                  path: str | os.PathLike) -> None:
    """Write the timeline PNG. `interval_s`: the time between analysed frames (longer gaps are drawn as gaps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_face = rows_by_face(rows)
    shown = sorted(sorted(by_face, key=lambda face_id: -len(by_face[face_id]))[:MAX_FACES])
    figure = Figure(figsize=(WIDTH_IN, 1.0 + PANEL_HEIGHT_IN * max(1, len(shown))), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(shown)), 1, sharex=True, squeeze=False)[:, 0]
    colours = label_colours(labels)
    summaries = {face_id: face_summary(face_id, by_face[face_id], labels) for face_id in shown}
    for ax, face_id in zip(axes, shown, strict=False):
        times, scores = _with_gaps(by_face[face_id], labels, 1.5 * interval_s)
        means = summaries[face_id]["mean_scores"]
        strong = sorted(labels, key=lambda label: -means[label])[:STRONG]
        for label in sorted(labels, key=lambda label: label in strong):  # the strong ones on top
            strong_line = label in strong
            style = {"linewidth": 2.4, "alpha": 1.0, "zorder": 3} if strong_line else {"linewidth": 1.0, "alpha": 0.3}
            ax.plot(times, scores[label], color=colours[label], label=label, **style)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("probability")
        ax.set_title(_panel_title(summaries[face_id]), loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    if not shown:
        axes[0].text(0.5, 0.5, "No face found in the analysed frames", ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_yticks([])
    axes[-1].set_xlim(0, max(duration_s, interval_s))
    axes[-1].set_xlabel("time (s)")
    left_out = len(by_face) - len(shown)
    title = "Emotions over time" + (f" ({left_out} more faces in emotions.csv)" if left_out > 0 else "")
    figure.suptitle(title)
    handles = [axes[0].plot([], [], color=colours[label], linewidth=3)[0] for label in labels]
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    figure.savefig(path, format="png")


def _panel_title(face: dict) -> str:
    """ "Face 2: 14 frames, mostly happy (mean 64 %)", from the face's summary (video_results.summarize_faces)."""
    mean = face["mean_scores"][face["dominant_emotion"]]
    return f"Face {face['face_id']}: {face['frames_seen']} frames, mostly {dominant_text(face)} (mean {mean:.0%})"


def _with_gaps(seen: list[FaceRow], labels: Sequence[str], max_step_s: float) -> tuple[list, dict[str, list]]:
    """Times and per-label probabilities, with a NaN point where the face was missing (matplotlib breaks there)."""
    times: list[float] = []
    scores: dict[str, list[float]] = {label: [] for label in labels}
    for previous, row in zip([None, *seen[:-1]], seen, strict=True):
        if previous is not None and row.time_s - previous.time_s > max_step_s:
            times.append((row.time_s + previous.time_s) / 2)
            for label in labels:
                scores[label].append(float("nan"))
        times.append(row.time_s)
        for label in labels:
            scores[label].append(row.shown[label])
    return times, scores
