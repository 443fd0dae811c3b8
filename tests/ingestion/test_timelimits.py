"""Per-file time limits: a file that never finishes loading fails with "took longer than N s",
the other files of the batch go in, and what was indexed before stays (same chunk ids, both
indexes agree). A runaway parse is stopped, not left running; a thread blocked in C code is left
behind and its late result is never used.

The slow inputs are real: a PDF whose text extraction takes pypdf many seconds (400,000 text
operators on one page), and loaders passed to the pipeline for a test-only extension (never
registered in the global registry).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from functools import partial
from pathlib import Path

import pytest

from ingestion.chunking import Chunker
from ingestion.loaders import LOADERS
from ingestion.pipeline import IngestionPipeline
from ingestion.preparation import FilePreparer
from ingestion.sections import Section
from ingestion.timelimits import FileTimeLimit, call_with_deadline
from rag.api import RAG
from rag.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


def slow_pdf(n_ops: int) -> bytes:
    """A valid one-page PDF whose content stream shows a word `n_ops` times, one operator each:
    pypdf walks every operator in Python (~8 s for 200,000 on 2 busy cores)."""
    ops = b"BT /F1 12 Tf 72 720 Td " + b"(word) Tj 1 0 Td " * n_ops + b"ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stacks(threads: list[threading.Thread]) -> str:
    """Where each thread is now: what a failed stop leaves to read."""
    frames = sys._current_frames()
    return "\n".join(f"{t.name}:\n" + "".join(traceback.format_stack(frames[t.ident])[-8:])
                     for t in threads if t.ident in frames)


def file_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ingest-file")]


def wait_until(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    return folder


# --- the watchdog alone -----------------------------------------------------------------------
def test_a_runaway_python_loop_is_stopped_and_reported_in_one_line():
    def spin(deadline):
        while True:
            sum(range(1000))

    started = time.monotonic()
    with pytest.raises(FileTimeLimit) as caught:
        call_with_deadline(spin, 0.5)
    assert time.monotonic() - started < 3
    assert str(caught.value).startswith("took longer than 0.5 s") and "\n" not in str(caught.value)
    assert wait_until(lambda: not file_threads(), 3)  # stopped, not left spinning


def test_values_and_errors_come_back_and_extensions_count():
    assert call_with_deadline(lambda d: 42, 5) == 42
    with pytest.raises(KeyError):
        call_with_deadline(lambda d: {}["missing"], 5)

    def long_but_allowed(deadline):
        deadline.extend(2)  # e.g. a recording, once its duration is known
        time.sleep(0.8)
        return "done"

    assert call_with_deadline(long_but_allowed, 0.3) == "done"
    assert call_with_deadline(lambda d: time.sleep(0.2) or "unlimited", 0) == "unlimited"


class SlowWhisper:
    """Takes 1.5 s for any recording: over a 1 s limit, within 1 s + 3 s per second of audio."""

    def transcribe_blocks(self, blocks, total=0.0, progress=None):
        from ingestion.audio import Segment, Transcript

        seconds = sum(len(block) for block in blocks) / 16_000
        time.sleep(1.5)
        return Transcript("en", [Segment(0.0, seconds, "ask not what your country can do for you")])


def test_a_recording_gets_time_by_its_duration_a_document_does_not(tmp_path):
    step = FilePreparer(Chunker(lambda t: len(t.split()), 40, 4), SlowWhisper,
                        loaders={".md": lambda path: time.sleep(1.5) or [Section("slow text")]},
                        recording_factor=3.0)
    chunks = call_with_deadline(
        lambda d: step.prepare(SAMPLE / "jfk.mp3", "s" * 16, "h" * 64, deadline=d), 1.0)
    assert chunks and chunks[0].end > 10
    slow_doc = tmp_path / "slow.md"
    slow_doc.write_text("text")
    with pytest.raises(FileTimeLimit, match="took longer than 1 s"):
        call_with_deadline(lambda d: step.prepare(slow_doc, "s" * 16, "h" * 64, deadline=d), 1.0)


# --- in a batch, on a real index ------------------------------------------------------------
def pipeline(rag: RAG, **kwargs) -> IngestionPipeline:
    chunker = Chunker(rag.embedder.count_tokens, rag.settings.chunk_size, rag.settings.chunk_overlap)
    return IngestionPipeline(rag.index, rag.embedder, chunker, show_progress=False, **kwargs)


@pytest.mark.parametrize("read_ahead", [8, 0])
def test_a_stuck_file_fails_alone_and_nothing_indexed_is_lost(tmp_path, embedder, read_ahead):
    folder = notes(tmp_path)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    assert {r.status for r in rag.ingest([folder])} == {"added"}
    before = rag.index.live_ids()

    def spin_forever(path: Path) -> list[Section]:
        while True:
            time.sleep(0.01)

    (folder / "a_stuck.stuck").write_text("never read to the end")
    (folder / "z_new.md").write_text("# Kettles\n\nA gooseneck kettle pours slowly and evenly.\n")
    loaders = {**LOADERS, ".stuck": spin_forever}
    results = pipeline(rag, loaders=loaders, file_timeout_s=1, read_ahead=read_ahead).ingest([folder])
    by_name = {Path(r.path).name: r for r in results}
    stuck = by_name["a_stuck.stuck"]
    assert stuck.status == "failed" and stuck.error.startswith("took longer than 1 s")
    assert by_name["z_new.md"].status == "added"
    assert by_name["tea_brewing_guide.md"].status == "unchanged"
    assert before <= rag.index.live_ids() and rag.index.check().ok
    assert "gooseneck" in rag.retrieve("gooseneck kettle", top_k=1)[0].chunk.text
    assert wait_until(lambda: not file_threads())  # the spinning loader was stopped
    rag.close()


def test_a_thread_blocked_in_c_is_left_behind_and_its_late_result_is_not_used(tmp_path, embedder):
    folder = notes(tmp_path)
    release = threading.Event()
    late: list[str] = []

    def blocked(path: Path) -> list[Section]:
        release.wait()  # blocks inside a lock acquire: no Python bytecode runs to be stopped
        late.append(path.name)
        return [Section("a late answer that must never be indexed")]

    (folder / "blocked.stuck").write_text("x")
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    try:
        results = pipeline(rag, loaders={**LOADERS, ".stuck": blocked}, file_timeout_s=1).ingest([folder])
        by_name = {Path(r.path).name: r for r in results}
        assert by_name["blocked.stuck"].status == "failed"
        assert "took longer than 1 s" in by_name["blocked.stuck"].error
        assert by_name["tea_brewing_guide.md"].status == "added"
        assert len(file_threads()) == 1  # still parked on its lock
    finally:
        release.set()
    assert wait_until(lambda: not file_threads())
    assert late == []  # stopped as soon as it ran Python again, before returning its sections
    assert not any("late answer" in c.text for c in rag.index.chunks(list(rag.index.live_ids())).values())
    rag.close()


def test_cli_a_pdf_that_parses_for_ever_fails_in_one_line_and_the_rest_goes_in(tmp_path, embedder,
                                                                                capsys):
    folder = notes(tmp_path)
    index = str(tmp_path / "index")
    shared = partial(RAG.open, embedder=embedder)
    assert main(["ingest", str(folder), "--index", index, "--quiet"], open_rag=shared) == 0
    before = RAG.open(index, embedder=embedder)
    ids = before.index.live_ids()
    before.close()
    # ~3x what parses in 1 s even on idle cores: finished by itself it would take far longer
    # than the 15 s the stop is given below, so the wait proves the stop.
    (folder / "endless.pdf").write_bytes(slow_pdf(1_200_000))
    (folder / "steeping.md").write_text("Oolong steeps for three minutes at ninety degrees.\n")
    capsys.readouterr()
    earlier = set(file_threads())  # an earlier test's stopped file may still be unwinding
    code = main(["ingest", str(folder), "--index", index, "--quiet", "--set", "file_timeout_s=1"],
                open_rag=shared)
    out = capsys.readouterr().out.splitlines()
    assert code == 3
    [line] = [line for line in out if "endless.pdf" in line]
    assert line.startswith("failed") and "endless.pdf: took longer than 1 s" in line
    assert any(line.startswith("added") and "steeping.md" in line for line in out)
    # The stop lands at the thread's next bytecode; on loaded cores (CI beside other jobs) it
    # took over 5 s here once, so the bound is wider than the other tests' (issue-20 note).
    ours = lambda: [t for t in file_threads() if t not in earlier]  # noqa: E731
    assert wait_until(lambda: not ours(), seconds=15.0), stacks(ours())
    assert main(["stats", "--check", "--index", index], open_rag=shared) == 0
    after = RAG.open(index, embedder=embedder)
    assert ids <= after.index.live_ids()
    after.close()



def test_a_stop_that_is_swallowed_once_is_raised_again():
    """CPython drops an asynchronous exception that lands in a finaliser; the parse must still
    stop (this loop swallows the first stop, as such a finaliser would)."""
    swallowed = []

    def stubborn(deadline):
        while True:
            try:
                while True:
                    sum(range(100))
            except BaseException as exc:  # noqa: BLE001 - what a dropped stop looks like
                if swallowed:
                    raise
                swallowed.append(exc)

    with pytest.raises(FileTimeLimit):
        call_with_deadline(stubborn, 0.3, what="stubborn")
    alive = lambda: [t for t in threading.enumerate() if t.name == "ingest-stubborn"]  # noqa: E731
    assert wait_until(lambda: not alive(), seconds=5.0), stacks(alive())
    assert len(swallowed) == 1
