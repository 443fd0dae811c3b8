"""`bm25_source_terms`: BM25 also counts each chunk's file name, so a question that names a
paper or a manual finds the chunks of that file that never repeat its name."""

from __future__ import annotations

import logging

import pytest

from retrievers.bm25 import BM25Index, Facets
from retrievers.bm25_store import open_bm25, save_bm25
from retrievers.catalog import Catalog
from retrievers.records import Chunk
from retrievers.text import source_name_terms, tokenize

# Two papers' paragraphs; neither paragraph of roberta.pdf says "RoBERTa".
PAPERS = {
    "/papers/roberta.pdf": [
        "We find that training the model longer, with bigger batches, over more data improves "
        "downstream performance, and that removing the next sentence prediction objective helps.",
        "Dynamic masking generates the masking pattern every time a sequence is fed to the model.",
    ],
    "/papers/distilbert.pdf": [
        "We leverage knowledge distillation during the pre-training phase and show that it is "
        "possible to reduce the size of a BERT model by 40% while retaining 97% of its abilities.",
        "RoBERTa and other large models are expensive to train; distillation makes them cheaper.",
    ],
}


def _index(source_terms: bool) -> BM25Index:
    index = BM25Index(source_terms=source_terms)
    for source, texts in PAPERS.items():
        for n, text in enumerate(texts):
            index.add_tokens(f"{source}#{n}", tokenize(text), Facets(source, "pdf"))
    return index


def test_file_name_terms_drop_folders_extension_and_separators():
    assert source_name_terms("/a/b/roberta.pdf") == ("roberta",)
    assert source_name_terms("papers/MMLU_measure.pdf") == ("mmlu", "measur")
    assert source_name_terms("C:\\docs\\Harbor-Lamp.Manual.txt") == ("harbor", "lamp", "manual")
    assert source_name_terms("") == ()


def test_a_question_naming_the_file_finds_its_chunks_only_with_source_terms():
    question = tokenize("RoBERTa batches")
    without = [cid for cid, _ in _index(False).top_k(question, 4)]
    # Each word is in one paragraph: the shorter one, which names RoBERTa in passing, leads.
    assert without[0] == "/papers/distilbert.pdf#1"
    assert "/papers/roberta.pdf#1" not in without  # shares no word with the question
    with_names = [cid for cid, _ in _index(True).top_k(question, 4)]
    assert with_names[0] == "/papers/roberta.pdf#0"  # both words now: batches, and its file
    assert "/papers/roberta.pdf#1" in with_names
    # a question that does not name the file is scored as before, file names aside
    plain = tokenize("knowledge distillation")
    assert _index(True).top_k(plain, 1)[0][0] == _index(False).top_k(plain, 1)[0][0]


def _catalog(tmp_path) -> Catalog:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    for source, texts in PAPERS.items():
        sid = source.rsplit("/", 1)[1]
        chunks = [Chunk(chunk_id=f"{sid}-{n}", text=t, source=source, source_id=sid,
                        content_hash="h", position=n, file_type="pdf") for n, t in enumerate(texts)]
        catalog.stage(chunks, [tokenize(t) for t in texts])
        catalog.publish(sid, source, "h", "pdf", [c.chunk_id for c in chunks])
    return catalog


def test_switching_the_setting_rebuilds_the_snapshot_and_keeping_it_does_not(tmp_path, caplog):
    catalog = _catalog(tmp_path)
    question = tokenize("roberta")
    assert save_bm25(open_bm25(catalog, tmp_path), tmp_path)
    with caplog.at_level(logging.INFO, logger="retrievers.bm25_store"):
        switched = open_bm25(catalog, tmp_path, source_terms=True)
    assert "another bm25_source_terms; rebuilding BM25" in caplog.text
    assert {cid for cid, _ in switched.top_k(question, 5)} == {
        "roberta.pdf-0", "roberta.pdf-1", "distilbert.pdf-1"}
    assert save_bm25(switched, tmp_path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="retrievers.bm25_store"):
        reopened = open_bm25(catalog, tmp_path, source_terms=True)
    assert "rebuilding" not in caplog.text and reopened.source_terms
    assert reopened.scores(question) == pytest.approx(switched.scores(question), rel=1e-12)
    back = open_bm25(catalog, tmp_path)  # and back: the file name is no longer a term
    assert {cid for cid, _ in back.top_k(question, 5)} == {"distilbert.pdf-1"}
    catalog.close()


def test_the_setting_reaches_bm25_through_rag_open(tmp_path, embedder):
    from rag.api import RAG

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "aurora_pump.txt").write_text("Clean the intake filter every 200 hours of running.\n")
    (docs / "tea.md").write_text("Steep green tea for two minutes at 80 degrees.\n")
    rag = RAG.open(tmp_path / "index", embedder=embedder)  # the default: on
    try:
        assert all(r.status == "added" for r in rag.ingest([docs]))
        hits = rag.retrieve("aurora filter", mode="bm25")
        assert hits and hits[0].chunk.source.endswith("aurora_pump.txt")
        assert [h for h in rag.retrieve("aurora", mode="bm25")], "found by its file name alone"
    finally:
        rag.close()
    rag = RAG.open(tmp_path / "index", embedder=embedder, bm25_source_terms=False)  # text only
    try:
        assert rag.retrieve("aurora", mode="bm25") == []
    finally:
        rag.close()
