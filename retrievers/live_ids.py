"""The live chunk ids alone, for `sparse = "milvus"`.

There keyword search runs inside Milvus (its built-in BM25 function), so a process keeps no BM25
postings; it still needs to know which ids are answers, because Milvus also holds the rows of an
ingest in flight (pending) and of a file just replaced (retired) for a moment. This set has the
write interface of `BM25Index` (add, add_tokens, remove), so `ChunkIndex` keeps either in step the
same way. At 100k chunks it is a few MB instead of the BM25 index's postings.
"""

from __future__ import annotations

from typing import Any, Iterable


class LiveIds:
    def __init__(self, chunk_ids: Iterable[str] = ()):
        self._ids = set(chunk_ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._ids

    def ids(self) -> set[str]:
        return set(self._ids)

    def add(self, chunk_id: str, term_freqs: Any = None, facets: Any = None) -> None:
        self._ids.add(chunk_id)

    def add_tokens(self, chunk_id: str, tokens: Any = None, facets: Any = None) -> None:
        self._ids.add(chunk_id)

    def remove(self, chunk_ids: Iterable[str]) -> None:
        self._ids.difference_update(chunk_ids)
