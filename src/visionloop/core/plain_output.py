"""Plain lines on outputs that are not a terminal: no colour codes, no progress bars redrawn in place.

Libraries decide for themselves whether to draw: Ultralytics' bars redraw with ``\\r`` and ``ESC[K`` and colour their
labels whatever the output is, and Ray colours the prefixes of the worker lines it forwards. Piped to a file, that
is noise in every log line. :func:`plain_when_not_a_terminal` wraps ``sys.stdout`` and ``sys.stderr`` when they are
not terminals: escape sequences are dropped, and a line redrawn in place is written once, as it last stood.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

# CSI sequences (colours, erase line, cursor moves) and the two-byte escapes; OSC sequences (titles, links) too.
ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def last_frame(line: str) -> str:
    """What a line redrawn with carriage returns shows at the end: its last frame that is not blank."""
    frames = [frame for frame in line.split("\r") if frame.strip()]
    return frames[-1] if frames else ""


class PlainTextStream:
    """A text stream that writes to ``target`` without escape sequences, each redrawn line once.

    Text without a carriage return passes through at once; a line being redrawn is held until it ends, so a bar
    becomes one line with its final figures. Everything else (``fileno``, ``encoding``...) is the target's."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._redrawing = ""

    def write(self, text: str) -> int:
        cleaned = self._redrawing + ESCAPES.sub("", text)
        self._redrawing = ""
        *ended, tail = cleaned.split("\n")
        out = "".join(last_frame(line) + "\n" if "\r" in line else line + "\n" for line in ended)
        if "\r" in tail:
            self._redrawing = tail
        else:
            out += tail
        if out:
            self.target.write(out)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def close_line(self) -> None:
        """Write a redrawn line still held (its bar never ended its line)."""
        if self._redrawing:
            self.target.write(last_frame(self._redrawing) + "\n")
            self._redrawing = ""
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def plain_when_not_a_terminal() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`PlainTextStream` where they are not terminals (once)."""
    import atexit

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, PlainTextStream) or _is_terminal(stream):
            continue
        wrapped = PlainTextStream(stream)
        setattr(sys, name, wrapped)
        atexit.register(wrapped.close_line)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream: treat it as a file
        return False
