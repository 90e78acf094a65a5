"""The code blocks of README.md and docs/*.md that are marked runnable, as a reader would paste them.

A block is marked by an HTML comment on the line before its opening fence (GitHub does not render it):

    <!-- runnable -->                       run it as it is
    <!-- runnable: needs=model,app -->      ... only where the released model is present, with the app launched

`needs` names what the block uses: `model` (the released model; its Hub id is read from the local copy, since
tests never reach the Hub), `data` (FER2013 at ../shared/fer2013), `app` (the Space on loopback; the block's
http://127.0.0.1:7860/ is that server). Bash blocks run with `set -euo pipefail` from the repository root,
python blocks with the repository's interpreter, both in a fresh temporary folder exported as $TMP_DOCS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARK = re.compile(r"^<!--\s*runnable(?::\s*(?P<options>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
KNOWN_NEEDS = {"model", "data", "app"}
RUNNABLE_LANGS = {"bash", "python"}
HUB_ID = "fer-vgg16/fer-vgg16"
APP_URL = "http://127.0.0.1:7860/"


@dataclass(frozen=True)
class DocBlock:
    """One marked block: where it is (for the test id), its language, its code and what it needs."""

    path: Path
    line: int
    lang: str
    code: str
    needs: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"


def parse_needs(options: str | None, where: str) -> frozenset[str]:
    """`needs=a,b` from a mark's options; anything else is an error naming the mark."""
    if not options:
        return frozenset()
    key, _, value = options.partition("=")
    needs = frozenset(part.strip() for part in value.split(",") if part.strip())
    if key.strip() != "needs" or not needs or not needs <= KNOWN_NEEDS:
        raise ValueError(f"{where}: bad runnable mark options {options!r} (use needs=model,data,app)")
    return needs


def marked_blocks(path: Path) -> list[DocBlock]:
    """The runnable blocks of one Markdown file, in order; a mark not followed by a bash/python fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        where = f"{path.name}:{index + 1}"
        fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if not fence or fence.group("lang") not in RUNNABLE_LANGS:
            raise ValueError(f"{where}: a runnable mark must stand right above a ```bash or ```python block")
        end = next((i for i in range(index + 2, len(lines)) if lines[i].startswith("```")), None)
        if end is None:
            raise ValueError(f"{where}: the block is never closed")
        code = "\n".join(lines[index + 2:end]) + "\n"
        blocks.append(DocBlock(path, index + 2, fence.group("lang"), code, parse_needs(mark.group("options"), where)))
    return blocks


def doc_files(repo: Path) -> list[Path]:
    """README.md and every page under docs/, the files a reader copies commands from."""
    return [repo / "README.md", *sorted((repo / "docs").glob("**/*.md"))]
