"""An incrementally updated BM25 index whose scores equal rank-bm25's `BM25Okapi.get_scores`.

rank-bm25 rebuilds its statistics from the whole corpus and scores every document for every
query in Python, which is too slow for an index that grows file by file and answers at 100k
chunks. This keeps the same statistics (document frequencies, lengths, the epsilon floor for
negative idf) up to date under adds and removes, and scores only the documents that contain a
query term, with numpy over compact posting arrays: the rest score exactly 0 in rank-bm25 too.
tests/retrievers/test_bm25.py checks equality against `BM25Okapi` itself.

Layout, chosen for fast queries, small memory and a fast non-pickle snapshot:
- each document gets a slot; postings per term are append-only `array` buffers of slots and term
  frequencies read by numpy without copying. A term's counts are one byte each (nearly every
  count is below 256) until one exceeds 255; that term's buffer alone then turns uint32, so
  every count stays exact. Each slot's term ids (needed only to take back its document
  frequencies when it is removed) sit in one flat buffer with an offset per slot, not an object
  per chunk, sorted and stored as the gaps between them in 16-bit words (a gap of 0xFFFF or
  more takes three words): about 2 bytes a term instead of 4 (issue 20's 500 MB text file);
- removing a document marks its slot dead and decrements its terms' document frequencies; dead
  slots are masked at query time and squeezed out by `compact()` once they are a quarter;
- per-slot facets (source, file type, page, ingestion time) let metadata filters act inside the
  ranking, before the top-k cut.
"""

from __future__ import annotations

import functools
import threading
from array import array
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar

import numpy as np

if TYPE_CHECKING:
    from retrievers.filters import Filters


@dataclass(frozen=True)
class Facets:
    """What metadata filters look at, per chunk."""

    source: str = ""
    file_type: str = ""
    page: int | None = None
    ingested_at: float = 0.0


