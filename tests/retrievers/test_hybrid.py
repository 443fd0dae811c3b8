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


def test_a_question_that_names_something_is_fused_with_the_named_weights():
    """Keyword search ranks the chunk with the name first, dense search another: with the
    named weights leaning on keywords, a question naming something gets the keyword winner,
    a question naming nothing the dense one; without named weights both get the dense one."""
    searches = {"bm25": lambda q, k, f=None: ranked("keyword-hit", "both", "dense-hit"),
                "dense": lambda q, k, f=None: ranked("dense-hit", "both", "keyword-hit")}
    weights = {"bm25": 1.0, "dense": 1.2}
    named = HybridRetriever(searches, chunk_table, weights=weights,
                            named_weights={"bm25": 1.0, "dense": 0.6})
    assert named.retrieve("When was Rtm wrong?", top_k=1)[0].chunk.chunk_id == "keyword-hit"
    assert named.retrieve("What was the GPT-3 paper about?", top_k=1)[0].chunk.chunk_id == "keyword-hit"
    assert named.retrieve("When was he wrong?", top_k=1)[0].chunk.chunk_id == "dense-hit"
    assert named.retrieve("Robert was wrong when?", top_k=1)[0].chunk.chunk_id == "dense-hit"  # opens it
    one_weight = HybridRetriever(searches, chunk_table, weights=weights)
    assert one_weight.retrieve("When was Rtm wrong?", top_k=1)[0].chunk.chunk_id == "dense-hit"


def test_named_dense_factor_scales_the_dense_weight_for_named_questions_only(
        tmp_path, filter_index, embedder):
    from rag.config import load_settings
    from rag.parts import default_retriever

    def weights(**overrides):
        settings = load_settings(cwd=tmp_path, environ={}, **overrides)
        retriever = default_retriever(settings, filter_index, embedder.encode_query)
        return retriever.weights, retriever.weights_for("Who is Rtm?")

    plain, named = weights()  # the defaults: dense 0.8, x0.43 on a question naming something
    assert plain == {"bm25": 1.0, "dense": 0.8} and named["dense"] == pytest.approx(0.344)
    assert weights(dense_weight=1.2, named_dense_factor=0.5) == (
        {"bm25": 1.0, "dense": 1.2}, {"bm25": 1.0, "dense": 0.6})
    assert weights(dense_weight=2.0, named_dense_factor=0.5)[1] == {"bm25": 1.0, "dense": 1.0}
    plain, named = weights(preset="quality")
    assert plain == named == {"bm25": 1.0, "dense": 0.8}


def test_a_hybrid_querys_bm25_runs_while_the_helper_searches_the_vectors_with_the_same_answer(
        filter_index, embedder):
    """Once the question is embedded, the caller runs BM25 while the query helper thread walks
    the dense index (inside the dense search); with the helper busy (another query's part) the
    caller walks and runs BM25 after; the fused answer is the same either way."""
    import os
    import threading

    from retrievers.helper_thread import submit
    from retrievers.hybrid import IndexDenseSearch, KeywordSearch, keyword_and_dense

    events: list[str] = []
    ran_on: list[str] = []

    class RecordingKeywordSearch(KeywordSearch):
        def __call__(self, query, k, filters=None):
            ran_on.append(threading.current_thread().name)
            events.append("bm25")
            return super().__call__(query, k, filters)

    class RecordingDenseSearch(IndexDenseSearch):
        def embedded(self, query):
            search = super().embedded(query)

            def recorded(k, filters=None):
                found = search(k, filters)
                events.append("dense search returned")
                return found
            return recorded

    searches = keyword_and_dense(filter_index, embedder.encode_query)
    searches["bm25"] = RecordingKeywordSearch(filter_index.keywords)
    searches["dense"] = RecordingDenseSearch(filter_index, embedder.encode_query)
    assert searches["bm25"].in_process
    retriever = HybridRetriever(searches, filter_index.chunks, consistent=filter_index.reading)
    query = "how long should green tea steep"
    beside = retriever.retrieve(query, top_k=8)
    beside_order = list(events)
    events.clear()
    release = threading.Event()
    busy = submit(release.wait, 30)
    try:
        alone = retriever.retrieve(query, top_k=8)
    finally:
        release.set()
    assert busy is not None and busy.result() is True
    me = threading.current_thread().name
    assert ran_on == [me, me]
    if len(os.sched_getaffinity(0)) > 1:
        assert beside_order == ["bm25", "dense search returned"]  # inside it
    assert events == ["dense search returned", "bm25"]
    assert [(h.chunk.chunk_id, h.score, h.ranks) for h in beside] == [
        (h.chunk.chunk_id, h.score, h.ranks) for h in alone]
