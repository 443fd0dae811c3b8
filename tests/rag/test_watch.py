"""`rag watch`: a watched folder's creates, edits, renames and deletes reach retrieval within
5 seconds, with no duplicate chunks, a rename costing no embedding and a burst of saves one
ingest; the command stops cleanly on SIGTERM. Real watchfiles, real model, Milvus Lite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.embedders import CountingEmbedder

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 5.0


@pytest.fixture
def watched(tmp_path, embedder):
    from rag.api import RAG
    from rag.watch import Watcher

    folder = tmp_path / "docs"
    folder.mkdir()
    counting = CountingEmbedder(embedder)
    rag = RAG.open(tmp_path / "index", embedder=counting)
    changes = []
    watcher = Watcher(rag, [folder], on_change=changes.append, quiet_ms=300)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    assert watcher.ready.wait(30)
    yield folder, rag, counting, watcher, changes
    watcher.stop()
    thread.join(10)
    assert not thread.is_alive(), "the watcher did not stop"
    rag.close()


def _sources(rag, word: str) -> list[str]:
    return [Path(h.chunk.source).name for h in rag.retrieve(word, top_k=10, mode="bm25")]


def _until(condition, what: str) -> float:
    """Seconds until `condition()` holds; fails past DEADLINE_S."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"not within {DEADLINE_S} s: {what}")


def _report(seconds: dict[str, float]) -> None:
    print("seconds from the change to retrieval: " + ", ".join(
        f"{k} {v:.2f}" for k, v in seconds.items()))


def _no_duplicates(rag) -> None:
    catalog = rag.index.catalog
    assert catalog.count() == sum(s["n_chunks"] for s in catalog.sources())
    report = rag.index.check()
    assert report.ok, report
    texts = [c.text for s in catalog.sources() for c in catalog.live_chunks_of(s["source_id"])]
    assert len(texts) == len(set(texts)), "a chunk is indexed twice"


def test_create_edit_rename_delete_reach_retrieval(watched):
    folder, rag, counting, watcher, changes = watched
    note = folder / "notes.md"
    seconds = {}
    note.write_text("# Lamps\n\nThe zanzibarite lantern burns whale oil for nine hours.\n")
    seconds["create"] = _until(lambda: _sources(rag, "zanzibarite") == ["notes.md"],
                               "the new file is retrievable")
    _no_duplicates(rag)

    note.write_text("# Lamps\n\nThe quokkalite lantern burns olive oil for seven hours.\n")
    seconds["edit"] = _until(lambda: _sources(rag, "quokkalite") == ["notes.md"]
                             and not _sources(rag, "zanzibarite"), "the edit replaced the old text")
    _no_duplicates(rag)

    calls_before = len(counting.calls)
    note.rename(folder / "lamps.md")
    seconds["rename"] = _until(lambda: _sources(rag, "quokkalite") == ["lamps.md"],
                               "the renamed file is found")
    assert len(counting.calls) == calls_before, "the rename re-embedded the file"
    assert [s["path"] for s in rag.index.catalog.sources()] == [str(folder / "lamps.md")]
    _no_duplicates(rag)
    # Dense search finds the moved vectors under the new path too.
    dense = rag.retrieve("lantern burning olive oil", top_k=3, mode="dense")
    assert dense and Path(dense[0].chunk.source).name == "lamps.md"

    (folder / "lamps.md").unlink()
    seconds["delete"] = _until(lambda: not _sources(rag, "quokkalite")
                               and rag.index.catalog.count() == 0, "the deleted file left the index")
    _report(seconds)
    assert rag.index.check().ok
    # The watcher reports a change after the index shows it: wait for the report too (a busy
    # machine let the assertion below run between the two).
    _until(lambda: len(changes) >= 4, "the watcher reported the delete")
    kinds = [c.kind for c in changes]
    assert kinds == ["added", "updated", "renamed", "deleted"], [c.line() for c in changes]
    assert changes[2].line().startswith("renamed") and "no embedding" in changes[2].line()


def test_a_burst_of_saves_is_one_ingest(watched):
    folder, rag, counting, watcher, changes = watched
    note = folder / "draft.txt"
    for n in range(6):  # an editor saving repeatedly, 50 ms apart
        note.write_text(f"Draft number {n} of the wombatine report on harbour lamps.\n")
        time.sleep(0.05)
    _until(lambda: "Draft number 5" in " ".join(
        h.chunk.text for h in rag.retrieve("wombatine", top_k=3, mode="bm25")), "the last save")
    time.sleep(1.0)  # any second ingest would have started by now
    assert len(counting.calls) == 1, f"{len(counting.calls)} embedding calls for one burst"
    assert watcher.batches == 1
    assert [c.kind for c in changes] == ["added"]
    _no_duplicates(rag)


def test_rag_watch_stops_cleanly_on_sigterm(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "watch", str(folder), "--index", str(tmp_path / "index"),
         "--no-initial-sync"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        first = proc.stdout.readline()
        assert first.startswith("watching "), first + proc.stderr.read()
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping (SIGTERM)" in err and "rag watch: stopped" in err
    assert took < 10, f"{took:.1f} s from SIGTERM to exit"
