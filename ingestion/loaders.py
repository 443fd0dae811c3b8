"""Format loaders, looked up by file extension in a registry (later formats register here too)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ingestion.sections import LoadError, Section

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
    return LOADERS.get(path.suffix.lower())


def read_text_file(path: Path) -> str:
    """Decode text in whatever common encoding it is in (BOMs, UTF-16, cp1252, Latin-1...)."""
    data = path.read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
                          (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError("binary or undecodable text")
    return str(best)


@register(".txt", ".text", ".rst", ".log")
def load_text(path: Path) -> list[Section]:
    text = read_text_file(path)
    if not text.strip():
        raise LoadError("no text (file is blank)")
    return [Section(text)]


HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@register(".md", ".markdown")
def load_markdown(path: Path) -> list[Section]:
    """One section per heading, carrying the heading trail (e.g. "Setup > Install")."""
    text = read_text_file(path)
    if not text.strip():
        raise LoadError("no text (file is blank)")
    sections: list[Section] = []
    trail: list[str] = []
    lines: list[str] = []
    in_code = False

    def emit() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(body, heading=" > ".join(trail) or None))
        lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            emit()
            level = len(match.group(1))
            trail[:] = trail[: level - 1] + [match.group(2)]
            lines.append(line)
        else:
            lines.append(line)
    emit()
    return sections


@register(*sorted(AUDIO_EXTENSIONS))
def load_audio_placeholder(path: Path) -> list[Section]:
    """Audio is handled by the pipeline's transcriber; this entry only marks the types as known."""
    raise LoadError("audio must be loaded through the transcriber")
