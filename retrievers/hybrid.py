"""Query both indexes and fuse: the retriever behind `ask`, `retrieve` and the llama-index views."""

from __future__ import annotations

from typing import Callable

import numpy as np

from retrievers.fusion import Fused, reciprocal_rank_fusion, weighted_score_fusion
from retrievers.index import ChunkIndex
from retrievers.records import Hit
from retrievers.text import tokenize

MODES = ("hybrid", "bm25", "dense")


class HybridRetriever:
    """BM25 + dense search, fused by RRF (default) or weighted normalised scores."""

    def __init__(
        self, index: ChunkIndex, embed_query: Callable[[str], np.ndarray], *,
        candidate_k: int = 50, fusion: str = "rrf", rrf_k: int = 60,
        weights: dict[str, float] | None = None,
    ):
        self.index = index
        self.embed_query = embed_query
        self.candidate_k = candidate_k
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.weights = weights or {"bm25": 1.0, "dense": 1.0}

    def bm25(self, query: str, k: int) -> list[tuple[str, float]]:
        return self.index.bm25.top_k(tokenize(query), k)

    def dense(self, query: str, k: int) -> list[tuple[str, float]]:
        live = self.index.live_ids()
        if not live:
            return []
        hits = self.index.dense.search(self.embed_query(query), k)
        # Rows of an ingest in progress (pending) or just replaced (retired) are not answers yet.
        return [(cid, score) for cid, score in hits if cid in live]

    def retrieve(self, query: str, top_k: int = 5, mode: str = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        depth = max(self.candidate_k, top_k)
        rankings: dict[str, list[tuple[str, float]]] = {}
        if mode in ("hybrid", "bm25"):
            rankings["bm25"] = self.bm25(query, depth)
        if mode in ("hybrid", "dense"):
            rankings["dense"] = self.dense(query, depth)
        if mode == "hybrid":
            if self.fusion == "weighted":
                fused = weighted_score_fusion(rankings, self.weights)
            else:
                fused = reciprocal_rank_fusion(rankings, self.rrf_k, self.weights)
        else:
            (name, ranked), = rankings.items()
            fused = [Fused(cid, score, {name: r}, {name: score})
                     for r, (cid, score) in enumerate(ranked, start=1)]
        fused = fused[:top_k]
        chunks = self.index.chunks([f.chunk_id for f in fused])
        return [
            Hit(chunks[f.chunk_id], f.score, f.ranks, f.scores) for f in fused if f.chunk_id in chunks
        ]