NO_FACETS = Facets()
# `BM25Index._kth_floor` reads the rarest query terms' holders until it has this many times k.
FLOOR_POOL = 4
# The most postings whose scores `BM25Index._term_scores` keeps between queries (8 bytes each):
# a question's common terms hold half of a 100k-chunk corpus each, and the same ones recur.
TERM_SCORES_KEPT = 1 << 21
_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Serialise a method on the index's lock: numpy reads the postings buffers in place, and
    an append to a buffer being read raises BufferError (and a half-done add scores wrongly)."""

    @functools.wraps(method)
    def wrapper(self: "BM25Index", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class BM25Index:
    """Term statistics and postings for the live chunks; nothing is read from disk with pickle."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
                 source_terms: bool = False):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        # Each chunk also counts its file name's terms (`text.source_name_terms`), added here
        # from its facets so every way in (ingest, catch-up, repair, rebuild) does the same.
        self.source_terms = source_terms
        self._lock = threading.RLock()
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._lengths = array("d")
        self._alive = bytearray()
        # per-slot term ids (for df bookkeeping on removal): slot s holds
        # _doc_terms[_doc_starts[s]:_doc_starts[s + 1]], as gap words (`_encode_terms`)
        self._doc_terms = array("H")
        self._doc_starts = array("q", [0])
        # per-slot facets
        self._page = array("q")
        self._time = array("d")
        self._source_code = array("i")
        self._type_code = array("i")
        self._sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self._types: list[str] = []
        self._type_index: dict[str, int] = {}
        # vocabulary and postings
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._df = array("q")
        self._post_slots: list[array] = []
        self._post_tfs: list[array] = []
        self._total_len = 0.0
        self._dead = 0
        self._idf: np.ndarray | None = None
        self._norms: np.ndarray | None = None  # per-slot length norms (`_length_norms`)
        self._buffers: dict[str, np.ndarray] = {}  # per-query scratch arrays (`_scratch`)
        # per term, its postings' scores until the index changes (`_term_scores`)
        self._kept_scores: OrderedDict[int, np.ndarray] = OrderedDict()
        self._kept_postings = 0
        self.version = 0  # bumped on every change; snapshots use it to skip needless writes

    # --- maintenance -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._slot_of

    @_locked
    def ids(self) -> set[str]:
        return set(self._slot_of)

    @_locked
    def add(self, chunk_id: str, term_freqs: dict[str, int], facets: Facets = NO_FACETS) -> None:
        """Add (or replace) one chunk given its term counts."""
        if self.source_terms and facets.source:
            term_freqs = _with_source_terms(term_freqs, facets.source)
        if chunk_id in self._slot_of:
            self.remove([chunk_id])
        slot = len(self._ids)
        self._ids.append(chunk_id)
        self._slot_of[chunk_id] = slot
        length = float(sum(term_freqs.values()))
        self._lengths.append(length)
        self._alive.append(1)
        self._total_len += length
        tids: list[int] = []
        for term, tf in term_freqs.items():
            tid = self._vocab.get(term)
            if tid is None:
                tid = self._vocab[term] = len(self._terms)
                self._terms.append(term)
                self._df.append(0)
                self._post_slots.append(array("i"))
                self._post_tfs.append(array("B"))
            self._df[tid] += 1
            self._post_slots[tid].append(slot)
            tfs, tf = self._post_tfs[tid], int(tf)
            if tf > 0xFF and tfs.typecode == "B":  # this term's counts outgrow a byte
                tfs = self._post_tfs[tid] = array("I", tfs)
            tfs.append(tf)
            tids.append(tid)
        tids.sort()
        gaps = [b - a for a, b in zip([0, *tids], tids)]
        if gaps and max(gaps) >= _ESCAPE:
            gaps = _encode_terms(np.array(tids), np.array([0, len(tids)]))[0].tolist()
        self._doc_terms.extend(gaps)
        self._doc_starts.append(len(self._doc_terms))
        self._page.append(-1 if facets.page is None else int(facets.page))
        self._time.append(float(facets.ingested_at))
        self._source_code.append(self._code(facets.source, self._sources, self._source_index))
        self._type_code.append(self._code(facets.file_type, self._types, self._type_index))
        self._changed()

    def add_tokens(self, chunk_id: str, tokens: Iterable[str], facets: Facets = NO_FACETS) -> None:
        self.add(chunk_id, dict(Counter(tokens)), facets)

    @_locked
    def remove(self, chunk_ids: Iterable[str]) -> None:
        changed = False
        for chunk_id in chunk_ids:
            slot = self._slot_of.pop(chunk_id, None)
            if slot is None:
                continue
            self._total_len -= self._lengths[slot]
            self._alive[slot] = 0
            self._ids[slot] = None
            words = self._doc_terms[self._doc_starts[slot]:self._doc_starts[slot + 1]]
            for tid in _decode_terms(np.array(words, dtype=np.uint16)):
                self._df[tid] -= 1
            self._dead += 1
            changed = True
        if changed:
            self._changed()
            if self._dead > 1000 and self._dead * 4 > len(self._ids):
                self.compact()

    @_locked
    def compact(self) -> None:
        """Renumber live slots densely and drop dead postings (after many removals)."""
        keep = np.flatnonzero(np.frombuffer(self._alive, dtype=np.uint8))
        new_slot = np.full(len(self._ids), -1, dtype=np.int64)
        new_slot[keep] = np.arange(len(keep))
        for tid in range(len(self._terms)):
            slots = np.frombuffer(self._post_slots[tid], dtype=np.int32)
            if not len(slots):
                continue
            mapped = new_slot[slots]
            live = mapped >= 0
            self._post_slots[tid] = array("i", mapped[live].astype(np.int32).tobytes())
            code = self._post_tfs[tid].typecode
            self._post_tfs[tid] = array(code, _counts(self._post_tfs[tid])[live].tobytes())
        self._ids = [self._ids[s] for s in keep]
        self._slot_of = {cid: n for n, cid in enumerate(self._ids)}
        sizes = np.diff(np.frombuffer(self._doc_starts, dtype=np.int64))
        kept_terms = np.repeat(np.frombuffer(self._alive, dtype=np.uint8).astype(bool), sizes)
        words = np.frombuffer(self._doc_terms, dtype=np.uint16)
        self._doc_terms = array("H", words[kept_terms].tobytes())
        self._doc_starts = array("q", np.concatenate(([0], np.cumsum(sizes[keep]))).astype(np.int64).tobytes())
        for name, code in (("_lengths", "d"), ("_page", "q"), ("_time", "d"),
                           ("_source_code", "i"), ("_type_code", "i")):
            values = np.frombuffer(getattr(self, name), dtype=_NP[code])[keep]
            setattr(self, name, array(code, values.tobytes()))
        self._alive = bytearray(b"\x01" * len(keep))
        self._dead = 0
        self._changed()

    def _changed(self) -> None:
        self._idf = None
        self._norms = None
        self._kept_scores.clear()
        self._kept_postings = 0
        self.version += 1

    @staticmethod
    def _code(value: str, table: list[str], index: dict[str, int]) -> int:
        code = index.get(value)
        if code is None:
            code = index[value] = len(table)
            table.append(value)
        return code

    # --- scoring -----------------------------------------------------------------------
    def _idf_table(self) -> np.ndarray:
        """rank-bm25's idf: log((N - n + 0.5) / (n + 0.5)), negatives floored at epsilon * mean
        over the terms that occur in the corpus."""
        if self._idf is None:
            n_docs = len(self._slot_of)
            df = np.frombuffer(self._df, dtype=np.int64).astype(np.float64)
            present = df > 0
            idf = np.zeros(len(df))
            idf[present] = np.log(n_docs - df[present] + 0.5) - np.log(df[present] + 0.5)
            if present.any():
                floor = self.epsilon * float(idf[present].sum() / present.sum())
                idf[present & (idf < 0)] = floor
            self._idf = idf
        return self._idf

    def _length_norms(self) -> np.ndarray:
        """Per slot, k1 * (1 - b + b * length / avgdl): the part of BM25's denominator that
        depends on the document alone, computed once per change of the index (like the idf
        table) rather than once per posting of every query term (the same operations in the
        same order, so the scores keep every bit)."""
        if self._norms is None:
            lengths = np.frombuffer(self._lengths, dtype=np.float64)
            avgdl = self._total_len / len(self._slot_of)
            self._norms = self.k1 * (1 - self.b + self.b * lengths / avgdl)
        return self._norms

    def _scratch(self, name: str, size: int, dtype: type) -> np.ndarray:
        """A reusable buffer of at least `size` items, its first `size` returned. Why: at 1M
        chunks a query's arrays are megabytes, which glibc maps fresh (and the kernel zeroes
        and faults in) on every query; kept here, they cost nothing after the first. Callers
        hold the index's lock, so one query uses them at a time."""
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < size:
            buffer = self._buffers[name] = np.empty(max(size, 1024), dtype=dtype)
        return buffer[:size]

    @_locked
    def holding(self, terms: Iterable[str]) -> set[str]:
        """Which of `terms` some live chunk holds (its text, or its file name where chunks count
        theirs): whether the corpus mentions a name at all (`decline_names_in_corpus`)."""
        return {t for t in terms if self._live_term_id(t) is not None}

    def _live_term_id(self, term: str) -> int | None:
        """The term's id when some live chunk holds it, else None (removals leave df at 0)."""
        tid = self._vocab.get(term)
        return tid if tid is not None and self._df[tid] > 0 else None

    def _present_terms(self, query_tokens: list[str]) -> list[int]:
        """The ids of the query's terms that some live chunk holds, in query order (repeats
        kept: rank-bm25 adds a repeated query term once per occurrence)."""
        return [tid for tid in map(self._live_term_id, query_tokens) if tid is not None]

    def _score_arrays(self, query_tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores per slot, mask of live slots that contain a query term), in scratch buffers
        valid until the next query.

        Each term's posting scores come from `_term_scores` (kept from an earlier query, or
        computed in place: a query's common terms have tens of thousands of postings at 100k
        chunks, and a new array per operation cost more than the arithmetic)."""
        n_slots = len(self._ids)
        total = self._scratch("total", n_slots, np.float64)
        touched = self._scratch("touched", n_slots, np.bool_)
        total.fill(0)
        touched.fill(False)
        if not self._slot_of:
            return total, touched
        idf = self._idf_table()
        tids = self._present_terms(query_tokens)
        # With every idf > 0, a slot holds a query term iff it scored > 0: `touched` is read off
        # the scores at the end instead of being set per posting.
        mark = any(idf[tid] <= 0 for tid in tids)
        for tid in tids:
            slots = np.frombuffer(self._post_slots[tid], dtype=np.int32)
            total[slots] += self._term_scores(tid, slots)
            if mark:
                touched[slots] = True
        if not mark:
            np.greater(total, 0, out=touched)
        if self._dead:
            touched &= np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        return total, touched

    def _term_scores(self, tid: int, slots: np.ndarray) -> np.ndarray:
        """The BM25 score of term `tid` in each document holding it (`slots`), kept until the
        index changes (up to `TERM_SCORES_KEPT` postings, the least recently used let go).
        Why: a question's common terms hold tens of thousands of postings each at 100k chunks,
        and computing their scores took six passes over them per query where adding kept ones
        takes one (the same operations in the same order as before, so the scores keep every
        bit)."""
        kept = self._kept_scores.get(tid)
        if kept is not None:
            self._kept_scores.move_to_end(tid)
            return kept
        keep = len(slots) <= TERM_SCORES_KEPT
        scores = (np.empty(len(slots), dtype=np.float64) if keep
                  else self._scratch("tfs", len(slots), np.float64))
        np.copyto(scores, _counts(self._post_tfs[tid]), casting="unsafe")
        denominator = self._scratch("denominator", len(slots), np.float64)
        np.take(self._length_norms(), slots, out=denominator)
        denominator += scores  # tf + norm
        scores *= self.k1 + 1
        scores /= denominator
        scores *= self._idf_table()[tid]  # idf * (tf * (k1 + 1) / (tf + norm)), as rank-bm25 does
        if keep:
            self._kept_scores[tid] = scores
            self._kept_postings += len(scores)
            while self._kept_postings > TERM_SCORES_KEPT:
                self._kept_postings -= len(self._kept_scores.popitem(last=False)[1])
        return scores

    @_locked
    def scores(self, query_tokens: list[str]) -> dict[str, float]:
        """BM25Okapi scores of the chunks that contain at least one query term."""
        total, touched = self._score_arrays(query_tokens)
        return {self._ids[s]: float(total[s]) for s in np.flatnonzero(touched).tolist()}

    @_locked
    def top_k(
        self, query_tokens: list[str], k: int, allowed: set[str] | None = None,
        filters: "Filters | None" = None,
    ) -> list[tuple[str, float]]:
        """Best `k` (chunk_id, score), ties by id; `allowed` ids and `filters` apply before the cut."""
        total, touched = self._score_arrays(query_tokens)
        if filters is not None and not filters.empty:
            touched &= self.filter_mask(filters)
        if allowed is not None:
            touched &= np.fromiter((cid in allowed for cid in self._ids), dtype=bool,
                                   count=len(self._ids))
        floor = self._kth_floor(query_tokens, total, touched, k)
        if floor is not None:  # the few slots at or above it, in one pass
            candidates = np.flatnonzero(np.greater_equal(total, floor) & touched)
        else:
            candidates = np.flatnonzero(touched)
        if len(candidates) > k:
            # keep everything tied with the k-th score so the id tie-break is exact
            scores = total[candidates]
            kth = np.partition(scores, len(candidates) - k)[len(candidates) - k]
            candidates = candidates[scores >= kth]
        ranked = sorted(((self._ids[s], float(total[s])) for s in candidates.tolist()),
                        key=lambda item: (-item[1], item[0]))
        return ranked[:k]

    def _kth_floor(self, query_tokens: list[str], total: np.ndarray, touched: np.ndarray,
                   k: int) -> float | None:
        """A score at or below the k-th best among the `touched` slots: the k-th best among the
        slots holding the query's rarest terms (a subset's k-th best is at most the whole's),
        or None when they hold fewer than k. Why: a question's common terms touch half the
        corpus (p50 ~48k of 100k chunks), and ranking all of those for the top 50 took more
        time than scoring them; the rare terms' holders score highest, so few slots pass it."""
        if k <= 0 or len(touched) <= FLOOR_POOL * k:
            return None
        tids = sorted(set(self._present_terms(query_tokens)),
                      key=lambda tid: len(self._post_slots[tid]))
        parts: list[np.ndarray] = []
        held = 0
        for tid in tids:
            parts.append(np.frombuffer(self._post_slots[tid], dtype=np.int32))
            held += len(parts[-1])
            if held >= FLOOR_POOL * k:
                break
        if held < k:
            return None
        pool = _distinct(np.concatenate(parts)) if len(parts) > 1 else parts[0]
        pool = pool[touched[pool]]
        if len(pool) < k:
            return None
        scores = total[pool]
        return float(np.partition(scores, len(pool) - k)[len(pool) - k])

    def search(self, query: str, k: int, filters: "Filters | None" = None
               ) -> list[tuple[str, float]]:
        """`KeywordIndex.search`: the query tokenized as chunks were, then `top_k`."""
        from retrievers.text import tokenize

        return self.top_k(tokenize(query), k, filters=filters)

    def filter_mask(self, filters: "Filters") -> np.ndarray:
        """Per-slot booleans: which chunks pass `filters` (vectorised over the facets)."""
        n = len(self._ids)
        mask = np.ones(n, dtype=bool)
        if filters.sources:
            codes = [c for c, s in enumerate(self._sources) if filters.source_matches(s)]
            mask &= np.isin(np.frombuffer(self._source_code, dtype=np.int32), codes)
        if filters.file_types:
            codes = [c for c, t in enumerate(self._types) if t in filters.file_types]
            mask &= np.isin(np.frombuffer(self._type_code, dtype=np.int32), codes)
        times = np.frombuffer(self._time, dtype=np.float64)
        if filters.since is not None:
            mask &= times >= filters.since
        if filters.until is not None:
            mask &= times <= filters.until
        if filters.page_min is not None or filters.page_max is not None:
            pages = np.frombuffer(self._page, dtype=np.int64)
            mask &= pages >= max(0, filters.page_min or 0)
            if filters.page_max is not None:
                mask &= pages <= filters.page_max
        return mask

    @_locked
    def facets_of(self, chunk_id: str) -> Facets:
        slot = self._slot_of[chunk_id]
        page = self._page[slot]
        return Facets(self._sources[self._source_code[slot]], self._types[self._type_code[slot]],
                      None if page < 0 else page, self._time[slot])

    # --- snapshot (numpy .npz, no pickle) ------------------------------------------------
    def snapshot_members(self) -> Iterator[tuple[str, np.dtype, int, Iterator[memoryview]]]:
        """The whole index as the snapshot's arrays, one at a time: (name, dtype, length, its
        bytes in pieces). Why pieces: the postings are one buffer per term, and joining them
        into arrays first (as `np.savez` needs) doubled the index's memory for a moment: the
        500 MB text file (~500k chunks) peaked 0.5 GB higher while it saved. Holds the lock
        until the last member is read; compacts first."""
        with self._lock:
            if self._dead:
                self.compact()
            sizes = np.array([len(p) for p in self._post_slots], dtype=np.int64)
            offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
            np.cumsum(sizes, out=offsets[1:])
            whole = {
                "params": np.array([self.k1, self.b, self.epsilon]),
                "ids": _pack(self._ids), "terms": _pack(self._terms),
                "sources": _pack(self._sources), "types": _pack(self._types),
                "df": np.frombuffer(self._df, dtype=np.int64),
                "post_offsets": offsets,
            }
            for name, values in whole.items():
                yield name, values.dtype, len(values), iter([_bytes(values)])
            total = int(offsets[-1])
            yield "post_slots", np.dtype(np.int32), total, (_bytes(p) for p in self._post_slots)
            # counts stored as int32 (the format's type), one term's buffer widened at a time
            yield "post_tfs", np.dtype(np.int32), total, (
                _bytes(_counts(p).astype(np.int32)) for p in self._post_tfs)
            for name, values in (
                ("doc_offsets", np.frombuffer(self._doc_starts, dtype=np.int64)),
                ("doc_terms", np.frombuffer(self._doc_terms, dtype=np.uint16)),
                ("lengths", np.frombuffer(self._lengths, dtype=np.float64)),
                ("page", np.frombuffer(self._page, dtype=np.int64)),
                ("time", np.frombuffer(self._time, dtype=np.float64)),
                ("source_code", np.frombuffer(self._source_code, dtype=np.int32)),
                ("type_code", np.frombuffer(self._type_code, dtype=np.int32)),
            ):
                yield name, values.dtype, len(values), iter([_bytes(values)])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole index as plain arrays (compacted first): `snapshot_members` joined."""
        return {name: np.frombuffer(b"".join(pieces), dtype=dtype)
                for name, dtype, _, pieces in self.snapshot_members()}

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], k1: float = 1.5, b: float = 0.75,
                    epsilon: float = 0.25, source_terms: bool = False) -> "BM25Index":
        """The index `to_arrays` gave; `source_terms` must be what it was built with (the
        postings hold the file-name terms or not; `bm25_store` keeps it in the header)."""
        index = cls(k1, b, epsilon, source_terms)
        index._ids = _unpack(data["ids"])
        index._slot_of = {cid: n for n, cid in enumerate(index._ids)}
        index._terms = _unpack(data["terms"])
        index._vocab = {t: n for n, t in enumerate(index._terms)}
        index._sources = _unpack(data["sources"])
        index._source_index = {s: n for n, s in enumerate(index._sources)}
        index._types = _unpack(data["types"])
        index._type_index = {t: n for n, t in enumerate(index._types)}
        index._df = array("q", data["df"].astype(np.int64).tobytes())
        offsets = data["post_offsets"].tolist()
        # One member at a time, each let go once it is split per term: from an `np.load`ed
        # snapshot (read lazily) a 500k-chunk index opened ~0.4 GB lower at its peak.
        slots = np.asarray(data["post_slots"], dtype=np.int32)
        index._post_slots = [array("i", slots[a:z].tobytes()) for a, z in zip(offsets, offsets[1:])]
        del slots
        tfs = np.asarray(data["post_tfs"]).astype(np.uint32, copy=False)
        wide = set((np.searchsorted(offsets, np.flatnonzero(tfs > 0xFF), side="right") - 1).tolist())
        narrow = tfs.astype(np.uint8)  # exact wherever a term has no count over 255
        index._post_tfs = [array("I", tfs[a:z].tobytes()) if tid in wide else
                           array("B", narrow[a:z].tobytes())
                           for tid, (a, z) in enumerate(zip(offsets, offsets[1:]))]
        del tfs, narrow
        words, starts = np.asarray(data["doc_terms"]), np.asarray(data["doc_offsets"])
        if words.dtype != np.uint16:  # a format-1 snapshot: plain term ids per slot
            words, starts = _encode_terms(words, starts)
        index._doc_starts = array("q", starts.astype(np.int64).tobytes())
        index._doc_terms = array("H", words.astype(np.uint16).tobytes())
        lengths = data["lengths"].astype(np.float64)  # read once: an npz member is read per access
        index._lengths = array("d", lengths.tobytes())
        index._total_len = float(lengths.sum())
        index._alive = bytearray(b"\x01" * len(index._ids))
        index._page = array("q", data["page"].astype(np.int64).tobytes())
        index._time = array("d", data["time"].astype(np.float64).tobytes())
        index._source_code = array("i", data["source_code"].astype(np.int32).tobytes())
        index._type_code = array("i", data["type_code"].astype(np.int32).tobytes())
        return index


_NP = {"d": np.float64, "q": np.int64, "i": np.int32}
_COUNT_TYPES = {"B": np.uint8, "I": np.uint32}


_ESCAPE = 0xFFFF  # a gap this large or larger: this word, then the gap's low and high words


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted. Why not `np.unique`: numpy 2.4 answers it for integers with
    a hash table that took 0.7-3 ms for the ~8k slots of a question's rarest terms at 100k
    chunks, against 0.02 ms for a sort (the slowest BM25 searches of the retrieval benchmark)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _encode_terms(terms: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each slot's term ids (`terms[starts[s]:starts[s + 1]]`) sorted and written as the gaps
    between them (the first from 0) in uint16 words, a gap of 0xFFFF or more as three words:
    (the words, each slot's start in them). Why: a chunk's ~75 term ids are mostly close
    together once sorted, so 2 bytes a term instead of 4."""
    terms = np.asarray(terms, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.diff(starts)
    slot = np.repeat(np.arange(len(sizes)), sizes)
    ordered = terms[np.lexsort((terms, slot))]  # each slot's block stays where it was
    gaps = ordered.copy()
    gaps[1:] -= ordered[:-1]
    heads = starts[:-1][sizes > 0]
    gaps[heads] = ordered[heads]
    wide = gaps >= _ESCAPE
    width = np.where(wide, 3, 1)
    ends = np.cumsum(width)
    at = ends - width
    words = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint16)
    words[at] = np.where(wide, _ESCAPE, gaps)
    words[at[wide] + 1] = gaps[wide] & 0xFFFF
    words[at[wide] + 2] = gaps[wide] >> 16
    return words, np.concatenate(([0], ends))[starts]


