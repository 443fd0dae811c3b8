"""The loader registry: file extension -> function turning a file into `Section`s.

A registry (not a chain of ifs) so a format is one small module that registers itself, and the
pipeline asks only `loader_for(path)`.

Loaders that can read pixels (scanned PDF pages, images) are registered with `ocr=True`: they are
called as `loader(path, ocr=..., progress=...)` with the OCR part (`ingestion.ocr.Ocr`, or None
when the pipeline has none) and a per-page progress callback, so the reader is passed in, never
looked up or built inside a loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from ingestion.sections import Section

Loader = Callable[[Path], list[Section]]
# A streaming loader yields a large file's sections one by one (bounded memory); formats that
# have one register it next to their loader, and the pipeline uses it past `stream_file_mb`.
Streamer = Callable[[Path], Iterator[Section]]
LOADERS: dict[str, Loader] = {}
STREAMERS: dict[str, Streamer] = {}
OCR_EXTENSIONS: set[str] = set()  # their loader takes `ocr=` and `progress=` keywords
# A loader's version, raised when it reads the same bytes into different text (the PDF loader
# spelling out ligatures: 2). A file indexed by an older version of its loader is read again by
# the next ingest although its bytes did not change (ingestion.changes); 1 when never raised.
READER_VERSIONS: dict[str, int] = {}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4",
                    ".aiff", ".aif", ".mkv", ".mov", ".wma"}


def register(*extensions: str, ocr: bool = False, stream: Streamer | None = None,
             version: int = 1) -> Callable[[Loader], Loader]:
    def wrap(func: Loader) -> Loader:
        for ext in extensions:
            LOADERS[ext] = func
            READER_VERSIONS[ext] = version
            if ocr:
                OCR_EXTENSIONS.add(ext)
            if stream is not None:
                STREAMERS[ext] = stream
        return func
    return wrap


def reads_with_ocr(path: Path) -> bool:
    """Whether the loader for this file takes the OCR part (`ocr=`, `progress=` keywords)."""
    return Path(path).suffix.lower() in OCR_EXTENSIONS


def reader_version(path: Path) -> int:
    """The version of the loader that reads this file's type (1 for unknown types)."""
    return READER_VERSIONS.get(Path(path).suffix.lower(), 1)


def loader_for(path: Path) -> Loader | None:
    """The loader for a file's extension (case-insensitive), or None for an unknown type."""
    return LOADERS.get(Path(path).suffix.lower())
