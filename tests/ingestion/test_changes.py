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


def test_a_catalog_made_before_reader_versions_opens_with_every_source_at_version_1(tmp_path):
    import sqlite3

    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE sources (source_id TEXT PRIMARY KEY, path TEXT NOT NULL,
        content_hash TEXT NOT NULL, file_type TEXT NOT NULL DEFAULT '', n_chunks INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0, mtime REAL NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
        INSERT INTO sources VALUES ('s1', '/docs/a.pdf', 'abc', 'pdf', 3, 10, 1.0, 1.0);""")
    db.close()
    catalog = Catalog(path)
    try:
        assert catalog.source("s1")["reader"] == 1
    finally:
        catalog.close()


def test_a_file_its_loader_now_reads_differently_is_pending_under_a_new_hash(tmp_path, detector):
    from ingestion.changes import content_hash_for
    from ingestion.loaders import reader_version

    paper = tmp_path / "paper.pdf"
    paper.write_bytes(b"%PDF-1.4 not parsed here")
    assert reader_version(paper) == 2 and reader_version(tmp_path / "n.txt") == 1
    stat = paper.stat()
    detector.catalog.publish_many([Publication(  # indexed by version 1: the plain hash
        source_id_for(paper), str(paper.resolve()), file_sha256(paper), "pdf", ["p-0"],
        stat.st_size, stat.st_mtime)])
    decision = detector.check(paper, stat)
    assert isinstance(decision, Pending) and decision.updated and decision.reader == 2
    assert decision.content_hash == content_hash_for(paper) != file_sha256(paper)
