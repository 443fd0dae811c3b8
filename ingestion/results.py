"""What ingesting one file ends in: a `FileResult`, with any error cut to one line.

Why a module of its own: discovery, preparation, embedding and writing all report in this one
shape, and `one_line` decides how an error reads to the user (the type name is added only where
the message alone would not explain it), so every stage must agree on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ingestion.sections import LoadError
from ingestion.timelimits import FileTimeLimit


@dataclass
class FileResult:
    path: str
    status: str  # added | updated | unchanged | failed | deleted
    chunks: int = 0
    error: str | None = None
    resumed: int = 0  # chunks an interrupted run had staged, not embedded again

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class NotConfigured(RuntimeError):
    """The file may be fine, but this pipeline cannot read its kind (so it is not remembered)."""


def file_at_fault(exc: BaseException) -> bool:
    """Whether the file itself is broken, so the failure is worth remembering until it changes."""
    from ingestion.audio import AudioDecodeError

    return isinstance(exc, (LoadError, AudioDecodeError))


def one_line(exc: BaseException) -> str:
    """The reason shown for a failed file: one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (LoadError, OSError, NotConfigured, FileTimeLimit)) and not file_at_fault(exc):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]
