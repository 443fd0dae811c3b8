"""Keyword search by Milvus's built-in BM25 function, for `sparse = "milvus"`.

There the text and its sparse BM25 vector live in the Milvus collection (the dense store
writes them with each row), so a process keeps no postings: only the set of live ids. It
still needs that set, because Milvus also holds the rows of an ingest in flight (pending) and
of a file just replaced (retired) for a moment; search returns live ids only. At 100k chunks
the set is a few MB instead of the BM25 index's postings. Writes take term counts and facets
like `BM25Index` (the `KeywordIndex` protocol) and ignore them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterable

from retrievers.live import top_live

if TYPE_CHECKING:
    from retrievers.filters import Filters
    from retrievers.milvus_store import MilvusDenseStore


class MilvusKeywordIndex:
    def __init__(self, store: "MilvusDenseStore", chunk_ids: Iterable[str] = ()):
        self.store = store
        self._ids = set(chunk_ids)
        self._lock = threading.Lock()  # ids() copies the set; a concurrent add would break it

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._ids

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def add(self, chunk_id: str, term_freqs: Any = None, facets: Any = None) -> None:
        with self._lock:
            self._ids.add(chunk_id)

    def add_tokens(self, chunk_id: str, tokens: Any = None, facets: Any = None) -> None:
        self.add(chunk_id)

    def remove(self, chunk_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.difference_update(chunk_ids)

    def search(self, query: str, k: int, filters: "Filters | None" = None
               ) -> list[tuple[str, float]]:
        return top_live(lambda limit: self.store.search_text(query, limit, filters), k, self._ids)
