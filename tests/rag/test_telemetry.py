"""Every stage timed: ingest and query stages come from OpenTelemetry spans, add up to the
operation's wall time, reach `rag ask --json` and `rag stats --latency`."""

from __future__ import annotations

import functools
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
    started = time.perf_counter()
    results = rag.ingest([docs])
    ingest_ms = (time.perf_counter() - started) * 1000
    assert all(r.status == "added" for r in results)
    started = time.perf_counter()
    answer = rag.ask("How long should green tea steep?")
    ask_ms = (time.perf_counter() - started) * 1000
    # Five retrievals: a retrieve takes a few ms, so one collector pause or scheduler hiccup
    # inside it (seen once in CI: 4.9 ms untimed of 16.5) moves its gap; the median of five does not.
    for question in ("green tea temperature", "steeping time", "water for tea", "tea", "leaves"):
        rag.retrieve(question)
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
    for kind in ("ask", "retrieve", "ingest"):
        # Within 10%, or 1 ms: a retrieve takes a few ms, so the interpreter's time between its
        # stages alone was 11-13% of it in 1 run of 4 on a quiet machine (before and after
        # stop 31's changes); the ask and the ingest take seconds, where 1 ms is nothing.
        gap_ms = doc[kind]["sum_vs_total"] * doc[kind]["stages_ms"]["total"]["p50"]
        assert doc[kind]["sum_vs_total"] < 0.10 or gap_ms < 1.0, (kind, gap_ms, doc[kind])
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
