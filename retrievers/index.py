"""The two indexes kept in step: catalog + BM25 (one SQLite file) and the Milvus dense store.

Write protocol for one source, chosen so kill -9 at any point loses nothing committed and
leaves no orphans:
  1. stage the new chunks as `pending` in the catalog (invisible to queries);
  2. upsert their vectors into Milvus (ids are deterministic, so a redo is idempotent);
  3. one SQLite transaction makes them `live` and the source's old chunks `retired`;
  4. delete the retired vectors from Milvus, then forget the retired rows.
Queries only ever return live ids, so old chunks stay searchable until step 3 commits.
`repair()` (run on open) finishes or undoes whatever a crash interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from retrievers.bm25 import BM25Index, facets_of
from retrievers.bm25_store import open_bm25, save_bm25
from retrievers.catalog import LIVE, PENDING, RETIRED, Catalog, Publication
from retrievers.live_ids import LiveIds
from retrievers.milvus_store import MilvusDenseStore
from retrievers.records import Chunk
from retrievers.text import tokenize

log = logging.getLogger(__name__)
CATALOG_FILE = "catalog.sqlite"
UNCLEAN_KEY = "unclean_since_write"


@dataclass
class ConsistencyReport:
    catalog_live: int
    bm25: int
    dense: int
    missing_in_dense: list[str]
    extra_in_dense: list[str]
    missing_in_bm25: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing_in_dense or self.extra_in_dense or self.missing_in_bm25)


class ChunkIndex:
    """Catalog, BM25 and Milvus behind one write path; see the module docstring."""

    def __init__(
        self, directory: Path, dense: MilvusDenseStore,
        k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
        embed: Callable[[list[str]], np.ndarray] | None = None, sparse: str = "rank-bm25",
    ):
        self.directory = Path(directory)
        self.catalog = Catalog(self.directory / CATALOG_FILE)
        self.dense = dense
        self._dirty = False
        self._embed = embed
        self._unclean = False
        self.repair()
        # `live` is the BM25 index (from its .npz snapshot, brought up to date with the
        # catalog's live ids), or with sparse="milvus" (keyword search inside Milvus) just the
        # live ids: no per-process postings. Either is written in step with the catalog.
        self.live: BM25Index | LiveIds
        if sparse == "milvus":
            self.live = LiveIds(self.catalog.ids_in_state(LIVE))
        else:
            self.live = open_bm25(self.catalog, self.directory, k1=k1, b=b, epsilon=epsilon)

    @property
    def bm25(self) -> BM25Index:
        """The in-process BM25 index (sparse="rank-bm25")."""
        if not isinstance(self.live, BM25Index):
            raise RuntimeError("this index was opened with sparse='milvus': BM25 runs in Milvus")
        return self.live

    # --- writes ------------------------------------------------------------------------
    def write_source(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, *, source_id: str, path: str,
        content_hash: str, file_type: str, size: int = 0, mtime: float = 0.0,
    ) -> list[str]:
        """Replace a source's chunks with `chunks`; returns the retired chunk ids."""
        return self.write_sources(
            [(Publication(source_id, path, content_hash, file_type,
                          [c.chunk_id for c in chunks], size, mtime), list(chunks))], vectors)

    def write_sources(
        self, items: Sequence[tuple[Publication, Sequence[Chunk]]], vectors: np.ndarray,
    ) -> list[str]:
        """Replace several sources' chunks at once (`vectors` row-aligned with all chunks in order).

        The same protocol as for one source, with one catalog transaction per step and one
        Milvus upsert for the batch: per-file round trips would cost more than the embedding.
        """
        chunks = [c for _, group in items for c in group]
        terms = [tokenize(c.text) for c in chunks]
        self._mark_unclean()
        self.catalog.stage(chunks, terms)
        self.dense.upsert(chunks, vectors)
        self._dirty = True
        retired = self.catalog.publish_many([publication for publication, _ in items])
        self.live.remove(retired)
        for chunk, chunk_terms in zip(chunks, terms):
            self.live.add_tokens(chunk.chunk_id, chunk_terms, facets_of(chunk))
        self._drop(retired)
        return retired

    def _mark_unclean(self) -> None:
        """Note in the catalog that Milvus may hold unflushed writes until `close()`."""
        if not self._unclean:
            self.catalog.set_meta(UNCLEAN_KEY, True)
            self._unclean = True

    def delete_source(self, source_id: str) -> int:
        """Remove a source and all its chunks from both indexes; returns how many chunks."""
        self._mark_unclean()
        retired = self.catalog.unpublish(source_id)
        self.live.remove(retired)
        self._drop(retired)
        self.flush()
        return len(retired)

    def _drop(self, chunk_ids: list[str]) -> None:
        if chunk_ids:
            self.dense.delete(chunk_ids)
            self._dirty = True
            self.catalog.forget(chunk_ids)

    def flush(self) -> None:
        """Make Milvus writes fast to search (Milvus Lite searches unflushed rows 30-100x slower)."""
        if self._dirty:
            self.dense.flush()
            self._dirty = False

    def repair(self) -> int:
        """Undo interrupted writes: drop pending and retired chunks from Milvus and the catalog.

        After an unclean end (the marker set by the first write and cleared by `close()`), Milvus
        is also compared with the catalog's live ids: a vector store may lose its last unflushed
        writes on kill -9, and live ids missing there are re-embedded (when `embed` is given).
        """
        leftovers = self.catalog.ids_in_state(PENDING) + self.catalog.ids_in_state(RETIRED)
        if leftovers:
            log.warning("repairing %d chunks left by an interrupted ingest", len(leftovers))
            self.dense.delete(leftovers)
            self.dense.flush()
            self.catalog.forget(leftovers)
        if self.catalog.get_meta(UNCLEAN_KEY):
            live = set(self.catalog.ids_in_state(LIVE))
            dense = self.dense.all_ids()
            missing, extra = sorted(live - dense), sorted(dense - live)
            if extra:
                log.warning("repair: deleting %d vectors with no live chunk", len(extra))
                self.dense.delete(extra)
            if missing and self._embed is not None:
                log.warning("repair: re-embedding %d live chunks missing from Milvus", len(missing))
                chunks = self.catalog.chunks(missing)
                ordered = [chunks[c] for c in missing]
                self.dense.upsert(ordered, self._embed([c.text for c in ordered]))
            if extra or missing:
                self.dense.flush()
            if not missing or self._embed is not None:
                self.catalog.set_meta(UNCLEAN_KEY, False)
            else:
                log.warning("repair: %d live chunks are missing from Milvus; open with an "
                            "embedder to restore them", len(missing))
            leftovers += extra + (missing if self._embed is not None else [])
        return len(leftovers)

    # --- reads -------------------------------------------------------------------------
    def live_ids(self) -> set[str]:
        return self.live.ids()

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        return self.catalog.chunks(chunk_ids)

    def check(self, fix: bool = False, embed: Callable[[list[str]], np.ndarray] | None = None
              ) -> ConsistencyReport:
        """Compare the live ids of the catalog, BM25 and Milvus; optionally repair differences."""
        self.flush()
        live = set(self.catalog.ids_in_state(LIVE))
        dense = self.dense.all_ids()
        bm25 = self.live.ids()
        report = ConsistencyReport(
            catalog_live=len(live), bm25=len(bm25), dense=len(dense),
            missing_in_dense=sorted(live - dense), extra_in_dense=sorted(dense - live),
            missing_in_bm25=sorted(live - bm25),
        )
        if fix and not report.ok:
            if report.extra_in_dense:
                self.dense.delete(report.extra_in_dense)
            if report.missing_in_dense and embed is not None:
                chunks = self.catalog.chunks(report.missing_in_dense)
                ordered = [chunks[c] for c in report.missing_in_dense]
                self.dense.upsert(ordered, embed([c.text for c in ordered]))
            missing = self.catalog.chunks(report.missing_in_bm25)
            for chunk_id, terms in self.catalog.terms_of(report.missing_in_bm25).items():
                self.live.add(chunk_id, terms, facets_of(missing[chunk_id]))
            self.dense.flush()
        return report

    def close(self) -> None:
        self.flush()
        if self._unclean:
            self.catalog.set_meta(UNCLEAN_KEY, False)
            self._unclean = False
        if isinstance(self.live, BM25Index):
            save_bm25(self.live, self.directory)
        self.catalog.close()
        self.dense.close()
