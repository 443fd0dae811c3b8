"""The suite on a real index of the bundled sample, with the real embedder and the packaged LLM:
retrieval only, then with answers (4 cases), each writing a report folder."""

import json
from pathlib import Path

import pytest

from eval.datasets import load_dataset
from eval.report import format_summary, write_report
from eval.runner import run_eval

CASES = [
    {"id": "green", "question": "How long should green tea steep?",
     "reference_answer": "2 minutes",
     "reference_contexts": ["steep green tea for 2 minutes"], "source_docs": ["tea_brewing_guide.md"]},
    {"id": "lamp", "question": "How often does the Harbor L-200 flash green out of the box?",
     "reference_answer": "every 4 seconds",
     "reference_contexts": ["Out of the box the lamp flashes green every 4 seconds."],
     "source_docs": ["harbor_lamp_manual.txt"]},
    {"id": "peace", "question": "When was the Peace Corps founded?",
     "reference_answer": "On 1 March 1961, by executive order, a few weeks after the address.",
     "reference_contexts": ["the Peace Corps was founded by executive order a few weeks later, "
                            "on 1 March 1961"], "source_docs": ["inaugural_address_notes.md"]},
    {"id": "mars", "question": "What is the population of the largest city on Mars?",
     "answerable": False},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "sample_qa.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return load_dataset(path)


def test_retrieval_only_run_and_report(sample_rag, dataset, tmp_path):
    run = run_eval(sample_rag, dataset, answers=False, progress=False)
    aggs = run.aggregates
    for name in ("hit_rate@5", "recall@5", "recall@10", "mrr@10", "ndcg@10", "served_recall"):
        # Each answerable question's reference sentence is in the top chunks of this index.
        assert (aggs[name].value, aggs[name].scored, aggs[name].not_scored) == (1.0, 3, 1), name
    assert "token_f1" not in aggs and "latency_ms.generate.p50" not in aggs
    assert aggs["latency_ms.retrieve.p50"].value > 0
    assert run.fingerprints["llm"] is None  # no LLM was loaded or asked
    assert run.fingerprints["index_settings"]["embedding_fingerprint"]
    assert all(r.result.answer is None for r in run.records)

    again = run_eval(sample_rag, dataset, answers=False, progress=False)
    quality = lambda r: {k: a.value for k, a in r.aggregates.items() if a.kind != "latency"}
    assert quality(again) == quality(run)  # deterministic
    assert [r.result.ranked for r in again.records] == [r.result.ranked for r in run.records]

    html = write_report(run, tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["dataset"]["hash"] == dataset.hash and data["dataset"]["cases"] == 4
    assert data["settings"]["top_k"] == 5 and data["settings"]["retrieval_mode"] == "hybrid"
    case = data["cases"][0]
    assert case["answer"] is None and (len(case["retrieved"]), len(case["served"])) == (10, 5)
    assert case["scores"]["recall@5"] == {"value": 1.0, "status": "scored"}
    mars = data["cases"][3]["scores"]["recall@5"]
    assert mars == {"value": None, "status": "not_scored", "reason": "no reference contexts"}
    page = html.read_text()
    assert "served_recall" in page and "not generated" in page and "<script" not in page
    for image in ("plots/dist_recall_5.png", "plots/latency.png"):
        assert f'src="{image}"' in page
        assert (tmp_path / "report" / image).read_bytes().startswith(b"\x89PNG")


def test_run_with_answers(sample_rag, dataset, tmp_path):
    run = run_eval(sample_rag, dataset, answers=True, progress=False)
    aggs = run.aggregates
    assert run.fingerprints["llm"] == sample_rag.llm.name
    by_id = {r.case.id: r for r in run.records}
    for record in run.records:
        # first_token: only where the model was asked (not for a decline before generation);
        # decline_rerank: only where weak evidence made the decline gate ask the cross-encoder
        optional = {"first_token", "decline_rerank"}
        assert set(record.result.timings) - optional == {"retrieve", "generate", "total"}
        assert record.error is None
    # containment: "2 minutes" and "every 4 seconds" are short; the Peace Corps sentence is not.
    assert aggs["answer_containment"].scored == 2 and aggs["answer_containment"].not_scored == 2
    assert aggs["token_f1"].scored == 3
    assert aggs["decline_rate_unanswerable"].scored == 1
    assert aggs["decline_rate_answerable"].scored == 3
    green = by_id["green"]
    if not green.result.answer.declined:
        assert green.scores["answer_containment"].value == \
            float("2 minutes" in green.result.answer.text)
    for record in run.records:  # every [n] the system writes names a citation
        score = record.scores["citation_validity"]
        assert score.status == "not_scored" or score.value == 1.0
    for stage in ("retrieve", "generate", "total"):
        assert aggs[f"latency_ms.{stage}.p95"].value >= aggs[f"latency_ms.{stage}.p50"].value > 0
    html = write_report(run, tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    answers = {c["id"]: c for c in data["cases"]}
    assert answers["green"]["answer"] == green.result.answer.text
    assert answers["mars"]["declined"] == by_id["mars"].result.answer.declined
    assert set(answers["green"]["timings_ms"]) - {"first_token"} == {"retrieve", "generate", "total"}
    assert data["fingerprints"]["llm"] and data["wall_s"] > 0
    page = html.read_text()
    assert "token_f1" in page and "plots/dist_token_f1.png" in page
    summary = format_summary(run)
    assert "decline_rate_unanswerable" in summary and "with answers" in summary
