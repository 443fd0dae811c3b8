"""Top-k among the live chunks, from a store that also holds rows that are not live yet.

Milvus holds the rows of an ingest in flight (staged, not yet published) and of chunks just
replaced until they are deleted, and cannot be told cheaply which ids are live. Filtering its
top-k afterwards returns fewer than k hits whenever such rows rank high: the concurrency test
saw a hybrid query come back with 1 hit of 5 while a 256-chunk batch was in flight. So the
search widens its limit until k live hits are found or the store has nothing more: exact, and
one search call whenever no ingest is running.
"""

from __future__ import annotations

from typing import Callable, Container

from retrievers.protocols import Ranked

MAX_LIMIT = 16384  # Milvus's largest top-k


def top_live(search: Callable[[int], Ranked], k: int, live: Container[str]) -> Ranked:
    """The best `k` hits of `search(limit)` whose ids are in `live`, in the store's order."""
    limit = k
    while True:
        hits = search(limit)
        kept = [(cid, score) for cid, score in hits if cid in live]
        if len(kept) >= k or len(hits) < limit or limit >= MAX_LIMIT:
            return kept[:k]
        limit = min(MAX_LIMIT, max(limit * 4, limit + 2 * (limit - len(kept))))
