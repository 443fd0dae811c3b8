"""Uploads: names made safe, sizes and types limited, files copied into the collection's upload
area only, then ingested off the request thread, one result line per file.

Why so strict: an upload name comes from the browser (or any HTTP client), so `../../x`, an
absolute path or a NUL byte must never reach `open()`; the copy is written to a temporary name
inside the area and renamed, and the final path is checked to lie directly in the area.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ingestion.loaders import AUDIO_EXTENSIONS, LOADERS

MAX_NAME = 160
DEFAULT_MAX_MB = 200.0


class UploadRejected(ValueError):
    """An upload refused before anything was written (bad name, empty, too big, wrong type)."""


def allowed_extensions() -> set[str]:
    """Every type the ingestion pipeline reads: documents, images (OCR), audio and video."""
    return set(LOADERS) | set(AUDIO_EXTENSIONS)


def safe_name(name: str) -> str:
    """The name as given, if it is one plain file name; otherwise `UploadRejected`.

    Refused rather than repaired: a path (`a/b`, `..\\x`, `/etc/passwd`), `..`, a NUL or other
    control character, a leading dot (hidden files, `.`), or over 160 characters. Silently
    stripping `../../etc/passwd` to `passwd` would hide an attack in a success line."""
    if not isinstance(name, str) or not name:
        raise UploadRejected("no file name")
    shown = name.encode("unicode_escape").decode("ascii")[:80]
    if "\x00" in name or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UploadRejected(f"{shown}: the name holds a NUL or control character")
    if "/" in name or "\\" in name or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise UploadRejected(f"{shown}: a path, not a file name (folders are not accepted)")
    if name in (".", "..") or name.startswith("."):
        raise UploadRejected(f"{shown}: names starting with '.' are not accepted")
    if len(name) > MAX_NAME:
        raise UploadRejected(f"{shown}...: the name is longer than {MAX_NAME} characters")
    return name


def check_upload(name: str, size: int, max_bytes: int, types: set[str] | None = None) -> str:
    """The safe name of an acceptable upload, or `UploadRejected` saying why not."""
    name = safe_name(name)
    suffix = Path(name).suffix.lower()
    if suffix not in (types if types is not None else allowed_extensions()):
        raise UploadRejected(f"{name}: type '{suffix or 'none'}' is not one the index reads")
    if size <= 0:
        raise UploadRejected(f"{name}: the file is empty (0 bytes)")
    if size > max_bytes:
        raise UploadRejected(f"{name}: {size / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB limit")
    return name


def store(area: Path, source: str | Path, name: str, max_bytes: int,
          types: set[str] | None = None) -> Path:
    """Copy an uploaded file into `area` under its checked name; returns the stored path.

    Written to `area/.partial-*` first and renamed, so a failed copy leaves nothing under the
    real name; a same-named earlier upload is replaced (its index entry then reads "updated")."""
    source = Path(source)
    size = source.stat().st_size
    name = check_upload(name, size, max_bytes, types)
    area = Path(area).resolve()
    area.mkdir(parents=True, exist_ok=True)
    target = area / name
    if target.parent != area or target.is_symlink():
        raise UploadRejected(f"{name}: would be written outside the upload area")
    partial = area / f".partial-{threading.get_ident()}-{name}"
    try:
        with open(source, "rb") as src, open(partial, "xb") as dst:
            copied = 0
            while block := src.read(1 << 20):
                copied += len(block)
                if copied > max_bytes:  # the file grew since stat()
                    raise UploadRejected(f"{name}: over the {max_bytes / 2**20:.0f} MB limit")
                dst.write(block)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass
class Line:
    """One file's outcome, as the upload panel shows it."""

    name: str
    status: str  # added | updated | unchanged | failed | rejected | cancelled
    detail: str = ""
    chunks: int = 0

    def __str__(self) -> str:
        if self.status in ("failed", "rejected", "cancelled"):
            return f"{self.status:<9} {self.name}: {self.detail}"
        return f"{self.status:<9} {self.name} ({self.chunks} chunks)"


def ingest_files(rag: Any, area: Path, uploads: Iterable[tuple[str, str | Path]], *,
                 max_bytes: int, lock: threading.Lock, cancel: threading.Event,
                 types: set[str] | None = None) -> Iterator[tuple[int, int, Line]]:
    """Store and ingest uploads one by one in a worker thread; yields (done, total, line) as
    each finishes. `cancel` stops after the file in progress (nothing half-indexed: a file's
    chunks are published together). `lock` keeps one writer per collection."""
    items = list(uploads)
    total = len(items)
    results: queue.Queue = queue.Queue()

    def work() -> None:
        with lock:
            for name, path in items:
                if cancel.is_set():
                    results.put(Line(name, "cancelled", "stopped before this file"))
                    continue
                try:
                    stored = store(area, path, name, max_bytes, types)
                except UploadRejected as exc:
                    results.put(Line(name, "rejected", str(exc).removeprefix(f"{name}: ")))
                    continue
                except OSError as exc:
                    results.put(Line(name, "failed", f"could not store it: {exc.strerror or exc}"))
                    continue
                try:
                    (r,) = rag.ingest([stored])
                    results.put(Line(name, r.status, r.error or "", r.chunks))
                except Exception as exc:  # noqa: BLE001 - a failed file never breaks the session
                    results.put(Line(name, "failed", " ".join(str(exc).split())[:300] or type(exc).__name__))
        results.put(None)

    worker = threading.Thread(target=work, name="ui-ingest", daemon=True)
    worker.start()
    done = 0
    while (line := results.get()) is not None:
        done += 1
        yield done, total, line


def remove_stored(area: Path, path: str | Path) -> bool:
    """Delete an uploaded copy, only when it lies directly in the upload area."""
    area = Path(area).resolve()
    target = Path(path).resolve()
    if target.parent == area and target.is_file():
        target.unlink()
        return True
    return False
