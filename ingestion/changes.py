"""Decides, from the catalog, whether a file needs work: the reason a second run costs almost nothing.

A file whose size and modification time equal the manifest's is unchanged without reading it;
otherwise its content hash decides (an equal hash only refreshes the recorded size and mtime).
A file that an older version of its loader read (`reader_version`: the PDF loader now spells
out ligatures) is read again whatever its bytes, so an upgrade reaches the files indexed before.
Files that failed to load are remembered the same way, so an unchanged broken file is reported,
not re-read (or re-transcribed). This is the only part of preparing a file that touches the
catalog; loading and chunking (ingestion.preparation) never do.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ingestion.discovery import file_sha256, source_id_for
from ingestion.loaders import reader_version
from retrievers.catalog import Catalog


def content_hash_for(path: Path, reader: int | None = None) -> str:
    """The file's SHA-256; for a file its loader reads at version 2 or later, a hash of that and
    the version, so that the new reading's chunk ids (`chunk_id_for` takes the hash) differ from
    the old reading's, which stay live until the new one is published."""
    digest = file_sha256(path)
    reader = reader_version(path) if reader is None else reader
    return digest if reader <= 1 else hashlib.sha256(f"{digest}:reader{reader}".encode()).hexdigest()


@dataclass(frozen=True)
class Unchanged:
    """Indexed already with these bytes."""

    n_chunks: int


@dataclass(frozen=True)
class KnownFailure:
    """Failed before with this size and mtime; the recorded reason."""

    error: str


@dataclass(frozen=True)
class Pending:
    """New or changed: what preparing and publishing it needs."""

    source_id: str
    content_hash: str
    size: int
    mtime: float
    updated: bool  # an older version is indexed
    reader: int = 1  # the version of the loader that will read it


Decision = Unchanged | KnownFailure | Pending


class ChangeDetector:
    """Reads and writes one catalog connection; give each thread that checks files its own."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def check(self, path: Path, stat: os.stat_result) -> Decision:
        """Unchanged (size+mtime, then content hash), a known failure, or pending work."""
        source_id = source_id_for(path)
        reader = reader_version(path)
        known = self.catalog.source(source_id)
        current = known is not None and known["reader"] == reader
        if current and known["size"] == stat.st_size and known["mtime"] == stat.st_mtime:
            return Unchanged(known["n_chunks"])
        failed = self.catalog.failure(source_id)
        if failed and failed["size"] == stat.st_size and failed["mtime"] == stat.st_mtime:
            return KnownFailure(failed["error"])
        content_hash = content_hash_for(path, reader)
        if current and known["content_hash"] == content_hash:
            self.catalog.touch(source_id, stat.st_size, stat.st_mtime)
            return Unchanged(known["n_chunks"])
        return Pending(source_id, content_hash, stat.st_size, stat.st_mtime,
                       updated=known is not None, reader=reader)

    def record_failure(self, path: Path, pending: Pending, error: str) -> None:
        """Remember a broken file, so it is reported, not re-read, until it changes."""
        self.catalog.record_failure(pending.source_id, str(path.resolve()), pending.size,
                                    pending.mtime, error)
