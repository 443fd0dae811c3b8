"""Which files a run covers, what each is called, and which are refused before any reading.

Why apart from the pipeline: these answers depend on the file system alone (no catalog, no
model), so the CLI, `RAG.delete` and the change detector share them, and a file refused here
(empty, too big, a type no loader reads) costs one `stat` and is never opened.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from ingestion.loaders import AUDIO_EXTENSIONS, loader_for
from ingestion.results import FileResult

UNSUPPORTED_HINTS = {
    ".doc": "legacy Word .doc is not supported; save it as .docx",
    ".xls": "legacy Excel .xls is not supported; save it as .xlsx",
    ".ppt": "legacy PowerPoint .ppt is not supported; save it as .pptx",
    ".gif": "GIF images are not read; save the image as PNG to have it read by OCR",
}


def source_id_for(path: Path) -> str:
    """Stable id of a source: its absolute path."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files under the given paths (recursively, sorted, hidden entries skipped), and problems."""
    files: list[Path] = []
    problems: list[FileResult] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    files.append(child)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(FileResult(str(path), "failed", error="no such file or directory"))
    return files, problems


def refusal(path: Path, stat: os.stat_result, max_file_bytes: int) -> str | None:
    """Why a file is not even tried (empty, over the size limit, no reader for its type), or None."""
    if stat.st_size == 0:
        return "empty file (0 bytes)"
    if stat.st_size > max_file_bytes:
        return (f"file is {stat.st_size / 2**20:.1f} MiB, over the max_file_mb limit of "
                f"{max_file_bytes / 2**20:.0f} MiB")
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS and loader_for(path) is None:
        return UNSUPPORTED_HINTS.get(suffix) or f"unsupported file type '{path.suffix or path.name}'"
    return None
