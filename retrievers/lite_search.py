"""Dense top-k from Milvus Lite's own per-segment HNSW indexes, without its per-call full scan.

Why this exists: Milvus Lite 3.2.2 answers every search by first walking *every row* of every
segment in Python (a max-sequence map for de-duplication and a tombstone mask: two dict lookups
per row), then asks each segment's FAISS HNSW index for its top-k. At 100k rows the walk costs
100-250 ms of a ~105-260 ms search; the HNSW lookups take ~1 ms. That is why the dense side grew
linearly with the index (issue 17) although an HNSW index was built and loaded. Batching
queries amortises the walk, but one user question is one search.

This path asks the same in-process index objects directly and checks only the candidates it
returns against the tombstones and newer versions, which is what the walk computes for every
row. It is used only when its answer is the same as Milvus Lite's with the same `ef` (`search_ef`,
which MilvusStore passes to both paths), or, filtered, an exact one where Lite's is approximate:
- the collection lives in this process (an embedded Milvus Lite, not `milvus-lite server`);
- a filter expression (a source, file type, date or page filter) is evaluated by Lite's own
  compiled filter on each segment's scalar columns and on the unflushed rows, so the rows that
  pass are the ones Lite's would; the top-k among them is then exact (brute force) where the
  filter passes few of a segment's rows, and the segment's HNSW index restricted to them (as Lite
  searches it) elsewhere. Lite's own filtered search walks every row in Python first: at 100k
  chunks a filtered query took p50 130-340 ms (p95 up to 850 ms) against ~1 ms unfiltered;
- rows not yet flushed (Lite's memtable: up to `FLUSH_EVERY_ROWS` while an ingest runs) are
  searched here by brute force, as Lite does, and shadow the older versions and the deleted
  rows of the flushed segments, by Lite's own rule (the newest sequence number of an id wins;
  a later delete hides it). Before, any unflushed row sent the query to Lite, whose per-row
  walk made a query during an ingest of 20k chunks take p50 134 ms instead of 5 ms (2-core
  AMD EPYC; benchmarks/queries_during_ingest.py);
- a segment whose vector index Lite is still building (in the background, after a flush) is
  searched here by brute force, exactly as Lite would, so no race with that thread can hand the
  caller quantised similarities;
- enough candidates survive the checks (else the caller falls back).
Otherwise `search` returns None and the caller uses the ordinary `MilvusClient.search`.

With an 8-bit index (HNSW_SQ, the embedded default: the FAISS copy of each vector shrinks from
1,536 to 384 bytes) the graph walk ranks by quantised distances; this path then re-scores its
candidates by the exact cosine against the float vectors Lite keeps in memory anyway (the
segment's Arrow column), so the similarities that fusion and the decline thresholds read are
exact, and the order is the float order among the candidates (the "refine" of Milvus's
HNSW_SQ). Searches handed back to Milvus get the quantised similarities (about +-0.01).

It reads Milvus Lite's engine objects (not a public API), so it is pinned to the version it was
written against (`SUPPORTED_VERSIONS`) and disabled on any other; tests/retrievers/
test_lite_search.py checks its answers equal the public path's, with upserts and deletes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from functools import partial
from typing import Any, Callable, ContextManager, Iterator, TypeVar

import numpy as np

from retrievers.helper_thread import run_tasks
from retrievers.lite_memtable import UnflushedRows, unflushed_rows

log = logging.getLogger(__name__)
_T = TypeVar("_T")
SUPPORTED_VERSIONS = {"3.2.2"}
QUANTISED = {"HNSW_SQ"}  # index types whose distances are approximate: re-scored exactly
GATE_TIMEOUT_S = 60  # the longest a merge waits for a reading after a flush (a flush that hangs)
OVERFETCH = 2  # candidates per segment: k * OVERFETCH + 8, so tombstoned rows rarely cost a fallback
# A filter that passes at most this many of a segment's rows, or under this share of them, is
# searched exactly over the rows that pass: cheap there (a 16k x 384 product is ~2 ms), and an
# HNSW walk restricted to a small share of its graph loses recall.
EXACT_FILTERED_ROWS = 16_384
EXACT_FILTERED_SHARE = 0.2


def segment_candidates(k: int) -> int:
    """How many candidates the direct path takes from each segment for a top-k."""
    return k * OVERFETCH + 8


def search_ef(k: int, ef: int = 64) -> int:
    """The HNSW `ef` of a top-k dense search, on either path. FAISS searches with at least as
    many candidates as it returns, so the direct path's over-fetch raises its ef; the public
    path gets the same ef, else the two would rank deep candidates differently (at k = 50 on
    Paul Graham, ef 64 found 98.6% of the exact top 50, ef 108 found 99.6%)."""
    return max(ef, k, segment_candidates(k))


def filtered_ef(ef: int, passing: int, rows: int) -> int:
    """The HNSW `ef` of a walk restricted to `passing` of a segment's `rows`: the walk passes
    through rows the filter rejects without counting them, so it is widened by the share
    rejected (at most 4x). On 100k chunks filtered to half by file type, ef 108 found 0.869 of
    the exact top 50 (Lite's own filtered search 0.865)."""
    if passing >= rows or passing <= 0:
        return ef
    return int(min(4 * ef, np.ceil(ef * rows / passing)))


def engine_collection(uri: str, collection: str, database: str = "default") -> Any | None:
    """The in-process Milvus Lite `Collection` behind `uri`, or None when there is none here."""
    try:
        import milvus_lite
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return None
    if getattr(milvus_lite, "__version__", None) not in SUPPORTED_VERSIONS:
        return None
    servers = getattr(server_manager_instance, "_servers", {})
    entry = servers.get(os.path.abspath(uri))
    if entry is None:
        return None
    db = entry[1]
    return getattr(db, "_collections", {}).get((database, collection))


class LiteDirectSearch:
    """Top-k (id, cosine similarity) over one embedded Milvus Lite collection's HNSW segments."""

    def __init__(self, uri: str, collection: str, vector_field: str = "vector",
                 consistent: ContextManager[Any] | None = None,
                 exact_filtered: tuple[int, float] = (EXACT_FILTERED_ROWS, EXACT_FILTERED_SHARE)):
        """`consistent`: held by the store's writes that can flush (see `_search`).
        `exact_filtered`: (rows, share) under which a filtered segment is searched exactly."""
        self.uri, self.collection, self.vector_field = uri, collection, vector_field
        self.exact_filtered = exact_filtered
        self._consistent = consistent if consistent is not None else contextlib.nullcontext()
        self._last: tuple[Any, int, Any, Any] | None = None  # (collection, WAL number, segments, tombstones)
        self._flight: tuple[Any, UnflushedRows] | None = None  # a flush's memtable and its rows
        self._collection: Any | None = None

    def _engine(self) -> Any | None:
        # Looked up per call (cheap dict lookups): a collection dropped and re-created, or a
        # store closed and reopened, gets a new engine object.
        self._collection = engine_collection(self.uri, self.collection)
        return self._collection

    def search(self, vector: np.ndarray, k: int, ef: int = 64, expr: str = ""
               ) -> list[tuple[str, float]] | None:
        """Milvus Lite's answer for a COSINE search among the rows matching the Milvus filter
        expression `expr` ('' for all), or None where it cannot vouch."""
        try:
            return self._search(vector, k, ef, expr)
        except Exception as exc:  # an engine in a state this path does not know: use the public one
            log.debug("Milvus Lite direct search unavailable: %s", exc)
            return None

    def _search(self, vector: np.ndarray, k: int, ef: int, expr: str = ""
                ) -> list[tuple[str, float]] | None:
        coll = self._engine()
        if coll is None or getattr(coll, "_load_state", None) != "loaded" or k <= 0:
            return None
        passes = _FilterOnLite(coll, expr, self.vector_field) if expr else None
        # A flush swaps in an empty memtable first and adds its segment later, under Lite's lock
        # (~0.6 s for 4,096 rows): read in that gap, its rows are in neither. So the store tells
        # this path about its flushes (`flushing`): while one runs, the rows it writes are read
        # from the memtable it freezes, with the segments as they were before it; writes that
        # could flush without telling hold `consistent` throughout.
        with self._consistent:
            memtable, flight = coll._memtable, self._flight
            fresh = unflushed_rows(memtable, self.vector_field)
            if flight is None:
                segments, deltas = self._flushed(coll)
            else:
                last = self._last
                if fresh is None or last is None or last[0] is not coll:
                    return None
                segments, deltas = last[2], last[3]
                if flight[0] is not memtable:  # frozen already: its rows, then the new ones
                    fresh = UnflushedRows.combined(flight[1], fresh)
        if fresh is None:
            return None
        segments = [s for s in segments if s.num_rows > 0]
        if not segments and not len(fresh.pks):
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        fetch = segment_candidates(k)
        # Every segment's candidates: local ids and similarities, best first per segment;
        # `checked`: already known live; `complete`: nothing deeper in that segment can rank.
        local_ids, scores, checked, sizes, complete = [], [], [], [], []
        # First every segment's plan; the HNSW walks then run together (`walk_segments`), the
        # rest of each segment's work after them.
        plans: list[tuple[str, Any]] = []
        walks: list[Callable[[], tuple[np.ndarray, np.ndarray]]] = []
        for seg in segments:
            index = seg.indexes.get(self.vector_field)
            rows = None if passes is None else passes.segment_rows(seg)
            if rows is not None and len(rows) == seg.num_rows:
                rows = None  # the filter passes every row (a folder holding them all)
            if rows is not None and not len(rows):  # the filter passes none of its rows
                plans.append(("none", None))
            elif index is None or (rows is not None and self._exact_is_cheaper(len(rows),
                                                                               seg.num_rows)):
                # no index yet (being built in the background), or a filter passing few rows
                plans.append(("exact", rows))
            else:
                valid = None if rows is None else _bitmap(rows, seg.num_rows)
                reachable = seg.num_rows if rows is None else len(rows)
                walks.append(_walk(index, query, min(fetch, reachable),
                                   filtered_ef(search_ef(k, ef), reachable, seg.num_rows), valid))
                plans.append(("walk", (index, reachable)))
        walked = iter(walk_segments(walks))
        for seg, (plan, arg) in zip(segments, plans):
            if plan == "none":
                lids, sims, exact, done = np.zeros(0, np.int64), np.zeros(0), True, True
            elif plan == "exact":
                found = self._exact_top(seg, seg.vector_data(self.vector_field)[0], query[0], k,
                                        deltas, segments, fresh, arg)
                lids = np.array([lid for lid, _ in found], dtype=np.int64)
                sims = np.array([score for _, score in found], dtype=np.float64)
                exact, done = True, len(found) < k  # fewer than k live rows: it has no more
            else:
                index, reachable = arg
                lids, sims = self._ranked(index, seg, query, *next(walked))
                if not len(lids):  # an index that finds nothing in a segment with rows
                    return None
                exact, done = False, len(lids) >= reachable
            local_ids.append(lids)
            scores.append(sims)
            checked.append(exact)
            sizes.append(len(lids))
            complete.append(done)
        sources: list[Any] = list(segments)
        if len(fresh.pks):  # the unflushed rows: one more source, searched exactly here
            rows = None if passes is None else np.flatnonzero(fresh.filter_mask(passes.table_mask))
            found = self._exact_top(fresh, fresh.vectors, query[0], k, deltas, segments, fresh,
                                    rows)
            local_ids.append(np.array([row for row, _ in found], dtype=np.int64))
            scores.append(np.array([score for _, score in found], dtype=np.float64))
            checked.append(True)
            sizes.append(len(found))
            complete.append(len(found) < k)
            sources.append(fresh)
        # Liveness (tombstones, newer versions elsewhere) is checked best first and only until
        # k are found (and any tied with the k-th): ~k checks, not one per candidate of every
        # segment, and a row's id is read only when it is checked.
        all_scores = np.concatenate(scores)
        owner = np.repeat(np.arange(len(sources)), sizes)
        lid_of = np.concatenate(local_ids)
        taken = [0] * len(sources)
        best: dict[Any, float] = {}
        boundary = None  # the k-th live similarity, once k are found
        for i in np.argsort(-all_scores, kind="stable").tolist():
            score, n, lid = float(all_scores[i]), int(owner[i]), int(lid_of[i])
            if boundary is not None and score < boundary:
                break
            taken[n] += 1
            seg = sources[n]
            pk = seg.pks[lid]
            if checked[n] or not self._hidden(pk, int(seg.seqs[lid]), seg, deltas, segments,
                                              fresh):
                if score > best.get(pk, -np.inf):
                    best[pk] = score
                if boundary is None and len(best) == k:
                    boundary = score
            # A segment whose candidates are used up while fewer than k are found: its share
            # of the top-k may lie deeper than it was asked, so only Lite's own search is exact.
            if boundary is None and taken[n] == sizes[n] and not complete[n]:
                return None
        if boundary is None and not all(complete):
            return None
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]

    def _exact_is_cheaper(self, passing: int, rows: int) -> bool:
        """Whether a segment whose filter passes `passing` of its `rows` is searched exactly."""
        most_rows, least_share = self.exact_filtered
        return passing <= most_rows or passing < least_share * rows

    def _flushed(self, coll: Any) -> tuple[Any, Any]:
        """Lite's segments and tombstones. While its background merge holds Lite's lock (up to
        ~1 s for a merge into 64k rows: queries during a 20k-chunk ingest waited up to 0.95 s),
        the last reading taken since the last flush is used instead: a merge changes how rows
        are stored, not which are visible (it drops deleted and shadowed rows, then the
        tombstones no longer needed), and the replaced segments stay readable in memory.
        Lite starts a new WAL at every flush, and the caller holds off flushes: an unchanged
        WAL number means no flush since that reading."""
        wal = int(coll._wal.number)
        last = self._last
        if last is not None and last[0] is coll and last[1] == wal:
            if not coll._maintenance_lock.acquire(blocking=False):
                return last[2], last[3]
            coll._maintenance_lock.release()
        segments, deltas = coll._read_snapshot()
        self._last = (coll, wal, segments, deltas)
        return segments, deltas

    @contextlib.contextmanager
    def flushing(self) -> Iterator[None]:
        """Around the store's flush (its only writer is then flushing, so nothing else is
        written meanwhile). Before: a reading of the segments and of the memtable the flush will
        freeze, which searches use until it ends instead of waiting for it. After: a reading of
        the flushed segments, taken before the merge the flush queued can take Lite's lock (a
        task queued first on Lite's one background thread holds the merge back; the flush runs
        in Lite's server thread and only queues it)."""
        gate = threading.Event()
        coll = None
        try:
            coll = self._engine()
            if coll is not None and getattr(coll, "_load_state", None) == "loaded":
                with self._consistent:
                    self._flushed(coll)
                    rows = unflushed_rows(coll._memtable, self.vector_field)
                    self._flight = (coll._memtable, rows) if rows is not None else None
                coll._bg_executor.submit(gate.wait, GATE_TIMEOUT_S)
            else:
                coll = None
        except Exception as exc:  # the readings are an optimisation: searches take their own
            log.debug("Milvus Lite readings around a flush unavailable: %s", exc)
            coll = None
        # Without its readings, searches must not read while the flush runs: they wait.
        hold = contextlib.nullcontext() if self._flight is not None else self._consistent
        try:
            with hold:
                yield  # the flush: its errors are the caller's
        finally:
            try:
                with self._consistent:
                    self._flight = None
                    if coll is not None and getattr(coll, "_load_state", None) == "loaded":
                        self._flushed(coll)
            except Exception as exc:  # the next search takes one
                log.debug("Milvus Lite reading after a flush failed: %s", exc)
            finally:
                gate.set()

    def wait_for_merge(self) -> None:
        """Wait until Lite's background merge (if one runs) lets its lock go. A flush waits for
        it anyway; waiting here, before the store takes its own lock, lets queries answer
        meanwhile instead of queueing behind the flush."""
        try:
            coll = self._engine()
            if coll is not None:
                with coll._maintenance_lock:
                    pass
        except Exception as exc:  # only an optimisation
            log.debug("waiting for Milvus Lite's merge failed: %s", exc)

    def flush_may_follow(self) -> bool:
        """Whether a write may make Lite flush by itself (its memtable or WAL past half its
        byte limit; True where this cannot tell). Writes hold the store's lock only then: an
        upsert waits for Lite's merges (it reads each id's old row under Lite's lock), and
        queries waiting behind it would wait for the merge too."""
        try:
            from milvus_lite.constants import MEMTABLE_MEMORY_LIMIT, WAL_SIZE_LIMIT

            coll = self._engine()
            if coll is None:
                return True
            return (coll._memtable.estimated_memory_bytes >= MEMTABLE_MEMORY_LIMIT // 2
                    or coll._recovered_wal_bytes + coll._wal.size_bytes >= WAL_SIZE_LIMIT // 2)
        except Exception:
            return True

    def _ranked(self, index: Any, seg: Any, query: np.ndarray, lids: np.ndarray,
                scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A segment's walk result best first: (local ids, cosine similarities), exact (re-
        scored from the float vectors) where the index is quantised."""
        if getattr(index, "index_type", "HNSW") in QUANTISED and len(lids):
            scores = _cosines(seg.vector_data(self.vector_field)[0][lids], query[0]).astype(
                np.float64)
        order = np.argsort(-scores, kind="stable")
        return lids[order].astype(np.int64), scores[order]

    def _exact_top(self, source: Any, vectors: np.ndarray, query: np.ndarray, k: int,
                   deltas: Any, segments: list[Any], fresh: "UnflushedRows",
                   rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The exact top-k live rows (row number, cosine) of a source Lite searches by brute
        force too (a segment with no vector index attached yet, or the unflushed rows), or of
        the `rows` of a source that a filter passes.

        Doing a segment here rather than handing the whole search to Lite avoids a race: Lite's
        background thread can attach the 8-bit index between this path's check and Lite's own
        search, and the caller would get quantised similarities from a store that promises exact
        ones. The unflushed rows hold one version per id, their newest (no row of theirs is
        hidden by `fresh` itself); a flushed segment can still hold a newer one."""
        sims = _cosines(vectors if rows is None else vectors[rows], query)
        order = np.argsort(-sims, kind="stable")
        ranked_rows = order if rows is None else np.asarray(rows, dtype=np.int64)[order]
        ranked_sims = sims[order]
        live: list[tuple[int, float]] = []
        for i, row in enumerate(ranked_rows.tolist()):
            if self._hidden(source.pks[row], int(source.seqs[row]), source, deltas, segments,
                            fresh):
                continue
            live.append((row, float(ranked_sims[i])))
            if len(live) == k:
                break
        return live

    def _hidden(self, pk: Any, seq: int, seg: Any, deltas: Any, segments: list[Any],
                fresh: "UnflushedRows") -> bool:
        """Whether a row is not Lite's answer for its id: deleted (flushed or unflushed
        tombstone), or a newer version in another segment or among the unflushed rows."""
        return (deltas.is_deleted(pk, seq) or fresh.hides(pk, seq)
                or self._newer_elsewhere(pk, seq, seg, segments))

    @staticmethod
    def _newer_elsewhere(pk: Any, seq: int, seg: Any, segments: list[Any]) -> bool:
        """Whether another segment holds a later version of `pk` (an upsert)."""
        for other in segments:
            if other is seg:
                continue
            row = other.find_row(pk)
            if row is not None and int(other.seqs[row]) > seq:
                return True
        return False


def _walk(index: Any, query: np.ndarray, fetch: int, ef: int, valid: Any = None
          ) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """One segment's HNSW walk, to be run by `walk_segments`: it returns the (local ids,
    cosine similarities) found; `valid`: a FAISS ID selector the walk is restricted to (a
    filter). Why FAISS directly: Lite's wrapper converts each result's distance in a Python
    loop, ~0.2 ms a segment. `efSearch` goes in per-call parameters, not on the shared index,
    so concurrent queries cannot change each other's."""
    faiss_index = getattr(index, "_index", None)
    if getattr(index, "metric", None) == "COSINE" and faiss_index is not None:
        import faiss

        norm = float(np.linalg.norm(query))
        normed = np.ascontiguousarray(query / (norm if norm > 0 else 1.0),  # as Lite's wrapper
                                      dtype=np.float32)
        params = (faiss.SearchParametersHNSW(efSearch=ef) if valid is None
                  else faiss.SearchParametersHNSW(sel=valid[0], efSearch=ef))

        def run(valid: Any = valid) -> tuple[np.ndarray, np.ndarray]:  # `valid`: the bits the
            sims, ids = faiss_index.search(normed, fetch, params=params)  # selector reads
            keep = ids[0] >= 0
            return ids[0][keep], sims[0][keep].astype(np.float64)
        return run
    if valid is not None:
        raise LookupError("a filtered search needs Lite's FAISS COSINE index")

    def run_wrapped() -> tuple[np.ndarray, np.ndarray]:
        ids, dists = index.search(query, fetch, params={"ef": ef})
        keep = ids[0] >= 0
        return ids[0][keep], 1.0 - dists[0][keep].astype(np.float64)  # Lite's cosine distance
    return run_wrapped


def walk_segments(walks: list[Callable[[], tuple[np.ndarray, np.ndarray]]]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run a query's segment walks, in order, with the query helper thread
    (`helper_thread.run_tasks`): it walks from the first segment while the caller does its
    other work (a hybrid query's BM25 search), then walks from the last; each thread with one
    OpenMP thread; all on the caller while the helper is busy (another query's part). Why:
    Milvus Lite keeps a large index as several segments (five of 20k rows at 100k chunks), each
    its own graph, and walking them one after another made the dense side grow with the index
    (issue 17): five walks took p50 0.63 ms split over two threads, 1.41 ms one after another
    (2-core Intel Xeon VM). FAISS lets the GIL go while it walks."""
    if not walks:
        return []
    import faiss

    threads = faiss.omp_get_max_threads()  # each walk sets one; the caller's count comes back
    try:
        return run_tasks([partial(_one_openmp_thread, walk) for walk in walks])
    finally:
        faiss.omp_set_num_threads(threads)


def _one_openmp_thread(walk: Callable[[], _T]) -> _T:
    """A walk with one OpenMP thread on whichever thread runs it: FAISS parallelises a single
    query's walk with OpenMP, whose start-up costs more than it saves on a 20k-row graph (five
    walks: 1.13 ms on one thread, 1.41 on two); libgomp keeps the count per thread."""
    import faiss

    faiss.omp_set_num_threads(1)
    return walk()


class _FilterOnLite:
    """A Milvus filter expression compiled by Milvus Lite itself and evaluated on its segments
    and unflushed rows, so the rows that pass are exactly those its own search would keep."""

    def __init__(self, coll: Any, expr: str, vector_field: str = "vector"):
        from milvus_lite.search.filter import evaluate_mask
        from milvus_lite.search.indexed_filter import evaluate_segment_filter

        self._evaluate_mask, self._evaluate_segment = evaluate_mask, evaluate_segment_filter
        self._compiled = coll._compile_filter(expr)  # Lite caches compiled expressions
        self._plan = coll._indexed_filter_plan(self._compiled)
        self._vector_field = vector_field

    def segment_rows(self, seg: Any) -> np.ndarray:
        """The local ids of a segment's rows that pass (and have a vector, as Lite requires)."""
        mask = np.asarray(self._evaluate_segment(seg, self._compiled, self._plan), dtype=bool)
        has_vector = seg.vector_data(self._vector_field)[1]
        if has_vector is not None:
            mask = mask & np.asarray(has_vector, dtype=bool)
        return np.flatnonzero(mask)

    def table_mask(self, table: Any) -> np.ndarray:
        return np.asarray(self._evaluate_mask(self._compiled, table), dtype=bool)


def _bitmap(rows: np.ndarray, size: int) -> tuple[Any, np.ndarray]:
    """A FAISS selector of `rows` among `size` (with the bits it reads, which must outlive it).
    A bitmap rather than Lite's IDSelectorBatch: one bit test per visited node, no hashing."""
    import faiss

    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(size, faiss.swig_ptr(bits)), bits


def _cosines(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row to `query` (0 for a zero vector)."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * float(np.sqrt(query @ query))
    return (rows @ query) / np.where(norms > 0, norms, 1.0)


def build_missing_indexes(uri: str, collection: str) -> bool:
    """Write the vector index file of every segment of a released embedded collection that
    lacks one, one segment at a time, keeping none in memory; False where this Lite version
    or state is not the one this was written for (the caller then loads the collection, which
    builds them too, and keeps them all).

    Why: a collection released while a large file was written (`MilvusDenseStore.
    defer_vector_index`) has no index files for its new segments; loading it would build and
    hold them all at once, next to everything else the process holds when it closes. Lite's
    own per-segment build-or-load step is used, so the files are the ones its `load` reads."""
    coll = engine_collection(uri, collection)
    if coll is None or getattr(coll, "_load_state", None) != "released":
        return False
    coll._wait_for_bg()  # its compaction may still replace segments
    specs = [spec for spec in coll._index_specs.values() if spec.index_type in {"HNSW", "HNSW_SQ"}]
    if not specs or len(specs) != len(coll._index_specs):
        return False
    for seg in coll._segments_snapshot():
        for spec in specs:
            if seg.num_rows == 0 or spec.field_name in seg.indexes:
                continue
            index_dir = coll._index_dir(seg.partition)
            if os.path.exists(seg.index_file_path(index_dir, spec.index_type, spec.field_name)):
                continue
            seg.build_or_load_index(spec, index_dir)
            seg.release_index(spec.field_name)
    return True
