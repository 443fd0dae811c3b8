"""The two indexes kept in step: catalog + BM25 (one SQLite file) and the Milvus dense store.

Write protocol for one source, chosen so kill -9 at any point loses nothing committed and
leaves no orphans:
  1. stage the new chunks as `pending` in the catalog (invisible to queries);
  2. upsert their vectors into Milvus (ids are deterministic, so a redo is idempotent);
  3. one SQLite transaction makes them `live` and the source's old chunks `retired`;
  4. delete the retired vectors from Milvus, then forget the retired rows.
Queries only ever return live ids, so old chunks stay searchable until step 3 commits.
`repair()` (run on open) finishes or undoes whatever a crash interrupted, except the staged parts
of a large file still on disk unchanged (`begin_staging`): those wait for the next run to resume.

Concurrency: one writer (an ingest) and any number of query threads. Steps 3-4 run under the
exclusive side of a readers-writer lock and queries under the shared side (`reading()`), so a
query never sees an id whose text step 4 has just forgotten. The catalog gives each thread its
own SQLite connection (WAL: readers see the last commit, never half a transaction).

Several processes over one index (a Milvus server, the catalog in SQLite WAL on one host's
disk): one writes at a time (`WriterLock`, a flock held from a run's first write to
`finish_writes`), `repair()` on open runs only while no other process writes (their pending
rows are work in flight, not leftovers), and each query first compares the catalog's live
generation with the one it last saw (`refresh()`): after another process's publish, the
keyword index (the live-id set) catches up from the catalog before the search. Across
processes a query may still meet an id whose text another process has just forgotten; that
hit is dropped (retrievers.hybrid), never shown without its text.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np

from retrievers.bm25 import BM25Index, facets_of
from retrievers.bm25_store import current_rows, facets_from_meta, open_bm25, save_bm25
from retrievers.catalog import LIVE, PENDING, RETIRED, Catalog, Publication
from retrievers.errors import is_disk_full
from retrievers.locks import ReadWriteLock, WriterLock
from retrievers.milvus_keywords import MilvusKeywordIndex
from retrievers.protocols import DenseStore, KeywordIndex
from retrievers.records import Chunk, passage_texts
from retrievers.strategies import SparseBackend
from retrievers.text import TOKENIZER_VERSION, tokenize

log = logging.getLogger(__name__)
CATALOG_FILE = "catalog.sqlite"
WRITER_LOCK_FILE = "writer.lock"
UNCLEAN_KEY = "unclean_since_write"
# Milvus is flushed after this many upserted rows, not only at the end of a run: Milvus Lite 3.2
# turns every unflushed row into Python objects when it flushes (~14 KB a 384-d row for a
# moment: flushing 70k rows at once took a 100 MB text file to 1.8 GB), and searches unflushed
# rows 30-100x slower. Larger flushes would skip Lite's merges of flushed files (4k -> 16k ->
# 64k rows; the one into 64k holds ~500 MB more for a moment), but a flush large enough to skip
# them (64k rows, Lite's last size class) holds more than that merge, and smaller ones only
# make more merges (benchmarks/huge_inputs.py).
FLUSH_EVERY_ROWS = 4096
Embed = Callable[[list[str]], np.ndarray]


@dataclass
class ConsistencyReport:
    catalog_live: int
    bm25: int
    dense: int
    missing_in_dense: list[str]
    extra_in_dense: list[str]
    missing_in_bm25: list[str]
    staged_to_resume: int = 0  # pending rows kept for resuming a large file (not an error)

    @property
    def ok(self) -> bool:
        return not (self.missing_in_dense or self.extra_in_dense or self.missing_in_bm25)


class ChunkIndex:
    """Catalog, BM25 and Milvus behind one write path; see the module docstring."""

    def __init__(
        self, directory: Path, dense: DenseStore,
        k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
        embed: Embed | None = None, sparse: SparseBackend | str = SparseBackend.RANK_BM25,
        embedder: Any = None, bm25_source_terms: bool = False, passage_titles: bool = False,
    ):
        self.directory = Path(directory)
        self.catalog = Catalog(self.directory / CATALOG_FILE)
        self.dense = dense
        # The model whose vectors `dense` holds (opaque here): kept beside the store so that
        # whoever shares this index (the UI's per-session views) switches with it.
        self.embedder = embedder
        # Whether this index's vectors embed each chunk after its file's title line
        # (records.titled_text); every writer of vectors asks `passage_texts`, so one index never
        # mixes the two forms.
        self.passage_titles = passage_titles
        self._dirty = False
        self._unflushed = 0  # rows upserted since the last flush
        self._embed = embed
        self._unclean = False
        self._lock = ReadWriteLock()
        self.writer = WriterLock(self.directory / WRITER_LOCK_FILE)
        self._generation = self.catalog.generation()  # read before the live ids below
        try:
            if self.writer.acquire(wait=False):
                try:
                    self.repair()
                    self._retokenize_if_stale()
                finally:
                    self.writer.release()
            else:  # its pending rows are an ingest in flight; that process repairs its own
                log.info("%s: another process (pid %s) is writing; not repairing on open",
                         self.directory, self.writer.holder())
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            # Leftovers of the interrupted write stay pending (never served) until there is
            # room to remove them: reads must not fail because a disk filled up.
            log.warning("%s: the disk is full; cleaning up after the interrupted ingest waits "
                        "until there is free space", self.directory)
        # The keyword index is the live-id set too, written in step with the catalog: the BM25
        # index (from its .npz snapshot, brought up to date with the catalog's live ids), or
        # with sparse="milvus" (keyword search inside Milvus) just the ids, no postings.
        self.keywords: KeywordIndex
        if SparseBackend.parse(sparse) is SparseBackend.MILVUS:
            self.keywords = MilvusKeywordIndex(dense, self.catalog.ids_in_state(LIVE))
        else:
            self.keywords = open_bm25(self.catalog, self.directory, k1=k1, b=b, epsilon=epsilon,
                                      source_terms=bm25_source_terms)

    @property
    def bm25(self) -> BM25Index:
        """The in-process BM25 index (sparse="rank-bm25")."""
        if not isinstance(self.keywords, BM25Index):
            raise RuntimeError("this index was opened with sparse='milvus': BM25 runs in Milvus")
        return self.keywords

    def reading(self) -> ContextManager[Any]:
        """Hold while searching and reading hits' text: no publish lands in between. First
        catches up with other processes' publishes (`refresh`)."""
        self.refresh()
        return self._lock.reading()

    def switch_dense(self, dense: DenseStore, embedder: Any = None) -> tuple[DenseStore, Any]:
        """Serve from another dense store (a re-indexed collection) and the model that made its
        vectors, in one step for queries: a query embeds and searches under the read lock, so it
        sees both old or both new. Returns the old (store, embedder); the caller closes the store."""
        with self._lock.writing():
            self.flush()
            old = (self.dense, self.embedder)
            self.dense, self.embedder = dense, embedder
            self._dirty = False
            if isinstance(self.keywords, MilvusKeywordIndex):  # its BM25 lives in the collection
                self.keywords.store = dense
        return old

    def refresh(self) -> bool:
        """Bring the keyword index (the live-id set) up to the catalog's live chunks when
        another process has changed them since this one last looked; whether it did. One
        indexed read per call when nothing changed (the catalog's live generation)."""
        if self.catalog.generation() == self._generation:
            return False
        with self._lock.writing():
            generation = self.catalog.generation()  # before the ids: a later publish re-runs this
            if generation == self._generation:
                return False
            live = set(self.catalog.ids_in_state(LIVE))
            have = self.keywords.ids()
            stale, missing = have - live, live - have
            if stale:
                self.keywords.remove(stale)
            for chunk_id, terms, meta in current_rows(self.catalog, missing):
                self.keywords.add(chunk_id, terms, facets_from_meta(meta))
            self._generation = generation
        if stale or missing:
            log.info("%s: caught up with another process: %d chunks added, %d removed",
                     self.directory, len(missing), len(stale))
        return True

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
        self._upsert(chunks, vectors)
        with self._lock.writing():
            retired = self.catalog.publish_many([publication for publication, _ in items])
            self._generation = self.catalog.generation()  # ours: no other process writes now
            self.keywords.remove(retired)
            for chunk, chunk_terms in zip(chunks, terms):
                self.keywords.add_tokens(chunk.chunk_id, chunk_terms, facets_of(chunk))
            self._drop(retired)
        return retired

    # --- one large source in parts: stage each part, then publish them all at once -----------
    def stage_part(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Steps 1-2 of the protocol for some of a source's new chunks: pending in the catalog,
        vectors in Milvus, nothing visible. A source too large to hold in memory is staged part
        by part and then published whole (`publish_staged`), or discarded (`discard_staged`);
        a crash in between leaves pending rows that `repair()` keeps for the next run of the
        same file (`begin_staging`), or drops once the file has changed or gone."""
        terms = [tokenize(c.text) for c in chunks]
        self._mark_unclean()
        # Nothing searches the staged rows, and the dense store need not hold its search
        # index meanwhile (embedded Milvus Lite: ~0.5 KB a chunk); the next read loads it.
        defer = getattr(self.dense, "defer_vector_index", None)
        if defer is not None:
            defer()
        self.catalog.stage(list(chunks), terms)
        self._upsert(chunks, vectors)

    def begin_staging(self, publication: Publication) -> int:
        """Before staging a large source in parts: note it (see `Catalog.begin_staging`) and
        return how many of its chunks an interrupted run of the same bytes left staged. Their
        vectors are stored (`repair()` keeps only those), so the caller need not embed again
        the chunks `staged_texts` gives back unchanged. Pending rows of other bytes are dropped."""
        self._mark_unclean()
        kept = self.catalog.pending_of(publication.source_id)
        recorded = self.catalog.staging(publication.source_id)
        if kept and (not recorded or recorded[0]["content_hash"] != publication.content_hash):
            self._drop(kept)
            kept = []
        self.catalog.begin_staging(publication)
        return len(kept)

    def staged_texts(self, chunk_ids: list[str]) -> dict[str, str]:
        """The text of those of `chunk_ids` already staged (pending, their vectors stored)."""
        return self.catalog.pending_texts(chunk_ids)

    def _upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        self.dense.upsert(chunks, vectors)
        self._dirty = True
        self._unflushed += len(chunks)
        if self._unflushed >= FLUSH_EVERY_ROWS:
            self.flush()

    def publish_staged(self, publication: Publication, batch: int = 2000) -> list[str]:
        """Step 3-4 for a source staged in parts: its chunks go live in one catalog transaction
        (its old ones retire), and the keyword index takes their terms back from the catalog a
        batch at a time. Returns the retired chunk ids."""
        # Before the keyword index grows: flushing the last rows, and writing the search index
        # files of a store that let its index go while staging, cost memory for a moment.
        self.flush()
        write_index_files = getattr(self.dense, "write_index_files", None)
        if write_index_files is not None:
            write_index_files()
        with self._lock.writing():
            retired = self.catalog.publish_many([publication])
            self._generation = self.catalog.generation()
            self.keywords.remove(retired)
            ids = publication.chunk_ids
            for start in range(0, len(ids), batch):
                part = ids[start:start + batch]
                chunks = self.catalog.chunks(part)
                terms = self.catalog.terms_of(part)
                for chunk_id in part:
                    self.keywords.add(chunk_id, terms[chunk_id], facets_of(chunks[chunk_id]))
            self._drop(retired)
            # Rows an interrupted run staged that this one did not publish (the file was
            # chunked otherwise since: other settings) have no use left.
            self._drop(self.catalog.pending_of(publication.source_id))
        # After the publish: a crash before this leaves a record with no pending rows, which
        # `repair()` forgets.
        self.catalog.end_staging(publication.source_id)
        return retired

    def discard_staged(self, chunk_ids: list[str], source_id: str | None = None) -> None:
        """Drop staged chunks that will not be published (their source failed part-way), and
        the source's staging record with every chunk it kept: a failure is not resumed."""
        if source_id is not None:
            chunk_ids = sorted(set(chunk_ids) | set(self.catalog.pending_of(source_id)))
        self._drop(self.catalog.in_state(chunk_ids, PENDING))
        if source_id is not None:
            self.catalog.end_staging(source_id)

    def discard_staging(self, source_id: str) -> int:
        """Give up an unfinished ingest of a large source: drop what it staged and its record.
        Returns how many staged chunks were dropped (0 when none was being staged)."""
        if not self.catalog.staging(source_id):
            return 0
        self._mark_unclean()
        try:
            staged = self.catalog.count_pending(source_id)
            self.discard_staged([], source_id)  # with `source_id`: every row it staged
        finally:
            self.finish_writes()
        return staged

    def _resumable(self) -> set[str]:
        """Pending ids kept for resuming: those of sources staged in parts whose file is still
        there with the size and modification time it had (`begin_staging`). Records of other
        sources are forgotten (their rows are then leftovers)."""
        kept: set[str] = set()
        for record in self.catalog.staging():
            try:
                stat = os.stat(record["path"])
                same = stat.st_size == record["size"] and stat.st_mtime == record["mtime"]
            except OSError:
                same = False
            ids = self.catalog.pending_of(record["source_id"]) if same else []
            if ids:
                kept.update(ids)
            else:
                self.catalog.end_staging(record["source_id"])
        return kept

    def _mark_unclean(self) -> None:
        """Take the writer lock (waiting for another process's run), catch up with what it
        published, and note in the catalog that Milvus may hold unflushed writes until
        `finish_writes()`."""
        if not self.writer.held:
            self.writer.acquire(on_wait=lambda pid: log.warning(
                "%s: waiting for the ingest of another process (pid %s) to finish",
                self.directory, pid))
            self.refresh()
            self._retokenize_if_stale()
        if not self._unclean:
            self.catalog.set_meta(UNCLEAN_KEY, True)
            self._unclean = True

    def move_source(self, old_source_id: str, publication: Publication,
                    chunk_id: Callable[[int], str]) -> int | None:
        """Give a source's live chunks to another source (a renamed file with the same bytes)
        without embedding: its vectors are read back from the dense store and written under
        the new ids (`chunk_id(position)`) and path, then the old source is deleted. Returns
        the number of chunks, or None when the store cannot give the vectors back (the caller
        ingests the file instead). Two transactions: a crash in between leaves the old path's
        chunks too, which deleting it (a watch, `ingest --prune`) removes."""
        from dataclasses import replace

        old = self.catalog.live_chunks_of(old_source_id)
        read = getattr(self.dense, "vectors", None)
        if not old or read is None:
            return None
        try:
            vectors = read([c.chunk_id for c in old])
        except KeyError:
            return None
        moved = [replace(c, chunk_id=chunk_id(c.position), source=publication.path,
                         source_id=publication.source_id) for c in old]
        publication.chunk_ids = [c.chunk_id for c in moved]
        self.write_sources([(publication, moved)], vectors)
        self.delete_source(old_source_id)
        return len(moved)

    def finish_writes(self) -> None:
        """End of a run of writes: flush Milvus, clear the unclean mark, and let another
        process write (the writer lock). Writing again later takes the lock again."""
        try:
            self.flush()
            if self._unclean:
                self.catalog.set_meta(UNCLEAN_KEY, False)
                self._unclean = False
        finally:  # a run that failed (a full disk) has ended too: the mark stays for repair
            self.writer.release()

    def delete_source(self, source_id: str) -> int:
        """Remove a source and all its chunks from both indexes; returns how many chunks."""
        self._mark_unclean()
        with self._lock.writing():
            retired = self.catalog.unpublish(source_id)
            self._generation = self.catalog.generation()
            self.keywords.remove(retired)
            self._drop(retired)
        self.finish_writes()
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
        self._unflushed = 0

    def _retokenize_if_stale(self) -> None:
        """Under the writer lock: when the catalog's terms were stored by another BM25 tokenizer
        (an index made before `retrievers.text.TOKENIZER_VERSION` changed), derive them again
        from the stored texts, once, so that new and old chunks are counted alike. The BM25
        snapshot records its tokenizer too and is rebuilt from these terms."""
        if self.catalog.tokenizer_current(TOKENIZER_VERSION):
            return
        stored = self.catalog.count_all()
        if not stored:  # a new index: nothing stored yet, nothing to say
            self.catalog.retokenize(tokenize, TOKENIZER_VERSION)
            return
        started = time.perf_counter()
        log.warning("%s: the BM25 tokenizer changed (%s); deriving the terms of %d chunks again "
                    "from their texts, once", self.directory, TOKENIZER_VERSION, stored)
        changed = self.catalog.retokenize(tokenize, TOKENIZER_VERSION)
        log.info("%s: %d chunks' terms changed (%.1f s)", self.directory, changed,
                 time.perf_counter() - started)

    def repair(self) -> int:
        """Undo interrupted writes: drop pending and retired chunks from Milvus and the catalog.

        After an unclean end (the marker set by the first write and cleared by `close()`), Milvus
        is also compared with the catalog's live ids: a vector store may lose its last unflushed
        writes on kill -9, and live ids missing there are re-embedded (when `embed` is given).
        The same happens when Milvus holds nothing while the catalog has live chunks (its files
        were deleted, or moved aside as damaged by `rag stats --check --repair`).
        """
        kept = self._resumable()
        leftovers = [c for c in self.catalog.ids_in_state(PENDING) if c not in kept]
        leftovers += self.catalog.ids_in_state(RETIRED)
        if kept:  # info, not a warning: every open says it until then (`rag stats` lists it)
            log.info("keeping %d chunks staged by an interrupted ingest of %s: ingesting it "
                     "again resumes there", len(kept),
                     ", ".join(r["path"] for r in self.catalog.staging()))
        if leftovers:
            log.warning("repairing %d chunks left by an interrupted ingest", len(leftovers))
            self.dense.delete(leftovers)
            self.dense.flush()
            self.catalog.forget(leftovers)
        lost = self.catalog.count() > 0 and self.dense.count() == 0
        if lost:  # the Milvus files were deleted or moved aside: the catalog holds every text
            log.warning("the dense index holds none of the catalog's %d live chunks; %s",
                        self.catalog.count(), "re-embedding them" if self._embed else
                        "open with an embedder to restore them")
        if self.catalog.get_meta(UNCLEAN_KEY) or (lost and self._embed is not None):
            missing, extra = self._reconcile_dense(set(self.catalog.ids_in_state(LIVE)),
                                                   self.dense.all_ids(), self._embed, kept)
            if not missing or self._embed is not None:
                self.catalog.set_meta(UNCLEAN_KEY, False)
            else:
                log.warning("repair: %d live chunks are missing from Milvus; open with an "
                            "embedder to restore them", len(missing))
            leftovers += extra + (missing if self._embed is not None else [])
        return len(leftovers)

    def _reconcile_dense(self, live: set[str], dense: set[str], embed: Embed | None,
                         staged: set[str] = frozenset()) -> tuple[list[str], list[str]]:
        """Make the dense store hold exactly the live ids and the `staged` ones kept for
        resuming: delete extra vectors, re-embed missing live ones (when `embed` is given).
        Staged rows whose vectors were lost (unflushed at a kill) are forgotten: the resumed
        run embeds them again. Returns (missing, extra) as found."""
        missing, extra = sorted(live - dense), sorted(dense - live - staged)
        if lost_staged := staged - dense:
            self.catalog.forget(lost_staged)
        if extra:
            log.warning("repair: deleting %d vectors with no live chunk", len(extra))
            self.dense.delete(extra)
        if missing and embed is not None:
            log.warning("repair: re-embedding %d live chunks missing from Milvus", len(missing))
            chunks = self.catalog.chunks(missing)
            ordered = [chunks[c] for c in missing]
            self.dense.upsert(ordered, embed(self.passage_texts(ordered)))
        if extra or (missing and embed is not None):
            self.dense.flush()
        return missing, extra

    # --- reads -------------------------------------------------------------------------
    def passage_texts(self, chunks: Sequence[Chunk]) -> list[str]:
        """What the dense model embeds for `chunks` in this index (its text, or title + text)."""
        return passage_texts(list(chunks), self.passage_titles)

    def live_ids(self) -> set[str]:
        return self.keywords.ids()

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        return self.catalog.chunks(chunk_ids)

    def check(self, fix: bool = False, embed: Embed | None = None) -> ConsistencyReport:
        """Compare the live ids of the catalog, BM25 and Milvus; optionally repair differences."""
        self.flush()
        live = set(self.catalog.ids_in_state(LIVE))
        dense = self.dense.all_ids()
        bm25 = self.keywords.ids()
        staged = {c for r in self.catalog.staging() for c in self.catalog.pending_of(r["source_id"])}
        report = ConsistencyReport(
            catalog_live=len(live), bm25=len(bm25), dense=len(dense) - len(dense & staged),
            missing_in_dense=sorted(live - dense), extra_in_dense=sorted(dense - live - staged),
            missing_in_bm25=sorted(live - bm25), staged_to_resume=len(staged),
        )
        if fix and not report.ok:
            self._mark_unclean()  # the writer lock: no other process's ingest is in flight
            try:
                self._reconcile_dense(live, dense, embed, staged)
                missing = self.catalog.chunks(report.missing_in_bm25)
                with self._lock.writing():
                    for chunk_id, terms in self.catalog.terms_of(report.missing_in_bm25).items():
                        self.keywords.add(chunk_id, terms, facets_of(missing[chunk_id]))
            finally:
                self.finish_writes()
        return report

    def close(self) -> None:
        self.finish_writes()
        if isinstance(self.keywords, BM25Index):
            save_bm25(self.keywords, self.directory)
        self.catalog.close()
        self.dense.close()
