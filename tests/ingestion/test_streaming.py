"""A large plain-text file is read, embedded and staged a part at a time and published at once:
the same kind of chunks as a whole read, searchable when done, unchanged on a second run, the old
version searchable until a new one is complete, and nothing staged left behind by a failure.
(`stream_file_mb` is set to a fraction of a megabyte here so a small file streams; the 500 MB
figure is benchmarks/huge_inputs.py's.)"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from ingestion.chunking import Chunker
from ingestion.loaders.text import iter_text_sections, decode_text
from ingestion.pipeline import IngestionPipeline
from ingestion.progress import SilentProgress
from rag.api import RAG
from retrievers.catalog import PENDING

ESSAY = ("Tea plants grow best on cool, misty slopes. The leaves are picked by hand, withered, "
         "rolled and dried. Green tea is heated early to stop oxidation; black tea is left to "
         "oxidise fully before drying.\n\n")


def big_text(path: Path, copies: int, marker: str) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for k in range(copies):
            out.write(f"Section {k}. " + ESSAY)
            if k == copies // 2:
                out.write(f"The {marker} is stored in the lighthouse cellar.\n\n")
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252"])
def test_streamed_sections_hold_exactly_the_text_of_a_whole_read(tmp_path, encoding):
    path = tmp_path / "notes.txt"
    path.write_bytes(("Crème brûlée, naïve café.\n" * 40 + "\n").encode(encoding) * 300)
    sections = list(iter_text_sections(path, block_bytes=4096))
    assert len(sections) > 10 and all(len(s.text) < 3 * 4096 for s in sections)
    assert "".join(s.text for s in sections) == decode_text(path.read_bytes())
    read = [s.meta["read_bytes"] for s in sections]  # how far in: a progress bar's position
    assert read == sorted(set(read)) and read[-1] == path.stat().st_size


class ReadsRecorded(SilentProgress):
    """Silent, but keeps what a large file's read bar would be told."""

    def __init__(self):
        self.total, self.reads = None, []

    @contextmanager
    def reading(self, path, total_bytes):
        self.total = total_bytes
        yield self.reads.append


def test_a_large_file_reports_how_far_it_has_been_read(tmp_path, embedder):
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    big = big_text(tmp_path / "big.txt", 300, "brass telescope")
    progress = ReadsRecorded()
    chunker = Chunker(embedder.count_tokens, rag.settings.chunk_size, rag.settings.chunk_overlap)
    pipeline = IngestionPipeline(rag.index, embedder, chunker, progress=progress,
                                 stream_file_bytes=20_000, batch_chunks=16)
    [result] = pipeline.ingest([big])
    assert result.status == "added"
    assert progress.total == big.stat().st_size and progress.reads[-1] == progress.total
    rag.close()


