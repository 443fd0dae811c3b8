"""sparse = "milvus": keyword search by Milvus's built-in BM25 function, tested on Milvus Lite."""

from __future__ import annotations

import pytest

from retrievers.errors import StoreConfigError
from retrievers.hybrid import DenseSearch, HybridRetriever, KeywordSearch
from retrievers.milvus_keywords import MilvusKeywordIndex
from retrievers.milvus_store import MilvusDenseStore


def milvus_bm25_retriever(index, embedder, **options) -> HybridRetriever:
    """Keyword search by Milvus's BM25 function over the same collection, plus dense."""
    keywords = MilvusKeywordIndex(index.dense, index.live_ids())
    return HybridRetriever({"bm25": KeywordSearch(keywords),
                            "dense": DenseSearch(index.dense, embedder.encode_query, keywords)},
                           index.chunks, **options)


def test_milvus_bm25_finds_keyword_matches_and_respects_filters(full_text_index, embedder, corpus):
    retriever = milvus_bm25_retriever(full_text_index, embedder)
    hits = retriever.retrieve("oolong", top_k=3, mode="bm25")
    assert hits and all("oolong" in h.chunk.text.lower() for h in hits)
    assert hits[0].scores["bm25"] > 0  # Lite's negative BM25 distances are turned around
    # stop words are dropped like on the rank-bm25 side: a query of only stop words finds nothing
    assert retriever.retrieve("the of and", top_k=3, mode="bm25") == []
    lamp = list(corpus)[1]
    hits = retriever.retrieve("water tea", top_k=3, mode="bm25", filters={"source": lamp})
    assert all(h.chunk.source == lamp for h in hits)


def test_milvus_bm25_agrees_with_rank_bm25_on_what_matches(full_text_index, embedder):
    """Milvus's analyzer does not stem, so scores differ; on unstemmed words the top hit agrees."""
    ours = HybridRetriever.for_index(full_text_index, embedder.encode_query)
    theirs = milvus_bm25_retriever(full_text_index, embedder)
    for query in ["oolong", "warranty", "lightning", "country"]:
        a = ours.retrieve(query, top_k=1, mode="bm25")
        b = theirs.retrieve(query, top_k=1, mode="bm25")
        assert a and b and a[0].chunk.chunk_id == b[0].chunk.chunk_id, query


def test_server_side_hybrid_search_matches_client_side_rrf(full_text_index, embedder):
    store = full_text_index.dense
    retriever = milvus_bm25_retriever(full_text_index, embedder,
                                candidate_k=10, fusion="rrf", rrf_k=60)
    query = "how long should black tea steep"
    server = store.hybrid_search(embedder.encode_query(query), query, k=10, rrf_k=60)
    client = retriever.retrieve(query, top_k=10, mode="hybrid")
    assert [cid for cid, _ in server][:3] == [h.chunk.chunk_id for h in client][:3]
    assert [s for _, s in server][0] == pytest.approx(client[0].score, rel=1e-4)


def test_full_text_mode_on_a_collection_built_without_it_is_refused(filter_index, tmp_path):
    uri = str(tmp_path / "milvus.db")
    MilvusDenseStore(uri, "plain", 8).close()
    with pytest.raises(StoreConfigError, match="built without Milvus BM25"):
        MilvusDenseStore(uri, "plain", 8, full_text=True)


def test_rag_with_sparse_milvus_end_to_end(tmp_path, sample_dir, embedder):
    from rag.api import RAG

    with RAG.open(tmp_path / "idx", sparse="milvus", embedder=embedder) as rag:
        rag.ingest([sample_dir / "tea_brewing_guide.md", sample_dir / "harbor_lamp_manual.txt"])
        assert rag.index.dense.full_text
        hits = rag.retrieve("oolong", top_k=2, mode="bm25")
        assert hits and "oolong" in hits[0].chunk.text.lower()
        hits = rag.retrieve("warranty", top_k=3, mode="hybrid", filters={"file_type": "txt"})
        assert hits and all(h.chunk.file_type == "txt" for h in hits)


def test_sparse_milvus_keeps_no_bm25_postings_and_switching_back_rebuilds_them(
        tmp_path, sample_dir, embedder):
    """With BM25 inside Milvus a process holds only the live ids; the catalog keeps the terms,
    so opening the same index with rank-bm25 later rebuilds BM25 from it."""
    from rag.api import RAG

    with RAG.open(tmp_path / "idx", sparse="milvus", embedder=embedder) as rag:
        rag.ingest([sample_dir / "tea_brewing_guide.md"])
        assert isinstance(rag.index.keywords, MilvusKeywordIndex) and len(rag.index.keywords) > 0
        with pytest.raises(RuntimeError, match="sparse='milvus'"):
            rag.index.bm25
        assert rag.index.check().ok
    assert not (tmp_path / "idx" / "bm25.npz").exists()

    with RAG.open(tmp_path / "idx", embedder=embedder) as rag:
        assert len(rag.index.bm25) == rag.index.catalog.count()
        hits = rag.retrieve("oolong", top_k=1, mode="bm25")
        assert hits and "oolong" in hits[0].chunk.text.lower()
