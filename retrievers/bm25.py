"""An incrementally updated BM25 index whose scores equal rank-bm25's `BM25Okapi.get_scores`.

rank-bm25 rebuilds its statistics from the whole corpus and scores every document for every
query, which is too slow for an index that grows file by file and answers at 100k chunks. This
keeps the same statistics (document frequencies, lengths, the epsilon floor for negative idf)
up to date under adds and removes, and scores only the documents that contain a query term:
the rest score exactly 0 in rank-bm25 too. tests/retrievers/test_bm25.py checks equality
against `BM25Okapi` itself.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable

import numpy as np


class BM25Index:
    """Term statistics and postings for the live chunks; nothing is read from disk with pickle."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._lengths: list[int] = []
        self._terms_of: list[tuple[str, ...]] = []
        self._free: list[int] = []
        self._postings: dict[str, dict[int, int]] = {}
        self._total_len = 0
        self._idf: dict[str, float] | None = None
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # --- maintenance -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._slot_of

    def ids(self) -> set[str]:
        return set(self._slot_of)

    def add(self, chunk_id: str, term_freqs: dict[str, int]) -> None:
        """Add (or replace) one chunk given its term counts."""
        if chunk_id in self._slot_of:
            self.remove([chunk_id])
        slot = self._free.pop() if self._free else len(self._ids)
        if slot == len(self._ids):
            self._ids.append(chunk_id)
            self._lengths.append(0)
            self._terms_of.append(())
        self._ids[slot] = chunk_id
        length = sum(term_freqs.values())
        self._lengths[slot] = length
        self._total_len += length
        self._slot_of[chunk_id] = slot
        self._terms_of[slot] = tuple(term_freqs)
        for term, tf in term_freqs.items():
            self._postings.setdefault(term, {})[slot] = tf
            self._arrays.pop(term, None)
        self._idf = None

    def add_tokens(self, chunk_id: str, tokens: Iterable[str]) -> None:
        self.add(chunk_id, dict(Counter(tokens)))

    def remove(self, chunk_ids: Iterable[str]) -> None:
        for chunk_id in chunk_ids:
            slot = self._slot_of.pop(chunk_id, None)
            if slot is None:
                continue
            self._total_len -= self._lengths[slot]
            self._lengths[slot] = 0
            self._ids[slot] = None
            self._free.append(slot)
            for term in self._terms_of[slot]:
                postings = self._postings[term]
                del postings[slot]
                self._arrays.pop(term, None)
                if not postings:
                    del self._postings[term]
            self._terms_of[slot] = ()
            self._idf = None

    # --- scoring -----------------------------------------------------------------------
    def _idf_table(self) -> dict[str, float]:
        """rank-bm25's idf: log((N - n + 0.5) / (n + 0.5)), negatives floored at epsilon * mean."""
        if self._idf is None:
            n_docs = len(self._slot_of)
            idf: dict[str, float] = {}
            total = 0.0
            negative = []
            for term, postings in self._postings.items():
                value = math.log(n_docs - len(postings) + 0.5) - math.log(len(postings) + 0.5)
                idf[term] = value
                total += value
                if value < 0:
                    negative.append(term)
            floor = self.epsilon * (total / len(idf)) if idf else 0.0
            for term in negative:
                idf[term] = floor
            self._idf = idf
        return self._idf

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(term)
        if arrays is None:
            postings = self._postings[term]
            slots = np.fromiter(postings.keys(), dtype=np.int64, count=len(postings))
            tfs = np.fromiter(postings.values(), dtype=np.float64, count=len(postings))
            arrays = self._arrays[term] = (slots, tfs)
        return arrays

    def scores(self, query_tokens: list[str]) -> dict[str, float]:
        """Non-zero BM25Okapi scores of the chunks that contain at least one query term."""
        if not self._slot_of:
            return {}
        idf = self._idf_table()
        avgdl = self._total_len / len(self._slot_of)
        lengths = np.asarray(self._lengths, dtype=np.float64)
        acc: dict[int, float] = {}
        total = np.zeros(len(self._ids), dtype=np.float64)
        touched = []
        for term in query_tokens:
            if term not in self._postings:
                continue
            slots, tfs = self._posting_arrays(term)
            norm = self.k1 * (1 - self.b + self.b * lengths[slots] / avgdl)
            total[slots] += idf[term] * (tfs * (self.k1 + 1) / (tfs + norm))
            touched.append(slots)
        if not touched:
            return acc
        slots = np.unique(np.concatenate(touched))
        return {self._ids[s]: float(total[s]) for s in slots.tolist()}

    def top_k(
        self, query_tokens: list[str], k: int, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Best `k` (chunk_id, score), restricted to `allowed` ids before truncation."""
        scored = self.scores(query_tokens)
        if allowed is not None:
            scored = {cid: s for cid, s in scored.items() if cid in allowed}
        ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:k]
