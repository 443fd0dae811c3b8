"""Errors the retrieval layer raises on purpose, each a one-line explanation naming the file,
collection or setting and what to do.

They live here, not in `rag`, because layers depend one way (ui -> rag -> ingestion ->
retrievers): a store must be able to say "locked" or "built differently" without importing the
layer above it. `rag.errors` re-exports them so callers of the Python API catch one family.
"""

import errno


class RetrieverError(Exception):
    """Base class of the retrieval layer's user-facing errors."""


class IndexLockedError(RetrieverError):
    """Another process owns the embedded index directory."""


class StoreConfigError(RetrieverError):
    """A store or reranker was asked for something its data or files cannot give (a collection
    built with other settings, a missing model folder, a feature it was not opened with)."""


class CatalogDamagedError(RetrieverError):
    """The index's SQLite catalog cannot be read."""


class DenseStoreDamagedError(RetrieverError):
    """Milvus Lite's files in the index cannot be read; the catalog can rebuild them."""


class DiskFullError(RetrieverError):
    """A write failed for want of disk space; what was indexed before stays."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it came from, says the disk is full: ENOSPC, SQLite's
    "database or disk is full", or Milvus relaying either as text."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        text = str(exc)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def one_line(exc: BaseException, limit: int) -> str:
    """An error's text on one line, at most `limit` characters (pymilvus keeps it in `message`)."""
    return " ".join(str(getattr(exc, "message", "") or exc).split())[:limit]


def disk_full(path: object, exc: BaseException) -> DiskFullError:
    """The one-line error for a write that ran out of disk space."""
    reason = one_line(exc, 160)
    return DiskFullError(
        f"{path}: the disk is full ({reason}); free some space and run the command again: what "
        "was indexed before this run is intact, and an ingest resumes where it stopped")


def damaged_catalog(path: object, exc: object) -> CatalogDamagedError:
    """The one-line error for a catalog SQLite cannot read, naming it and what to do."""
    return CatalogDamagedError(
        f"{path}: the index catalog is damaged ({exc}); it is the record every other index file "
        "is checked against, so the index cannot be repaired from it: move the index folder "
        "aside and ingest your files again (`rag ingest PATH... --index DIR`)")
