"""The interfaces the retrieval layer is built on, so a backend can be swapped or added.

Each protocol has one shared conformance suite in tests/retrievers/ that every implementation
runs (as haystack's document-store test mixins do):
- `DenseStore`: chunk vectors with metadata filters (Milvus Lite, `milvus-lite server`, a Milvus
  server): tests/retrievers/test_dense_conformance.py.
- `KeywordIndex`: the live chunk ids and keyword search over them (`BM25Index`, rank-bm25
  scoring in-process; `MilvusKeywordIndex`, Milvus's built-in BM25 function):
  tests/retrievers/test_keyword_conformance.py.
- `RankedSearch`: anything that turns a query into a ranked list of (chunk id, score);
  `HybridRetriever` fuses any set of them by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from retrievers.bm25 import Facets
    from retrievers.filters import Filters
    from retrievers.records import Chunk, Hit

Ranked = list[tuple[str, float]]  # (chunk id, score), best first


@runtime_checkable
class DenseStore(Protocol):
    """Vectors of chunks, searchable by similarity among the rows matching a filter."""

    dim: int

    def upsert(self, chunks: Sequence["Chunk"], vectors: np.ndarray) -> None:
        """Insert or replace rows (ids are the chunks' ids; a redo is idempotent)."""

    def delete(self, chunk_ids: Iterable[str]) -> None: ...

    def flush(self) -> None:
        """Make writes durable and fast to search."""

    def search(self, vector: np.ndarray, k: int, filters: "Filters | None" = None) -> Ranked:
        """Top-k by cosine similarity (higher is better) among rows matching `filters`."""

    def all_ids(self) -> set[str]:
        """Every stored id (a full scan: for checks and repair, not queries)."""

    def count(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class KeywordIndex(Protocol):
    """The set of live chunk ids, kept in step with the catalog, and keyword search over it.

    Writes take each chunk's term counts (what the catalog stores) and facets; a backend that
    keeps the text elsewhere (Milvus BM25 reads the text the dense store holds) may ignore them.
    Search returns live ids only.
    """

    def __len__(self) -> int: ...

    def __contains__(self, chunk_id: object) -> bool: ...

    def ids(self) -> set[str]: ...

    def add(self, chunk_id: str, term_freqs: dict[str, int], facets: "Facets") -> None: ...

    def add_tokens(self, chunk_id: str, tokens: Iterable[str], facets: "Facets") -> None: ...

    def remove(self, chunk_ids: Iterable[str]) -> None: ...

    def search(self, query: str, k: int, filters: "Filters | None" = None) -> Ranked: ...


class RankedSearch(Protocol):
    """One retriever's ranked candidates for a query, filters applied before the cut."""

    def __call__(self, query: str, k: int, filters: "Filters | None" = None) -> Ranked: ...


class Reranker(Protocol):
    """Reorders fused hits (e.g. a cross-encoder); keeps each retriever's ranks and scores."""

    def rerank(self, query: str, hits: list["Hit"]) -> list["Hit"]: ...
