"""Baseline files and the gate's arithmetic, on runs built by hand."""

import json
from pathlib import Path

import pytest

from eval.baseline import FORMAT, compare, read_baseline, update_baseline
from eval.datasets import EvalCase, EvalDataset
from eval.errors import BaselineError
from eval.runner import CaseRecord, EvalRun
from eval.scoring import Aggregate, CaseResult

CASES = [EvalCase("a", "Q1?"), EvalCase("b", "Q2?")]


def make_run(values: dict[str, float | None], *, name: str = "tea", cases=CASES,
             spreads: dict[str, float] | None = None) -> EvalRun:
    lower = {"decline_rate_answerable"}
    aggs = {}
    for metric, value in values.items():
        latency = metric.startswith("latency")
        aggs[metric] = Aggregate(metric, "latency" if latency else "retrieval", value,
                                 0 if value is None else len(cases),
                                 higher_is_better=not (latency or metric in lower),
                                 tolerance=None if latency else 0.02,
                                 spread=(spreads or {}).get(metric))
    dataset = EvalDataset(name, Path(f"{name}.jsonl"), "jsonl", list(cases))
    records = [CaseRecord(c, CaseResult([], []), {}) for c in cases]
    return EvalRun(dataset, dataset.hash, records, aggs, {"top_k": 5}, started_at="now")


def test_gate_names_what_fell_by_more_than_its_tolerance(tmp_path):
    path = tmp_path / "baseline.json"
    update_baseline(make_run({"recall@5": 0.80, "mrr@10": 0.70, "ndcg@10": 0.75,
                              "decline_rate_answerable": 0.10, "latency_ms.total.p95": 100.0}),
                    path)
    same = compare(make_run({"recall@5": 0.80, "mrr@10": 0.70, "ndcg@10": 0.75,
                             "decline_rate_answerable": 0.10, "latency_ms.total.p95": 100.0}), path)
    assert same.ok and same.regressions == []
    worse = compare(make_run({"recall@5": 0.79, "mrr@10": 0.67, "ndcg@10": 0.90,
                              "decline_rate_answerable": 0.20, "latency_ms.total.p95": 900.0}),
                    path)
    assert [d.name for d in worse.regressions] == ["mrr@10", "decline_rate_answerable"]
    statuses = {name: d.status for name, d in worse.deltas.items()}
    assert statuses == {"recall@5": "ok", "mrr@10": "regressed", "ndcg@10": "improved",
                        "decline_rate_answerable": "regressed",
                        "latency_ms.total.p95": "ungated"}
    assert worse.deltas["mrr@10"].delta == pytest.approx(-0.03)
    summary = worse.summary()
    assert "mrr@10 0.6700 < 0.7000 - 0.02" in summary
    assert "decline_rate_answerable 0.2000 > 0.1000 + 0.02" in summary


def test_nothing_scored_where_the_baseline_scored_is_a_regression(tmp_path):
    path = tmp_path / "b.json"
    update_baseline(make_run({"faithfulness": 0.8}), path)
    result = compare(make_run({"faithfulness": None}), path)
    assert [d.name for d in result.regressions] == ["faithfulness"]
    assert "faithfulness not scored < 0.8000" in result.summary()


def test_metrics_missing_on_either_side_are_listed_not_failed(tmp_path):
    path = tmp_path / "b.json"
    update_baseline(make_run({"recall@5": 0.8, "token_f1": 0.4}), path)
    result = compare(make_run({"recall@5": 0.8, "ndcg@10": 0.5}), path)  # e.g. retrieval only
    assert result.ok
    assert result.deltas["token_f1"].status == "not_run"
    assert result.deltas["ndcg@10"].status == "new"


def test_spread_from_repeats_widens_the_tolerance(tmp_path):
    path = tmp_path / "b.json"
    update_baseline(make_run({"faithfulness": 0.80}, spreads={"faithfulness": 0.02}), path)
    # Allowed: 0.02 + 2 x 0.02 = 0.06 below 0.80.
    assert compare(make_run({"faithfulness": 0.75}), path).ok
    noisy = compare(make_run({"faithfulness": 0.73}), path)
    assert not noisy.ok and noisy.deltas["faithfulness"].tolerance == pytest.approx(0.06)
    # The run's own spread counts too (the larger of the two).
    assert compare(make_run({"faithfulness": 0.70}, spreads={"faithfulness": 0.05}), path).ok


def test_update_keeps_tolerances_and_other_datasets(tmp_path):
    path = tmp_path / "b.json"
    update_baseline(make_run({"recall@5": 0.8}, name="tea"), path)
    update_baseline(make_run({"recall@5": 0.5}, name="lamp"), path)
    data = json.loads(path.read_text())
    data["datasets"]["tea"]["metrics"]["recall@5"]["tolerance"] = 0.1  # edited by hand
    path.write_text(json.dumps(data))
    update_baseline(make_run({"recall@5": 0.9}, name="tea"), path)
    data = read_baseline(path)
    assert data["format"] == FORMAT
    assert data["datasets"]["tea"]["metrics"]["recall@5"] == {
        "value": 0.9, "tolerance": 0.1, "higher_is_better": True, "spread": None,
        "scored": 2, "not_scored": 0}
    assert data["datasets"]["lamp"]["metrics"]["recall@5"]["value"] == 0.5
    assert compare(make_run({"recall@5": 0.81}, name="tea"), path).ok  # within the 0.1


def test_baseline_errors(tmp_path):
    with pytest.raises(BaselineError, match="no such baseline file"):
        compare(make_run({"recall@5": 0.8}), tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"datasets": {}}')
    with pytest.raises(BaselineError, match="not a baseline file"):
        compare(make_run({"recall@5": 0.8}), bad)
    path = tmp_path / "b.json"
    update_baseline(make_run({"recall@5": 0.8}, name="tea"), path)
    with pytest.raises(BaselineError, match="no baseline for dataset 'lamp'"):
        compare(make_run({"recall@5": 0.8}, name="lamp"), path)
    with pytest.raises(BaselineError, match="recorded on other cases"):
        compare(make_run({"recall@5": 0.8}, cases=CASES[:1]), path)
