"""Query both indexes and fuse: the retriever behind `ask`, `retrieve` and the llama-index views.

Filters act inside each retriever (a Milvus expression on the dense side, a facet mask in BM25)
so the top-k is taken among matching chunks, never cut first and filtered after. The sparse
side is either the in-process BM25 index (`sparse="rank-bm25"`) or Milvus's own BM25 function
(`sparse="milvus"`, for servers shared by many processes).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from retrievers.filters import Filters, as_filters
from retrievers.fusion import Fused, reciprocal_rank_fusion, weighted_score_fusion, zscore_fusion
from retrievers.index import ChunkIndex
from retrievers.records import Hit
from retrievers.text import tokenize

MODES = ("hybrid", "bm25", "dense")
SPARSE_BACKENDS = ("rank-bm25", "milvus")


class HybridRetriever:
    """BM25 + dense search, fused by weighted z-scores (default), min-max scores or RRF,
    optionally reranked by a cross-encoder."""

    def __init__(
        self, index: ChunkIndex, embed_query: Callable[[str], np.ndarray], *,
        candidate_k: int = 50, fusion: str = "zscore", rrf_k: int = 60,
        weights: dict[str, float] | None = None, sparse: str = "rank-bm25",
        reranker: Any = None, rerank_top_n: int = 20,
    ):
        if sparse not in SPARSE_BACKENDS:
            raise ValueError(f"sparse must be one of {SPARSE_BACKENDS}, not {sparse!r}")
        self.index = index
        self.embed_query = embed_query
        self.candidate_k = candidate_k
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.weights = weights or {"bm25": 1.0, "dense": 1.0}  # Settings carries the tuned ones
        self.sparse = sparse
        self.reranker = reranker
        self.rerank_top_n = rerank_top_n

    def bm25(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        if self.sparse == "milvus":
            live = self.index.live  # membership test only: copying 100k ids per query costs ms
            hits = self.index.dense.search_text(query, k, _expr(filters))
            return [(cid, score) for cid, score in hits if cid in live]
        return self.index.bm25.top_k(tokenize(query), k, filters=filters)

    def dense(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        live = self.index.live  # the live ids (membership test, no copy)
        if not len(live):
            return []
        hits = self.index.dense.search(self.embed_query(query), k, _expr(filters))
        # Rows of an ingest in progress (pending) or just replaced (retired) are not answers yet.
        return [(cid, score) for cid, score in hits if cid in live]

    def fuse(self, rankings: dict[str, list[tuple[str, float]]]) -> list[Fused]:
        if self.fusion == "zscore":
            return zscore_fusion(rankings, self.weights)
        if self.fusion == "weighted":
            return weighted_score_fusion(rankings, self.weights)
        return reciprocal_rank_fusion(rankings, self.rrf_k, self.weights)

    def retrieve(
        self, query: str, top_k: int = 5, mode: str = "hybrid",
        filters: Filters | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        filters = as_filters(filters)
        keep = max(top_k, self.rerank_top_n) if self.reranker is not None else top_k
        depth = max(self.candidate_k, keep)
        rankings: dict[str, list[tuple[str, float]]] = {}
        if mode in ("hybrid", "bm25"):
            rankings["bm25"] = self.bm25(query, depth, filters)
        if mode in ("hybrid", "dense"):
            rankings["dense"] = self.dense(query, depth, filters)
        if mode == "hybrid":
            fused = self.fuse(rankings)
        else:
            (name, ranked), = rankings.items()
            fused = [Fused(cid, score, {name: r}, {name: score})
                     for r, (cid, score) in enumerate(ranked, start=1)]
        fused = fused[:keep]
        chunks = self.index.chunks([f.chunk_id for f in fused])
        hits = [Hit(chunks[f.chunk_id], f.score, f.ranks, f.scores)
                for f in fused if f.chunk_id in chunks]
        if self.reranker is not None and hits:
            hits = self.reranker.rerank(query, hits)
        return hits[:top_k]


def _expr(filters: Filters | None) -> str:
    return filters.milvus_expr() if filters is not None else ""
