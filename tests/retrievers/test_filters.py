"""Metadata filters act inside both retrievers, before the top-k cut, and agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from retrievers.filters import Filters, as_filters, parse_page_range, parse_time
from retrievers.hybrid import HybridRetriever
from retrievers.text import tokenize


def _facet_rows(index):
    chunks = index.chunks(sorted(index.live_ids()))
    return {cid: (c.source, c.file_type, c.page, c.ingested_at) for cid, c in chunks.items()}


def _filters(corpus):
    tea, lamp, speech = list(corpus)
    folder = tea.rsplit("/", 2)[0] + "/reports"
    return [
        Filters(sources=(tea,)),
        Filters(sources=(folder,)),
        Filters(sources=(lamp, tea)),
        Filters(file_types=("pdf", "MD")),
        Filters(since=1500.0),
        Filters(since=1500.0, until=2500.0),
        Filters(page_min=2, page_max=3),
        Filters(page_min=4),
        Filters(sources=(speech,), page_max=1),
        Filters(file_types=("docx",)),
    ]


def test_milvus_expression_bm25_mask_and_reference_select_the_same_chunks(filter_index, corpus):
    rows = _facet_rows(filter_index)
    bm25 = filter_index.bm25
    for f in _filters(corpus):
        expected = {cid for cid, facets in rows.items() if f.matches(*facets)}
        milvus = {r["id"] for r in filter_index.dense.client.query(
            filter_index.dense.collection, filter=f.milvus_expr(), output_fields=["id"], limit=1000)}
        mask = bm25.filter_mask(f)
        masked = {cid for slot, cid in enumerate(bm25._ids) if cid is not None and mask[slot]}
        assert milvus == expected, f
        assert masked == expected, f
        # every filter here narrows the corpus without emptying it, except the docx one
        assert (0 < len(expected) < len(rows)) != (f.file_types == ("docx",)), f


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_filter_applies_before_truncation(filter_index, corpus, embedder, mode):
    """The unfiltered top-3 for a tea question holds no lamp chunk, yet filtering to the lamp
    manual still returns 3 lamp chunks, ranked as the retriever ranks them among lamp chunks."""
    retriever = HybridRetriever.for_index(filter_index, embedder.encode_query, candidate_k=3)
    query = "How hot should the water be for green tea?"
    lamp = list(corpus)[1]
    unfiltered = retriever.retrieve(query, top_k=3, mode=mode)
    assert all(h.chunk.source != lamp for h in unfiltered)
    hits = retriever.retrieve(query, top_k=3, mode=mode, filters={"source": lamp})
    assert len(hits) >= 2 and all(h.chunk.source == lamp for h in hits)
    rows = _facet_rows(filter_index)
    lamp_ids = [cid for cid, facets in rows.items() if facets[0] == lamp]
    if mode == "bm25":
        scores = filter_index.bm25.scores(tokenize(query))
        want = sorted((cid for cid in lamp_ids if cid in scores), key=lambda c: (-scores[c], c))[:3]
    else:
        chunks = filter_index.chunks(lamp_ids)
        vectors = embedder.encode([chunks[c].text for c in lamp_ids])
        sims = vectors @ embedder.encode_query(query)
        want = [lamp_ids[i] for i in np.argsort(-sims)[:3]]
    assert [h.chunk.chunk_id for h in hits] == want


def test_hybrid_with_filters_only_returns_matching_chunks(filter_index, embedder):
    retriever = HybridRetriever.for_index(filter_index, embedder.encode_query)
    hits = retriever.retrieve("ask not what your country can do", top_k=10, mode="hybrid",
                              filters={"file_type": "pdf", "page": "2-3"})
    assert hits and all(h.chunk.file_type == "pdf" and 2 <= h.chunk.page <= 3 for h in hits)
    assert all(set(h.ranks) <= {"bm25", "dense"} for h in hits)
    assert retriever.retrieve("tea", top_k=5, filters={"file_type": "docx"}) == []


def test_filter_option_parsing():
    assert parse_page_range("3-7") == (3, 7)
    assert parse_page_range(5) == (5, 5)
    assert parse_page_range("4-") == (4, None)
    assert parse_page_range("-2") == (None, 2)
    with pytest.raises(ValueError, match="page range"):
        parse_page_range("7-3")
    with pytest.raises(ValueError, match="date"):
        parse_time("last tuesday")
    day = parse_time("2026-11-01")
    assert parse_time("2026-11-01", end_of_day=True) - day == pytest.approx(86400, abs=1)
    assert as_filters({}) is None and as_filters(None) is None
    with pytest.raises(ValueError, match="unknown filter"):
        as_filters({"author": "me"})
    f = as_filters({"file_type": ".PDF,md", "source": ["a.txt"]})
    assert f.file_types == ("pdf", "md") and f.sources[0].endswith("/a.txt")


def test_cli_filters_reach_the_retriever(sample_dir, embedder, tmp_path, capsys):
    """`rag retrieve --type md` returns only Markdown chunks; a bad --page is a usage error."""
    import json
    from functools import partial

    from rag.api import RAG
    from rag.cli import main

    with RAG.open(tmp_path / "idx", embedder=embedder) as rag:
        rag.ingest([sample_dir / "tea_brewing_guide.md", sample_dir / "harbor_lamp_manual.txt"])
    shared = partial(RAG.open, embedder=embedder)
    code = main(["retrieve", "water temperature", "--index", str(tmp_path / "idx"),
                 "--type", "md", "--top-k", "4", "--json"], open_rag=shared)
    results = json.loads(capsys.readouterr().out)["results"]
    assert code == 0 and results and all(r["source"].endswith(".md") for r in results)
    code = main(["retrieve", "lamp", "--index", str(tmp_path / "idx"), "--source",
                 str(sample_dir / "harbor_lamp_manual.txt"), "--json"], open_rag=shared)
    results = json.loads(capsys.readouterr().out)["results"]
    assert code == 0 and results and all(r["source"].endswith("lamp_manual.txt") for r in results)
    assert main(["retrieve", "lamp", "--index", str(tmp_path / "idx"), "--page", "9-2"],
                open_rag=shared) == 2
    assert "page range" in capsys.readouterr().err
    # a filter that leaves nothing says which part of it no indexed file meets
    assert main(["retrieve", "lamp", "--index", str(tmp_path / "idx"), "--source",
                 str(sample_dir / "no_such_manual.txt")], open_rag=shared) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (f"rag: nothing matches the filters: no indexed file is "
                                    f"{sample_dir.resolve() / 'no_such_manual.txt'} or lies under it")
    assert main(["retrieve", "lamp", "--index", str(tmp_path / "idx"), "--type", "pdf"],
                open_rag=shared) == 0
    assert capsys.readouterr().err.strip() == (
        "rag: nothing matches the filters: no indexed file has type pdf (indexed types: md, txt)")


def test_a_filter_that_leaves_nothing_names_the_part_no_indexed_file_meets():
    indexed = [("/docs/a.pdf", "pdf"), ("/docs/b.md", "md")]
    assert Filters().unmatched([]) == "the index is empty"
    assert Filters(sources=("/docs/c.pdf",)).unmatched(indexed) == (
        "no indexed file is /docs/c.pdf or lies under it")
    assert Filters(sources=("/elsewhere/a.pdf",)).unmatched(indexed) == (
        "no indexed file is /elsewhere/a.pdf or lies under it; indexed under that name: /docs/a.pdf")
    assert Filters(file_types=("docx",)).unmatched(indexed) == (
        "no indexed file has type docx (indexed types: md, pdf)")
    assert Filters(sources=("/docs/b.md",), file_types=("pdf",)).unmatched(indexed) == (
        "no indexed file matches both source /docs/b.md, type pdf")
    assert Filters(sources=("/docs",), page_min=9, page_max=9).unmatched(indexed) == (
        "no indexed chunk matches source /docs, page 9")
    assert Filters(page_min=4).describe() == "pages 4-"
