"""A frame's error where its result would be, typed: servers answer by its kind, never by parsing its text."""

from __future__ import annotations

from visionloop.core.errors import ImageTooLarge, InvalidImageError


class FrameError(str):
    """A frame's error where a result would be: its message, plus its kind, so a server answers by the kind (413
    for an image too large, 400 for any other) and never by parsing the text. A ``str``, so every consumer that
    shows or counts errors keeps working; it pickles with its kind (Ray carries it between processes)."""

    kind: str

    def __new__(cls, message: str, kind: str = "invalid") -> FrameError:
        error = super().__new__(cls, message)
        error.kind = kind
        return error

    def __reduce__(self) -> tuple[type[FrameError], tuple[str, str]]:
        return (FrameError, (str(self), self.kind))

    @classmethod
    def of(cls, exc: Exception) -> FrameError:
        return cls(str(exc), "too_large" if isinstance(exc, ImageTooLarge) else "invalid")

    @classmethod
    def read(cls, reply: str) -> FrameError:
        """A frame's error string as its type (a plain one, e.g. "not processed: ...", reads as undecodable)."""
        return reply if isinstance(reply, FrameError) else cls(reply)

    def exception(self, name: str) -> InvalidImageError:
        """The error to raise for it at an HTTP edge, naming the upload."""
        kind = ImageTooLarge if self.kind == "too_large" else InvalidImageError
        return kind(f"image '{name}': {self}")
