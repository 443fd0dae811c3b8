"""The hybrid retriever: strategies by name (an unknown one is an error), any set of named
retrievers, and dense results that an ingest in flight cannot crowd out."""

from __future__ import annotations

import pytest

from retrievers.hybrid import HybridRetriever
from retrievers.records import Chunk
from retrievers.strategies import Fusion


def ranked(*ids: str) -> list[tuple[str, float]]:
    return [(cid, float(len(ids) - n)) for n, cid in enumerate(ids)]


def chunk_table(ids: list[str]) -> dict[str, Chunk]:
    return {cid: Chunk(chunk_id=cid, text=f"text of {cid}", source="/s", source_id="s",
                       content_hash="h", position=0) for cid in ids}


def test_unknown_fusion_or_mode_is_an_error_not_a_fallback():
    searches = {"bm25": lambda q, k, f=None: ranked("a", "b")}
    with pytest.raises(ValueError, match="fusion must be one of"):
        HybridRetriever(searches, chunk_table, fusion="rrf2")
    retriever = HybridRetriever(searches, chunk_table)
    with pytest.raises(ValueError, match="mode must be one of"):
        retriever.retrieve("q", mode="sparse")


def test_any_set_of_named_retrievers_is_fused():
    searches = {"bm25": lambda q, k, f=None: ranked("a", "b", "c"),
                "dense": lambda q, k, f=None: ranked("c", "d"),
                "titles": lambda q, k, f=None: ranked("c", "a")}
    retriever = HybridRetriever(searches, chunk_table, fusion=Fusion.RRF)
    hits = retriever.retrieve("q", top_k=4)
    assert hits[0].chunk.chunk_id == "c" and set(hits[0].ranks) == {"bm25", "dense", "titles"}
    assert [h.chunk.chunk_id for h in retriever.retrieve("q", top_k=2, mode="titles")] == ["c", "a"]
    assert retriever.modes == ("hybrid", "bm25", "dense", "titles")


def test_dense_top_k_counts_only_live_chunks_while_an_ingest_is_in_flight(filter_index, embedder):
    """Vectors staged by an ingest that has not published yet rank high but are not answers;
    the dense side still returns k live chunks."""
    retriever = HybridRetriever.for_index(filter_index, embedder.encode_query)
    query = "how long should green tea steep"
    before = [h.chunk.chunk_id for h in retriever.retrieve(query, top_k=5, mode="dense")]
    staged = [Chunk(chunk_id=f"staged-{n:03d}", text=f"{query}? ({n})", source="/new.md",
                    source_id="new", content_hash="h", position=n) for n in range(80)]
    filter_index.dense.upsert(staged, embedder.encode([c.text for c in staged]))
    filter_index.dense.flush()
    try:
        raw = filter_index.dense.search(embedder.encode_query(query), 50)
        assert all(cid.startswith("staged-") for cid, _ in raw)  # they do crowd the store's top
        after = [h.chunk.chunk_id for h in retriever.retrieve(query, top_k=5, mode="dense")]
        assert after == before
    finally:
        filter_index.dense.delete([c.chunk_id for c in staged])
        filter_index.dense.flush()
