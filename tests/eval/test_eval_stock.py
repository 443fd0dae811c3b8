"""`rag eval --pipeline stock`: stock llama-index over the same chunks, vectors and model, scored
by the same metrics (eval/stock.py)."""

import json

import pytest

from eval.datasets import load_dataset
from eval.report import format_ratios
from eval.runner import run_eval
from eval.stock import StockPipeline

CASES = [
    {"id": "green", "question": "How long should green tea steep?", "reference_answer": "2 minutes",
     "reference_contexts": ["steep green tea for 2 minutes"]},
    {"id": "lamp", "question": "How often does the Harbor L-200 flash green out of the box?",
     "reference_answer": "every 4 seconds",
     "reference_contexts": ["Out of the box the lamp flashes green every 4 seconds."]},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("stock") / "qa.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return load_dataset(path)


@pytest.fixture(scope="module")
def stock(sample_rag):
    pipeline = StockPipeline(sample_rag)
    yield pipeline
    pipeline.close()


def test_stock_retrieves_the_same_chunks_by_its_own_fusion(stock, sample_rag, dataset):
    hits = stock.retrieve("How long should green tea steep?", top_k=5)
    assert 0 < len(hits) <= 5
    assert [h.ranks["stock"] for h in hits] == list(range(1, len(hits) + 1))
    live = sample_rag.index.live_ids()
    assert all(h.chunk.chunk_id in live for h in hits)  # the index's own chunks, ids kept
    assert any("2 minutes" in h.chunk.text for h in hits[:3])
    run = run_eval(stock, dataset, answers=False, progress=False)
    assert run.aggregates["recall@5"].value == 1.0 and run.aggregates["recall@5"].scored == 2


@pytest.mark.slow  # four answers from the packaged model
def test_stock_answers_with_the_same_model_and_is_compared_metric_by_metric(
        stock, sample_rag, dataset):
    ours = run_eval(sample_rag, dataset, answers=True, progress=False)
    theirs = run_eval(stock, dataset, answers=True, progress=False)
    assert theirs.fingerprints["llm"] == ours.fingerprints["llm"] == sample_rag.llm.name
    green = next(r for r in theirs.records if r.case.id == "green")
    assert green.error is None and green.result.answer.text
    assert green.result.answer.citations == []  # stock writes no citations
    assert theirs.aggregates["token_f1"].scored == 2
    table = format_ratios(ours, theirs)
    assert "recall@5" in table and "token_f1" in table and "ours/stock" in table
