"""The library: what a collection holds (type, chunks, when), and deleting or re-ingesting one
source. Reads the catalog, the record every other part of the index is rebuilt from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

COLUMNS = ["source", "type", "chunks", "ingested", "path"]


def rows(rag: Any) -> list[list[Any]]:
    """One row per indexed source, in path order; empty for an index that holds none yet."""
    out = []
    for s in rag.index.catalog.sources():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["updated_at"]))
        out.append([Path(s["path"]).name, s["file_type"] or "?", int(s["n_chunks"]), when, s["path"]])
    return out


def choices(rag: Any) -> list[tuple[str, str]]:
    """(label, path) of every indexed source, for a "search only in" picker: the file name, with
    its folder where two sources share a name."""
    paths = [s["path"] for s in rag.index.catalog.sources()]
    names = [Path(p).name for p in paths]
    return [(name if names.count(name) == 1 else f"{name} ({Path(p).parent})", p)
            for name, p in zip(names, paths)]


def resolve(rag: Any, source: str, area: Path | None = None) -> str | None:
    """The indexed path a user named: a full path as listed, or a bare file name (unique in
    the collection). None when the collection has no such source."""
    source = (source or "").strip()
    if not source:
        return None
    paths = [s["path"] for s in rag.index.catalog.sources()]
    if source in paths:
        return source
    if area is not None and str((Path(area) / Path(source).name).resolve()) in paths:
        return str((Path(area) / Path(source).name).resolve())
    named = [p for p in paths if Path(p).name == source]
    return named[0] if len(named) == 1 else None


def delete(rag: Any, source: str, area: Path | None = None) -> tuple[str | None, int]:
    """Remove one source from the collection's index; (path, chunks removed)."""
    path = resolve(rag, source, area)
    if path is None:
        return None, 0
    return path, rag.delete(path)


def reingest(rag: Any, source: str, area: Path | None = None) -> tuple[str | None, Any]:
    """Index one source again from its file (its chunks are replaced in one step). A file that
    is gone reads `failed`; its old chunks stay until it is deleted."""
    path = resolve(rag, source, area)
    if path is None:
        return None, None
    if not Path(path).is_file():
        from ingestion.results import FileResult

        return path, FileResult(path, "failed", 0, "the file is gone; delete it from the library")
    rag.delete(path)  # a re-ingest of unchanged bytes would otherwise be a no-op ("unchanged")
    (result,) = rag.ingest([path])
    return path, result
