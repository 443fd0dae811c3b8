"""The loader registry: file extension -> function turning a file into `Section`s.

A registry (not a chain of ifs) so a format is one small module that registers itself, and the
pipeline asks only `loader_for(path)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingestion.sections import Section

Loader = Callable[[Path], list[Section]]
LOADERS: dict[str, Loader] = {}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4",
                    ".aiff", ".aif", ".mkv", ".mov", ".wma"}


def register(*extensions: str) -> Callable[[Loader], Loader]:
    def wrap(func: Loader) -> Loader:
        for ext in extensions:
            LOADERS[ext] = func
        return func
    return wrap


def loader_for(path: Path) -> Loader | None:
    """The loader for a file's extension (case-insensitive), or None for an unknown type."""
    return LOADERS.get(Path(path).suffix.lower())
