"""`rag bench`: reached through the `rag.commands` entry point, one table, one JSON report.

The long benchmarks themselves are not run here (they take minutes to an hour: see README);
`quality` reads the committed evaluation figures, so it runs end to end in a second.
"""

from __future__ import annotations

import json

from benchmarks.suite import ingest_rows, retrieval_rows
from rag.cli import main


def test_rag_bench_lists_every_benchmark_through_the_entry_point(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("ingest", "retrieval", "answers", "quality", "ui-load", "ocr"):
        assert name in out
    assert "(default)" in out


def test_unknown_benchmark_is_a_usage_error(capsys):
    assert main(["bench", "no-such-bench"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark no-such-bench" in err and len(err.strip().splitlines()) == 1


def test_quality_figures_come_from_the_committed_baselines(tmp_path, capsys):
    out_file, table = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main(["bench", "quality", "--json", str(out_file), "--markdown", str(table)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out_file.read_text())
    assert report["failed"] == [] and report["machine"]["cores"] >= 1 and report["date"]
    assert report["command"] == f"rag bench quality --json {out_file}"
    figures = {(r[0], r[1].split(" (")[0]): r[2] for r in report["rows"]}
    committed = json.load(open("eval/baselines/dev_sets.json"))["datasets"]
    recall = committed["paul_graham"]["metrics"]["recall@10"]
    recall = recall["value"] if isinstance(recall, dict) else recall
    assert figures[("quality paul_graham", "recall@10")] == round(recall, 4)
    assert "quality paul_graham" in printed and str(round(recall, 4)) in printed
    md = table.read_text()
    assert md.startswith(f"Measured {report['date']}") and f"`{report['command']}`" in md
    assert f"| quality paul_graham | recall@10 " in md


def _tier(p95: float, floor: float, stock_p95: float, peak: float, stock_peak: float) -> dict:
    lat = lambda p: {"p50_ms": p / 2, "p95_ms": p, "p99_ms": p * 1.2}  # noqa: E731
    return {"ours_build": {"build_s": 10.0, "disk_mb": 50.0},
            "ours": {"hybrid": lat(p95), "floor": lat(floor), "bm25_side": lat(1.0),
                     "memory_after_queries": {"rss_mb": peak - 10, "peak_rss_mb": peak}},
            "stock_build": {"build_s": 20.0, "disk_mb": 40.0},
            "stock": {"hybrid": lat(stock_p95), "floor": lat(floor),
                      "memory_after_queries": {"rss_mb": stock_peak, "peak_rss_mb": stock_peak}}}


def test_retrieval_rows_carry_the_ratios_the_issue_asks_for():
    rows = retrieval_rows({"sizes": {"10000": _tier(30, 20, 60, 800, 1000),
                                     "100000": _tier(36, 22, 180, 1000, 4000)},
                           "interleaved": {"10000": {"p50_ms": 20, "p95_ms": 40},
                                           "100000": {"p50_ms": 22, "p95_ms": 52}}})
    by = {(r[0], r[1], r[3]): r for r in rows}
    assert by[("retrieval 100k", "hybrid top-10 p95 ms", "stock llama-index")][5] == 0.2
    assert by[("retrieval 100k", "peak resident memory MB", "stock llama-index")][5] == 0.25
    assert by[("retrieval 100k", "hybrid p95 growth", "hybrid p95 at 10k")][5] == 1.2
    assert by[("retrieval 10k", "hybrid top-10 p95 ms", "floor (embed + 1 search)")][5] == 1.5
    assert by[("retrieval 100k", "hybrid p95 growth, tiers interleaved",
               "interleaved p95 at 10k")][5] == 1.3


def test_the_default_retrieval_with_its_cross_encoder_gets_rows_of_its_own():
    """The fusion is compared with stock (which has no reranker); the default's reranked time
    is reported beside the fusion's, not folded into the stock ratios."""
    tier = _tier(30, 20, 60, 800, 1000)
    tier["ours"]["hybrid_reranked"] = {"p50_ms": 330.0, "p95_ms": 450.0, "p99_ms": 500.0}
    rows = retrieval_rows({"sizes": {"10000": tier}})
    by = {(r[0], r[1], r[3]): r for r in rows}
    assert by[("retrieval 10k", "hybrid + rerank (default) p95 ms", "hybrid top-10")][5] == 15.0
    assert by[("retrieval 10k", "hybrid top-10 p95 ms", "stock llama-index")][5] == 0.5


def test_a_missing_stock_package_is_named_before_the_benchmark_starts():
    from benchmarks.retrieval_latency import missing_stock_modules

    assert missing_stock_modules(("json", "llama_index_not_installed.sub", "json.nothing")) == [
        "llama_index_not_installed.sub", "json.nothing"]


def test_queries_during_an_ingest_are_compared_with_idle_queries():
    from benchmarks.suite import BENCHMARKS, during_ingest_rows

    assert BENCHMARKS["queries-during-ingest"].script == "queries_during_ingest"
    rows = during_ingest_rows({"chunks": 20149, "idle_p50_ms": 5.0, "during_p50_ms": 30.0,
                               "during_p95_ms": 175.0, "during_p99_ms": 557.0,
                               "lite_lock_wait_max_ms": 626.0})
    assert [(r[1], r[5]) for r in rows[:3]] == [
        ("retrieve p50 ms", 6.0), ("retrieve p95 ms", 35.0), ("retrieve p99 ms", 111.4)]
    assert rows[3][2] == 626.0


def test_filtered_queries_are_reported_against_milvus_lites_own_filtered_search():
    tier = _tier(30, 20, 60, 800, 1000)
    lat = lambda p: {"p50_ms": p / 2, "p95_ms": p, "p99_ms": p * 1.2}  # noqa: E731
    tier["ours"]["filtered"] = {"share": 0.01, "hybrid": lat(24.0), "dense": lat(10.0),
                                "dense_recall": 1.0, "lite_dense": lat(200.0),
                                "lite_dense_recall": 0.29}
    rows = retrieval_rows({"sizes": {"100000": tier}})
    by = {(r[0], r[1], r[3]): r for r in rows}
    assert by[("retrieval 100k", "hybrid filtered to one source p95 ms", "hybrid top-10")][5] == 0.8
    assert by[("retrieval 100k", "dense filtered p95 ms", "Milvus Lite's own")][5] == 0.05
    assert by[("retrieval 100k", "dense filtered recall@50", "Milvus Lite's own")][2:5] == (
        1.0, "Milvus Lite's own", 0.29)


def test_ingest_on_onnx_passages_is_compared_with_torch_passages_of_the_same_run():
    """Where `auto` embeds passages on onnxruntime (AVX2-only CPUs), the table says how much
    faster than torch that ingest was, measured in the same process; with torch, no such row."""
    base = {"files": 40, "chunks": 498, "dtype": "torch.float32", "ingest_chunks_per_s": 27.0,
            "raw_chunks_per_s": 20.0, "ingest_over_raw": 1.35, "ingest_mb_per_s": 0.03,
            "passages": "onnxruntime float32 (/cache/onnx-fp32; auto: AVX2 without AVX-512)"}
    rows = ingest_rows({**base, "torch_ingest_chunks_per_s": 20.0, "ingest_over_torch_ingest": 1.35})
    vs_torch = [r for r in rows if r[3] == "torch passages, same run"]
    assert vs_torch == [("ingest", "text chunks/s (onnxruntime float32 passages)", 27.0,
                         "torch passages, same run", 20.0, 1.35)]
    assert not [r for r in ingest_rows(base) if r[3] == "torch passages, same run"]


def test_the_onnx_row_is_named_by_the_recorded_backend_not_by_cutting_its_description():
    """`passage_backend` names the runtime, whatever the `passages` text says (an int8 copy's
    description has a comma before its bracket)."""
    report = {"files": 40, "chunks": 498, "dtype": "torch.float32", "ingest_chunks_per_s": 38.7,
              "raw_chunks_per_s": 20.0, "ingest_over_raw": 1.9, "ingest_mb_per_s": 0.04,
              "passages": "onnxruntime int8, per-channel weights (/cache/onnx-int8; named)",
              "passage_backend": "onnx-int8",
              "torch_ingest_chunks_per_s": 19.4, "ingest_over_torch_ingest": 1.99}
    labels = [r[1] for r in ingest_rows(report) if r[3] == "torch passages, same run"]
    assert labels == ["text chunks/s (onnxruntime int8 passages)"]
