"""llama-index `BaseRetriever` views of each retriever (bm25, dense) and of the fusion."""

from __future__ import annotations

import pytest
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import QueryBundle


@pytest.fixture(scope="module")
def small_rag(tmp_path_factory, sample_dir, embedder):
    from rag.api import RAG

    rag = RAG.open(tmp_path_factory.mktemp("li_views"), embedder=embedder)
    rag.ingest([sample_dir / "tea_brewing_guide.md", sample_dir / "harbor_lamp_manual.txt"])
    yield rag
    rag.close()


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_views_return_what_the_retriever_returns(small_rag, mode):
    query = "how hot should the water be for green tea"
    view = small_rag.as_retriever(top_k=3, mode=mode)
    assert isinstance(view, BaseRetriever)
    nodes = view.retrieve(QueryBundle(query))
    hits = small_rag.retrieve(query, top_k=3, mode=mode)
    assert [n.node.node_id for n in nodes] == [h.chunk.chunk_id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    assert nodes[0].node.metadata["source"].endswith("tea_brewing_guide.md")


def test_view_keeps_filters(small_rag):
    view = small_rag.as_retriever(top_k=3, mode="hybrid", filters={"file_type": "txt"})
    nodes = view.retrieve("green tea water temperature")
    assert nodes and all(n.node.metadata["source"].endswith(".txt") for n in nodes)
