"""The change detector on a real catalog: a second run over unchanged files reads nothing, a
touched file with the same bytes stays unchanged, a broken file is remembered until it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingestion.changes import ChangeDetector, KnownFailure, Pending, Unchanged
from ingestion.discovery import file_sha256, source_id_for
from retrievers.catalog import Catalog, Publication


@pytest.fixture
def detector(tmp_path):
    catalog = Catalog(tmp_path / "index" / "catalog.sqlite")
    yield ChangeDetector(catalog)
    catalog.close()


def publish(catalog: Catalog, path: Path, n_chunks: int = 2) -> None:
    stat = path.stat()
    source_id = source_id_for(path)
    catalog.publish_many([Publication(
        source_id, str(path.resolve()), file_sha256(path), "txt",
        [f"{source_id}-{k}" for k in range(n_chunks)], stat.st_size, stat.st_mtime)])


def test_new_file_is_pending(tmp_path, detector):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    decision = detector.check(note, note.stat())
    assert decision == Pending(source_id_for(note), file_sha256(note), 5, note.stat().st_mtime,
                               updated=False)


def test_unchanged_file_is_not_read(tmp_path, detector, monkeypatch):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    publish(detector.catalog, note, n_chunks=3)
    monkeypatch.setattr("ingestion.changes.file_sha256", lambda path: pytest.fail("hashed"))
    assert detector.check(note, note.stat()) == Unchanged(3)


def test_touched_file_with_same_bytes_is_unchanged_and_its_mtime_recorded(tmp_path, detector):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    publish(detector.catalog, note)
    os.utime(note, (1_000_000, 1_000_000))
    assert detector.check(note, note.stat()) == Unchanged(2)
    assert detector.catalog.source(source_id_for(note))["mtime"] == 1_000_000


def test_changed_file_is_an_update(tmp_path, detector):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    publish(detector.catalog, note)
    note.write_text("hello again")
    decision = detector.check(note, note.stat())
    assert isinstance(decision, Pending) and decision.updated
    assert decision.content_hash == file_sha256(note)


def test_recorded_failure_is_known_until_the_file_changes(tmp_path, detector):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 cut off")
    pending = detector.check(broken, broken.stat())
    detector.record_failure(broken, pending, "PDF is damaged")
    assert detector.check(broken, broken.stat()) == KnownFailure("PDF is damaged")
    broken.write_bytes(b"%PDF-1.4 cut off, and then some")
    assert isinstance(detector.check(broken, broken.stat()), Pending)
