"""What a loader returns: the readable text of a source, in order, with where each piece sits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Section:
    """A run of text with one location: a page, a time span, or a heading."""

    text: str
    page: int | None = None
    start: float | None = None
    end: float | None = None
    heading: str | None = None
    # What the reader knows beyond the text, e.g. {"ocr": {...}} for a page read by OCR: the
    # engine, the turn, the page's confidence and one confidence per line (ingestion/ocr.py).
    meta: dict[str, Any] | None = None


class LoadError(ValueError):
    """A file could not be read; the message is the one-line cause shown to the user."""


class HeadedSections:
    """Collects a document's lines into one Section per heading, each carrying its heading trail.

    Shared by the Markdown, HTML, DOCX and ODT loaders: a level-n heading closes the current
    section and replaces the trail from level n down ("Setup > Install").
    """

    def __init__(self, skip_bare_headings: bool = False):
        self.sections: list[Section] = []
        self._trail: list[str] = []
        self._lines: list[str] = []
        self._skip_bare = skip_bare_headings

    def heading(self, level: int, title: str) -> None:
        """Close the current section; later lines belong under `title`."""
        self._emit()
        self._trail[:] = self._trail[: level - 1] + [title]

    def add(self, *lines: str) -> None:
        self._lines.extend(lines)

    def finish(self) -> list[Section]:
        self._emit()
        return self.sections

    def _emit(self) -> None:
        body = "\n".join(self._lines).strip()
        bare = bool(self._trail) and body == self._trail[-1]
        if body and not (self._skip_bare and bare):
            self.sections.append(Section(body, heading=" > ".join(self._trail) or None))
        self._lines.clear()