def test_a_large_text_file_streams_in_parts_and_is_published_at_once(tmp_path, embedder):
    rag = RAG.open(tmp_path / "index", embedder=embedder, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    big = big_text(tmp_path / "big.txt", 800, "brass telescope")
    small = tmp_path / "small.md"
    small.write_text("A small note about oolong.\n")
    results = {Path(r.path).name: r for r in rag.ingest([big, small])}
    assert results["big.txt"].status == "added" and results["big.txt"].chunks > 50
    assert results["small.md"].status == "added"
    assert "brass telescope" in rag.retrieve("where is the brass telescope", top_k=1)[0].chunk.text
    assert rag.index.check().ok and not rag.index.catalog.ids_in_state(PENDING)
    assert {r.status for r in rag.ingest([big, small])} == {"unchanged"}

    # A new version replaces the old one whole; a failed one leaves the old one searchable.
    old_ids = rag.index.live_ids()
    big_text(big, 900, "silver compass")
    [updated] = rag.ingest([big])
    assert updated.status == "updated"
    assert "silver compass" in rag.retrieve("where is the silver compass", top_k=1)[0].chunk.text
    assert not any("brass telescope" in h.chunk.text for h in rag.retrieve("brass telescope", top_k=5))
    assert rag.index.check().ok and rag.index.live_ids() != old_ids
    rag.close()


class FailingAfter:
    """The session's embedder, failing from its `n`-th call on (a model that runs out of memory
    on the third part): a fault no real input makes happen on cue."""

    def __init__(self, real, n: int | None = None):
        self._real = real
        self.n = n
        self.calls = 0

    def encode(self, texts, progress=None):
        self.calls += 1
        if self.n is not None and self.calls >= self.n:
            raise RuntimeError("out of memory")
        return self._real.encode(texts, progress=progress)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_a_stream_that_fails_part_way_leaves_the_old_version_and_nothing_staged(tmp_path, embedder):
    failing = FailingAfter(embedder)
    rag = RAG.open(tmp_path / "index", embedder=failing, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    big = big_text(tmp_path / "big.txt", 800, "brass telescope")
    assert rag.ingest([big])[0].status == "added"
    before = rag.index.live_ids()
    big_text(big, 900, "silver compass")
    failing.calls, failing.n = 0, 3  # two parts staged, the third fails
    [failed] = rag.ingest([big])
    assert failed.status == "failed" and failed.error == "RuntimeError: out of memory"
    assert failing.calls == 3
    assert rag.index.live_ids() == before and rag.index.check().ok
    assert not rag.index.catalog.ids_in_state(PENDING)
    assert "brass telescope" in rag.retrieve("where is the brass telescope", top_k=1)[0].chunk.text
    failing.n = None
    assert rag.ingest([big])[0].status == "updated"  # not remembered as broken: tried again
    rag.close()


@pytest.mark.timeout(900)
def test_kill_9_while_a_large_file_is_staged_leaves_an_index_that_opens_and_answers(tmp_path):
    """A large file is staged with Milvus Lite's search index let go (`defer_vector_index`); a
    kill -9 then leaves no index files for its segments. The index still opens and answers
    (with what was live before), checks clean, and the next run ingests the file."""
    import json
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[2]
    index = tmp_path / "index"

    def rag(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rag", *args], cwd=repo, timeout=timeout,
                              capture_output=True, text=True)

    small = tmp_path / "small.md"
    small.write_text("A small note about oolong tea and its many infusions.\n")
    streamed = ["--set", "stream_file_mb=0.05", "--set", "ingest_batch_chunks=16", "--quiet"]
    assert rag("ingest", str(small), "--index", str(index), *streamed).returncode == 0
    big = big_text(tmp_path / "big.txt", 1500, "brass telescope")  # ~300 chunks
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(big), "--index",
                             str(index), *streamed], cwd=repo, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, pending = time.monotonic() + 300, 0
    while proc.poll() is None and time.monotonic() < deadline and pending < 64:
        time.sleep(0.5)
        try:
            with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True) as db:
                pending = db.execute(
                    "SELECT COUNT(*) FROM chunks WHERE state = 'pending'").fetchone()[0]
        except sqlite3.Error:
            pass
    assert proc.poll() is None, "the ingest ended before it could be killed mid-stream"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    answer = rag("retrieve", "oolong infusions", "--index", str(index), "--json")
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert "oolong" in json.dumps(json.loads(answer.stdout))
    check = rag("stats", "--check", "--json", "--index", str(index))
    assert check.returncode == 0 and json.loads(check.stdout)["check"]["ok"], check.stdout[-2000:]
    kept = json.loads(check.stdout)["check"]["staged_to_resume"]
    again = rag("ingest", str(big), "--index", str(index), *streamed, "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    [result] = json.loads(again.stdout)["files"]
    print(f"pending at the kill {pending}, kept {kept}, resumed {result['resumed']}")
    assert 0 < kept == result["resumed"] < result["chunks"]  # what was staged is not embedded again
    found = rag("retrieve", "where is the brass telescope", "--index", str(index), "--json")
    assert found.returncode == 0 and "brass telescope" in found.stdout
    check = rag("stats", "--check", "--json", "--index", str(index))
    assert json.loads(check.stdout)["check"]["ok"]
    assert list(index.rglob("*.idx"))  # index files written for the new segments


class InterruptedAfter(FailingAfter):
    """The session's embedder, interrupted (Ctrl-C) at its `n`-th call: a user stopping a long
    ingest at a moment the test chooses."""

    def encode(self, texts, progress=None):
        self.calls += 1
        self.embedded = getattr(self, "embedded", 0)
        if self.n is not None and self.calls >= self.n:
            raise KeyboardInterrupt
        self.embedded += len(texts)
        return self._real.encode(texts, progress=progress)


def interrupt_a_stream(tmp_path, embedder, parts: int = 4):
    """Ingest big.txt in parts of 16 chunks, interrupted as its part `parts` + 1 is embedded."""
    stopping = InterruptedAfter(embedder)
    rag = RAG.open(tmp_path / "index", embedder=stopping, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    small = tmp_path / "small.md"
    small.write_text("A small note about oolong.\n")
    assert rag.ingest([small])[0].status == "added"
    big = big_text(tmp_path / "big.txt", 800, "brass telescope")
    stopping.calls, stopping.n = 0, parts + 1
    with pytest.raises(KeyboardInterrupt):
        rag.ingest([big])
    rag.close()
    return big


def test_an_interrupted_stream_resumes_where_it_stopped_on_the_next_run(tmp_path, embedder):
    big = interrupt_a_stream(tmp_path, embedder, parts=4)
    counting = InterruptedAfter(embedder)
    rag = RAG.open(tmp_path / "index", embedder=counting, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    report = rag.index.check()
    assert report.ok and report.staged_to_resume == 4 * 16, report  # kept, not an inconsistency
    assert rag.stats()["unfinished_ingests"] == [{"path": str(big.resolve()), "staged_chunks": 64}]
    assert [h.chunk.source.endswith("small.md") for h in rag.retrieve("oolong", top_k=5)] == [True]
    [result] = rag.ingest([big])
    assert result.status == "added" and result.resumed == 4 * 16
    assert counting.embedded == result.chunks - 4 * 16  # the staged parts were not embedded again
    assert "brass telescope" in rag.retrieve("where is the brass telescope", top_k=1)[0].chunk.text
    report = rag.index.check()
    assert report.ok and report.staged_to_resume == 0 and report.catalog_live == result.chunks + 1
    assert not rag.index.catalog.ids_in_state(PENDING) and not rag.stats()["unfinished_ingests"]
    rag.close()


def test_staged_parts_of_a_file_that_changed_since_are_dropped_not_resumed(tmp_path, embedder):
    big = interrupt_a_stream(tmp_path, embedder, parts=3)
    big_text(big, 820, "silver compass")
    counting = InterruptedAfter(embedder)
    rag = RAG.open(tmp_path / "index", embedder=counting, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    assert not rag.index.catalog.ids_in_state(PENDING) and not rag.index.catalog.staging()
    report = rag.index.check()
    assert report.ok and report.staged_to_resume == 0
    [result] = rag.ingest([big])
    assert result.status == "added" and result.resumed == 0 and counting.embedded == result.chunks
    assert "silver compass" in rag.retrieve("where is the silver compass", top_k=1)[0].chunk.text
    assert rag.index.check().ok
    rag.close()


def test_a_resumed_stream_that_fails_drops_every_staged_part(tmp_path, embedder):
    big = interrupt_a_stream(tmp_path, embedder, parts=4)
    failing = FailingAfter(embedder, n=2)  # the kept parts need no model; the 2nd new one fails
    rag = RAG.open(tmp_path / "index", embedder=failing, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    [failed] = rag.ingest([big])
    assert failed.status == "failed" and failed.error == "RuntimeError: out of memory"
    assert not rag.index.catalog.ids_in_state(PENDING) and not rag.stats()["unfinished_ingests"]
    report = rag.index.check()
    assert report.ok and report.staged_to_resume == 0 and report.dense == report.catalog_live == 1
    rag.close()


def test_after_a_switch_of_embedding_model_a_stream_is_embedded_again_not_resumed(
        tmp_path, embedder, static_model):
    """The staged parts' vectors are in the old model's collection: resuming them after `rag
    reindex` would publish chunks the new collection has no vector for."""
    big = interrupt_a_stream(tmp_path, embedder, parts=4)
    rag = RAG.open(tmp_path / "index", embedder=embedder, stream_file_mb=0.05,
                   ingest_batch_chunks=16)
    assert rag.reindex(str(static_model)).switched
    assert not rag.stats()["unfinished_ingests"]
    [result] = rag.ingest([big])
    assert result.status == "added" and result.resumed == 0
    report = rag.index.check()
    assert report.ok and report.catalog_live == report.dense == result.chunks + 1, report
    hit = rag.retrieve("where is the brass telescope", mode="dense", top_k=3)
    assert any("brass telescope" in h.chunk.text for h in hit)
    rag.close()


def test_deleting_a_large_file_whose_ingest_was_interrupted_drops_its_staged_parts(tmp_path, embedder):
    big = interrupt_a_stream(tmp_path, embedder, parts=4)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    assert rag.delete(big) == 4 * 16
    assert not rag.stats()["unfinished_ingests"] and not rag.index.catalog.ids_in_state(PENDING)
    report = rag.index.check()
    assert report.ok and report.staged_to_resume == 0 and report.catalog_live == 1
    assert rag.delete(big) == 0  # nothing left of it
    rag.close()
