"""Queries stay correct while an ingest commits: the UI answers while a user uploads.

Four threads query (hybrid, bm25 and dense in turn) for at least 20 s while an ingest of the
shared documents other than PDFs (67 files, a commit each) publishes batch after batch. The
PDFs are left out for time: with four query threads on two cores they made this test ~280 s
(now ~70 s), and a publish is the same whatever format its chunks came from. Every query must
succeed and return a full, consistent list: top-k distinct chunks, each with its text (a
publish forgets replaced chunks, so a query that read ids before it and text after would come
back short).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from rag.api import RAG

SHARED_DOCUMENTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "documents"
SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"
QUERIES = ["how long should green tea steep", "warranty of the lamp", "ask not what your country",
           "brewing temperature of water", "the lamp battery and its light"]
MODES = ["hybrid", "bm25", "dense"]
TOP_K = 5
QUERY_SECONDS = 20.0


@pytest.mark.skipif(not SHARED_DOCUMENTS.is_dir(), reason="../shared/data is absent beside this clone")
def test_four_threads_query_correctly_while_an_ingest_commits(tmp_path, embedder):
    seed = tmp_path / "seed"
    seed.mkdir()
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt", "inaugural_address_notes.md"):
        shutil.copy(SAMPLE / name, seed / name)
    # No OCR: scanned pages cost seconds each and test nothing about locking here.
    rag = RAG.open(tmp_path / "index", embedder=embedder, ocr="never")
    assert all(r.status == "added" for r in rag.ingest([seed]))
    # The ingest only adds sources, so no query may ever return fewer hits than it does now
    # (a list that comes back short lost a chunk between finding it and reading its text).
    floor = {(q, m): len(rag.retrieve(q, top_k=TOP_K, mode=m)) for q in QUERIES for m in MODES}
    assert all(n > 0 for n in floor.values()) and max(floor.values()) == TOP_K, floor

    commits: list[float] = []
    ingest_errors: list[BaseException] = []
    ingest_done = threading.Event()

    documents = sorted(p for p in SHARED_DOCUMENTS.rglob("*")
                       if p.is_file() and p.suffix != ".pdf")

    def ingest() -> None:
        try:
            rag.ingest(documents, on_result=lambda r: commits.append(time.monotonic())
                       if r.status == "added" else None)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            ingest_errors.append(exc)
        finally:
            ingest_done.set()

    started = time.monotonic()
    problems: list[str] = []
    answered: list[int] = [0] * 4

    def query_loop(worker: int) -> None:
        n = worker
        while time.monotonic() - started < QUERY_SECONDS or not ingest_done.is_set():
            query, mode = QUERIES[n % len(QUERIES)], MODES[n % len(MODES)]
            n += 1
            try:
                hits = rag.retrieve(query, top_k=TOP_K, mode=mode)
            except Exception as exc:  # noqa: BLE001 - every error is a failure
                problems.append(f"{mode} {query!r}: {type(exc).__name__}: {exc}")
                continue
            ids = [h.chunk.chunk_id for h in hits]
            if len(hits) < floor[query, mode] or len(set(ids)) != len(ids):
                problems.append(f"{mode} {query!r}: {len(hits)} hits, ids {ids}")
            if any(not h.chunk.text.strip() for h in hits):
                problems.append(f"{mode} {query!r}: a hit without text")
            answered[worker] += 1

    writer = threading.Thread(target=ingest, name="test-ingest")
    readers = [threading.Thread(target=query_loop, args=(w,), name=f"test-query-{w}") for w in range(4)]
    writer.start()
    for t in readers:
        t.start()
    for t in [writer, *readers]:
        t.join(timeout=600)
    elapsed = time.monotonic() - started

    assert not ingest_errors, ingest_errors
    assert not problems, problems[:5]
    assert elapsed >= QUERY_SECONDS and all(n > 0 for n in answered), answered
    during = [t for t in commits if t - started < elapsed]
    assert len(during) >= 20, f"only {len(during)} files committed while querying"
    report = rag.index.check()
    assert report.ok, report
    rag.close()
