"""Open the BM25 index of an index directory fast: a numpy snapshot plus an incremental catch-up.

Rebuilding BM25 from the catalog's JSON term counts takes ~7 s at 100k chunks; loading the `.npz`
snapshot (plain arrays, `allow_pickle=False`) takes a fraction of that. The catalog stays the
truth: chunk ids are content-addressed (source + content hash + position), so the snapshot is
brought up to date by removing ids that are no longer live and adding the live ids it lacks.
A stale or unreadable snapshot (crash, other tokenizer) therefore costs time, never correctness.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from retrievers.bm25 import BM25Index, Facets
from retrievers.catalog import Catalog
from retrievers.text import TOKENIZER_VERSION, tokenize

log = logging.getLogger(__name__)
SNAPSHOT_FILE = "bm25.npz"
FORMAT = 2  # 2: each slot's term ids as 16-bit gap words (1: plain int32 term ids, still read)
READABLE = {1, 2}


def open_bm25(catalog: Catalog, directory: Path, k1: float = 1.5, b: float = 0.75,
              epsilon: float = 0.25, source_terms: bool = False) -> BM25Index:
    """The BM25 index of the catalog's live chunks (from the snapshot when there is one).
    `source_terms`: chunks also count their file name's terms; a snapshot made the other way
    is rebuilt from the catalog (~7 s at 100k chunks)."""
    index = _load_snapshot(Path(directory) / SNAPSHOT_FILE, k1, b, epsilon, source_terms)
    live = set(catalog.ids_in_state("live"))
    stale = index.ids() - live
    if stale:
        index.remove(stale)
    missing = live - index.ids()
    if missing:
        for chunk_id, terms, meta in _live_rows(catalog, missing, everything=not len(index)):
            index.add(chunk_id, terms, facets_from_meta(meta))
    if stale or missing:
        log.info("bm25: %d chunks added, %d removed since the snapshot", len(missing), len(stale))
    return index


def save_bm25(index: BM25Index, directory: Path) -> bool:
    """Write the snapshot atomically when the index changed since it was loaded or saved."""
    if getattr(index, "_saved_version", None) == index.version:
        return False
    path = Path(directory) / SNAPSHOT_FILE
    # Per process: several processes serving one index may each save on close (last wins).
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    header = json.dumps({"format": FORMAT, "tokenizer": TOKENIZER_VERSION,
                         "source_terms": index.source_terms, "chunks": len(index)}).encode()
    with open(tmp, "wb") as handle:
        members = index.snapshot_members()  # holds the index's lock until closed
        try:
            _write_npz(handle, itertools.chain(
                [("header", np.dtype(np.uint8), len(header), iter([header]))], members))
        finally:
            members.close()
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    index._saved_version = index.version
    return True


def _write_npz(handle: Any, members: Iterable[tuple[str, np.dtype, int, Iterable[Any]]]) -> None:
    """What `np.savez` writes (a stored zip of `.npy` members, read back by `np.load`), written
    a piece at a time, so no member is ever assembled whole in memory."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, dtype, length, pieces in members:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array_header_1_0(out, {
                    "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                    "shape": (length,)})
                written = 0
                for piece in pieces:
                    out.write(piece)
                    written += len(piece)
                if written != length * dtype.itemsize:
                    raise ValueError(f"bm25 snapshot member {name}: {written} bytes for "
                                     f"{length} items of {dtype}")


def _load_snapshot(path: Path, k1: float, b: float, epsilon: float,
                   source_terms: bool) -> BM25Index:
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(data["header"].tobytes())
                if (header.get("format") in READABLE and header.get("tokenizer") == TOKENIZER_VERSION
                        and bool(header.get("source_terms", False)) == source_terms):
                    # members read lazily
                    index = BM25Index.from_arrays(data, k1, b, epsilon, source_terms)
                    index._saved_version = index.version
                    return index
                log.info("%s: written by another version or with another bm25_source_terms; "
                         "rebuilding BM25", path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("%s: unreadable BM25 snapshot (%s); rebuilding from the catalog", path, exc)
    return BM25Index(k1, b, epsilon, source_terms)


def current_rows(catalog: Catalog, chunk_ids: Iterable[str] | None = None):
    """`catalog.bm25_rows`, with the terms of this tokenizer: a catalog another one stored (its
    writer has not migrated it yet, `ChunkIndex`) has them derived again from its texts, since
    queries are tokenized by this one."""
    fresh = None if catalog.tokenizer_current(TOKENIZER_VERSION) else tokenize
    return catalog.bm25_rows(chunk_ids, terms_from=fresh)


def _live_rows(catalog: Catalog, wanted: set[str], everything: bool):
    """(chunk_id, term counts, meta) of live chunks: one scan when rebuilding from nothing."""
    if everything:
        return (row for row in current_rows(catalog) if row[0] in wanted)
    return current_rows(catalog, wanted)


def facets_from_meta(meta: dict) -> Facets:
    """A chunk's filter facets from its catalog meta record."""
    return Facets(meta.get("source", ""), meta.get("file_type", ""), meta.get("page"),
                  float(meta.get("ingested_at") or 0.0))
