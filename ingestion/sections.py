"""What a loader returns: the readable text of a source, in order, with where each piece sits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Section:
    """A run of text with one location: a page, a time span, or a heading."""

    text: str
    page: int | None = None
    start: float | None = None
    end: float | None = None
    heading: str | None = None


class LoadError(ValueError):
    """A file could not be read; the message is the one-line cause shown to the user."""