def _decode_terms(words: np.ndarray) -> list[int]:
    """One slot's term ids back from its words (`_encode_terms`)."""
    if not (words == _ESCAPE).any():
        return np.cumsum(words, dtype=np.int64).tolist()
    out, total, i, w = [], 0, 0, words.tolist()
    while i < len(w):
        if w[i] == _ESCAPE:
            gap, i = w[i + 1] | w[i + 2] << 16, i + 3
        else:
            gap, i = w[i], i + 1
        total += gap
        out.append(total)
    return out


def _counts(tfs: array) -> np.ndarray:
    """A term's counts as numpy, without a copy (uint8, or uint32 once one passed 255)."""
    return np.frombuffer(tfs, dtype=_COUNT_TYPES[tfs.typecode])


def _pack(strings: list[str | None]) -> np.ndarray:
    """Strings as NUL-separated UTF-8 bytes (no pickle, no fixed-width padding)."""
    if not strings:
        return np.zeros(0, dtype=np.uint8)
    text = "".join((s or "") + "\0" for s in strings)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _unpack(data: np.ndarray) -> list[str]:
    return data.tobytes().decode("utf-8").split("\0")[:-1] if len(data) else []


def _bytes(values: Any) -> memoryview:
    """A buffer (array, numpy array) as bytes without a copy; `len` counts bytes."""
    return memoryview(values).cast("B")



def _with_source_terms(term_freqs: Mapping[str, int], source: str) -> dict[str, int]:
    from retrievers.text import source_name_terms

    merged = dict(term_freqs)
    for term in source_name_terms(source):
        merged[term] = merged.get(term, 0) + 1
    return merged


def facets_of(chunk) -> Facets:
    """The filterable metadata of a `Chunk`."""
    return Facets(chunk.source, chunk.file_type, chunk.page, chunk.ingested_at)
