"""Every stage timed: ingest and query stages come from OpenTelemetry spans, add up to the
operation's wall time, reach `rag ask --json` and `rag stats --latency`."""

from __future__ import annotations

import functools
import gc
import json
import shutil
import time

import pytest

from tests.conftest import SAMPLE_TEXT

QUERY_STAGES = {"embed", "bm25", "dense", "fusion", "prompt", "generate", "generate.first_token"}
INGEST_STAGES = {"hash", "load", "chunk", "embed", "write", "flush"}


@pytest.fixture(scope="module")
def timed_rag(tmp_path_factory, sample_dir, embedder, llm):
    """The sample's documents ingested read-ahead-free (its stages then run one after
    another), one question asked and one retrieval, each timed from outside."""
    from rag.api import RAG

    docs = tmp_path_factory.mktemp("timed_docs")
    for name in SAMPLE_TEXT:
        shutil.copy(sample_dir / name, docs / name)
    index = tmp_path_factory.mktemp("timed")
    rag = RAG.open(index, llm=llm, embedder=embedder, ingest_read_ahead=0, llm_max_tokens=48)
    # Python's cyclic garbage collector off while the operations are timed: late in the test
    # session the heap holds ~1M objects (torch, transformers, llama-index, gradio), so one
    # full collection takes ~0.1-0.3 s on this 2-core VM, wherever it happens to fall. One
    # falling between two stages of the 0.2 s ingest left 77 ms untimed in a CI run
    # (2026-12-03); what is checked here is that the stages cover the work, not the collector.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        results = rag.ingest([docs])
        ingest_ms = (time.perf_counter() - started) * 1000
        assert all(r.status == "added" for r in results)
        started = time.perf_counter()
        answer = rag.ask("How long should green tea steep?")
        ask_ms = (time.perf_counter() - started) * 1000
        # Five retrievals: a retrieve takes a few ms, so one scheduler hiccup inside it (seen
        # once in CI: 4.9 ms untimed of 16.5) moves its gap; the median of five does not.
        for question in ("green tea temperature", "steeping time", "water for tea", "tea",
                         "leaves"):
            rag.retrieve(question)
    finally:
        gc.enable()
    yield rag, index, {"ingest": ingest_ms, "ask": ask_ms, "answer": answer}
    rag.close()


def test_ingest_stages_add_up_to_its_wall_time(timed_rag):
    rag, _, measured = timed_rag
    wall_ms = measured["ingest"]
    (record,) = rag.oplog.operations(kind="ingest")
    assert INGEST_STAGES <= set(record.stages), record.stages
    assert record.counts["embedded_texts"] == rag.index.catalog.count()
    assert record.total_ms <= wall_ms  # the wall time also opened the index (before the clock)
    assert abs(record.additive_ms - record.total_ms) <= 0.10 * record.total_ms, record.stages


def test_a_recording_is_timed_as_transcribe(sample_rag):
    """The session's sample index (read-ahead on: stages overlap, so no sum is checked)."""
    record = sample_rag.oplog.operations(kind="ingest")[0]  # its first: the whole sample
    assert {"transcribe", "load", "chunk", "embed", "write"} <= set(record.stages)
    assert record.stages["transcribe"] > record.stages["load"]  # 11 s of speech vs 3 texts


def test_ask_carries_its_stage_timings_and_they_add_up(timed_rag):
    rag, _, measured = timed_rag
    answer, wall_ms = measured["answer"], measured["ask"]
    assert QUERY_STAGES <= set(answer.stages), answer.stages
    assert answer.counts["completion"] > 0 and answer.counts["prompt"] > 100
    named = sum(v for k, v in answer.stages.items() if k not in ("other", "generate.first_token"))
    assert abs(named - wall_ms) <= 0.10 * wall_ms, (answer.stages, wall_ms)
    assert 0 < answer.stages["generate.first_token"] < answer.stages["generate"]
    doc = answer.to_json()
    assert QUERY_STAGES <= set(doc["stages_ms"]) and doc["counts"]["completion"] > 0


def test_stats_latency_shows_every_stage(timed_rag, capsys):
    from rag.api import RAG
    from rag.cli import main

    rag, index, _ = timed_rag
    opener = functools.partial(RAG.open, embedder=rag.embedder, llm=rag.llm)
    assert main(["stats", "--latency", "--last", "50", "--json", "--index", str(index)],
                open_rag=opener) == 0
    doc = json.loads(capsys.readouterr().out)["latency"]
    assert doc["ask"]["operations"] == 1 and doc["retrieve"]["operations"] == 5
    assert QUERY_STAGES <= set(doc["ask"]["stages_ms"])
    assert INGEST_STAGES <= set(doc["ingest"]["stages_ms"])
    # The untimed share: 10% for the ask and the ingest (seconds each). A retrieve takes a few
    # ms, and each of its ~5 spans costs ~35 us of OpenTelemetry's and the collector's own
    # work that falls between its parent's stages (an operation with 4 empty stages: 180 us on
    # the 2-core EPYC), so its share is ~9% on a quiet machine (0.3 of 3.3 ms, 2026-12-03) and
    # was 10.2% in a CI run; whatever the CPU, both scale alike. 20% still fails if a stage
    # as large as the query embedding (~70% of a retrieve) went untimed.
    for kind, untimed in (("ask", 0.10), ("retrieve", 0.20), ("ingest", 0.10)):
        assert doc[kind]["sum_vs_total"] < untimed, (kind, doc[kind])
        for row in doc[kind]["stages_ms"].values():
            assert row["p50"] <= row["p95"]
    assert main(["stats", "--latency", "--index", str(index)], open_rag=opener) == 0
    text = capsys.readouterr().out
    assert "generate.first_token" in text and "bm25" in text and "p95 ms" in text


def test_stats_latency_names_a_missing_index(tmp_path, capsys):
    from rag.cli import main

    assert main(["stats", "--latency", "--index", str(tmp_path / "nope")]) == 2
    assert "holds no index" in capsys.readouterr().err


def test_the_operation_log_stays_bounded(tmp_path):
    from rag.oplog import OperationLog
    from rag.telemetry import OperationRecord

    log = OperationLog(tmp_path, keep=5)
    for n in range(12):
        log.add_operation(OperationRecord("ask", float(n), {"bm25": 1.0}))
    kept = log.operations()
    assert [r.total_ms for r in kept] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert [r.total_ms for r in log.operations(last=2)] == [10.0, 11.0]
    log.close()
