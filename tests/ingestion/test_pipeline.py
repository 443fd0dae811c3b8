"""The incremental pipeline on real files with the real embedder and Milvus Lite.

What a user notices: every file gets a result, bad ones a one-line reason; nothing of a failed
file is searchable; a second run does no work; a changed file is replaced (old chunks stay
searchable until the new ones commit); removed files can be pruned or deleted; both indexes
always hold the same ids, also after a crash left Milvus behind the catalog.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.api import RAG
from rag.config import load_settings
from rag.parts import default_dense_store
from tests.support.embedders import CountingEmbedder

DOCS = Path(__file__).resolve().parents[1] / "data" / "documents"
SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


class RefusingDenseStore:
    """The real Milvus store, made to fail upserts that hold a chosen chunk ("disk full"): a
    fault no real disk here can be made to produce on cue."""

    def __init__(self, real, refuse):
        self._real = real
        self._refuse = refuse

    def upsert(self, chunks, vectors):
        if any(self._refuse(c) for c in chunks):
            raise OSError("disk full")
        return self._real.upsert(chunks, vectors)

    def __getattr__(self, name):
        return getattr(self._real, name)


def open_rag(index_dir: Path, embedder) -> tuple[RAG, CountingEmbedder]:
    counting = CountingEmbedder(embedder)
    return RAG.open(index_dir, embedder=counting), counting


def text_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for item in DOCS.iterdir():
        shutil.copy(item, corpus / item.name)
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt", "inaugural_address_notes.md"):
        shutil.copy(SAMPLE / name, corpus / name)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a photo")
    return corpus


def test_mixed_corpus_ingests_fails_clearly_then_does_nothing(tmp_path, embedder):
    corpus = text_corpus(tmp_path)
    rag, counting = open_rag(tmp_path / "index", embedder)
    results = rag.ingest([corpus])
    by_name = {Path(r.path).name: r for r in results}
    assert len(results) == len(list(corpus.iterdir()))
    failed = {name: r.error for name, r in by_name.items() if r.status == "failed"}
    assert set(failed) == {"empty.txt", "photo.jpg", "fake.doc", "encrypted-file.pdf",
                           "password_protected.xlsx"}, failed
    assert all(error and "\n" not in error for error in failed.values())
    assert "password" in failed["encrypted-file.pdf"] and ".docx" in failed["fake.doc"]
    assert all(r.status == "added" and r.chunks > 0 for r in results if r.status != "failed")
    # One embedding call per batch across files, not one per file.
    added = sum(1 for r in results if r.status == "added")
    assert len(counting.calls) < added / 3, counting.calls
    # Nothing of a failed file is in either index, and both hold the same ids.
    sources = {row["path"] for row in rag.index.catalog.sources()}
    assert not any(Path(p).name in failed for p in sources)
    report = rag.index.check()
    assert report.ok and report.dense == report.bm25 == sum(r.chunks for r in results)
    rag.close()

    rag, counting = open_rag(tmp_path / "index", embedder)
    again = rag.ingest([corpus])
    assert counting.calls == []  # nothing re-embedded
    assert [r.status for r in again if r.status != "failed"] == ["unchanged"] * added
    assert {Path(r.path).name: r.error for r in again if r.status == "failed"} == failed
    rag.close()


def test_changed_file_is_replaced_atomically_and_removed_files_pruned(tmp_path, embedder):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    lamp = corpus / "lamp.md"
    lamp.write_text("# Lamp\n\nThe harbour lamp burns whale oil and is trimmed at dusk.\n")
    tea = corpus / "tea.txt"
    tea.write_text("Green tea steeps for two minutes at eighty degrees.\n")
    rag, counting = open_rag(tmp_path / "index", embedder)
    assert [r.status for r in rag.ingest([corpus])] == ["added", "added"]
    old_ids = {c for c in rag.index.live_ids() if rag.index.chunks([c])[c].source == str(lamp.resolve())}
    seen_during_update: list[set[str]] = []
    counting.on_encode = lambda texts: seen_during_update.append(set(rag.index.live_ids()))

    lamp.write_text("# Lamp\n\nThe harbour lamp now runs on paraffin and is lit at sunset.\n")
    results = rag.ingest([corpus])
    assert [(Path(r.path).name, r.status) for r in results] == [("lamp.md", "updated"), ("tea.txt", "unchanged")]
    assert old_ids <= seen_during_update[0]  # old chunks stayed searchable while re-embedding
    hits = rag.retrieve("what fuel does the harbour lamp use", top_k=1)
    assert "paraffin" in hits[0].chunk.text
    assert not (old_ids & rag.index.live_ids())
    assert rag.index.check().ok

    tea.unlink()
    results = rag.ingest([corpus], prune=True)
    assert [(Path(r.path).name, r.status) for r in results] == [("lamp.md", "unchanged"), ("tea.txt", "deleted")]
    assert all(c.source != str(tea.resolve())
               for c in rag.index.chunks(sorted(rag.index.live_ids())).values())
    report = rag.index.check()
    assert report.ok and report.dense == 1

    assert rag.delete(corpus) == 1  # a folder deletes every source under it
    assert rag.index.check().dense == 0
    rag.close()


def test_failed_file_is_remembered_until_it_changes(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    broken = notes / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this file was cut off")
    rag, _ = open_rag(tmp_path / "index", embedder)
    first = rag.ingest([notes])[0]
    assert first.status == "failed" and "PDF" in first.error
    assert rag.ingest([notes])[0].error == first.error
    shutil.copy(DOCS / "crazyones.pdf", broken)
    fixed = rag.ingest([notes])[0]
    assert fixed.status == "added" and fixed.chunks >= 1
    assert rag.index.chunks(sorted(rag.index.live_ids())).popitem()[1].page == 1
    rag.close()


def test_repair_restores_live_chunks_that_milvus_lost(tmp_path, embedder):
    """kill -9 can cost Milvus Lite its unflushed writes; the next open re-embeds what is missing."""
    from retrievers.index import UNCLEAN_KEY

    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt"):
        shutil.copy(SAMPLE / name, notes / name)
    rag, _ = open_rag(tmp_path / "index", embedder)
    rag.ingest([notes])
    live = sorted(rag.index.live_ids())
    lost = live[: len(live) // 2]
    rag.index.dense.delete(lost)  # what a crash before Milvus persisted them would leave
    rag.index.dense.flush()
    rag.index.catalog.set_meta(UNCLEAN_KEY, True)  # as a killed writer leaves it
    assert not rag.index.check().ok
    rag.index.dense.close()
    rag.index.catalog.close()

    reopened, counting = open_rag(tmp_path / "index", embedder)
    report = reopened.index.check()
    assert report.ok and report.dense == len(live)
    assert counting.calls == [len(lost)]
    reopened.close()


@pytest.mark.parametrize("limit_mb", [0.001])
def test_files_over_the_size_limit_are_reported(tmp_path, embedder, limit_mb):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "big.txt").write_text("many words " * 500)
    rag = RAG.open(tmp_path / "index", max_file_mb=limit_mb, embedder=embedder)
    result = rag.ingest([notes])[0]
    assert result.status == "failed" and "max_file_mb" in result.error
    rag.close()


def test_a_file_the_model_or_the_index_rejects_fails_alone(tmp_path, embedder):
    """Files are embedded and written in batches (the writes in a background thread); a file
    whose embedding or whose index write fails is reported on its own line, its batch-mates
    are added, and nothing of it is searchable."""
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt", "inaugural_address_notes.md"):
        shutil.copy(SAMPLE / name, notes / name)
    (notes / "unembeddable.txt").write_text("This note trips the embedding model. " * 3)
    (notes / "unwritable.txt").write_text("This note trips the index write. " * 3)

    def refuse_embedding(texts):
        if any("trips the embedding" in text for text in texts):
            raise RuntimeError("embedding model ran out of memory")

    settings = load_settings(tmp_path / "index")
    store = RefusingDenseStore(default_dense_store(settings, embedder.dimension),
                               refuse=lambda chunk: "trips the index" in chunk.text)
    rag = RAG(settings, embedder=CountingEmbedder(embedder, on_encode=refuse_embedding),
              dense_store=store)
    results = {Path(r.path).name: r for r in rag.ingest([notes])}
    assert results["unembeddable.txt"].status == "failed"
    assert "RuntimeError: embedding model ran out of memory" in results["unembeddable.txt"].error
    assert results["unwritable.txt"].status == "failed"
    assert results["unwritable.txt"].error == "disk full"
    added = [r for r in results.values() if r.status == "added"]
    assert len(added) == 3 and all(r.chunks > 0 for r in added)
    sources = {Path(row["path"]).name for row in rag.index.catalog.sources()}
    assert sources == {r_name for r_name, r in results.items() if r.status == "added"}
    report = rag.index.check()
    assert report.ok and report.dense == sum(r.chunks for r in added)
    rag.close()


def test_a_pdf_read_by_an_older_loader_is_read_again_once(tmp_path, embedder, monkeypatch):
    """An index made before the PDF loader spelled out ligatures (reader version 1) gets the
    new reading on its next ingest although no byte changed; the old chunks stay searchable
    until the new ones are live, and the run after that reads nothing."""
    from ingestion.loaders.registry import READER_VERSIONS

    corpus = tmp_path / "papers"
    corpus.mkdir()
    shutil.copy(DOCS / "crazyones.pdf", corpus / "crazyones.pdf")
    rag, counting = open_rag(tmp_path / "index", embedder)
    with monkeypatch.context() as past:  # the previous release: the PDF loader at version 1
        past.setitem(READER_VERSIONS, ".pdf", 1)
        assert [r.status for r in rag.ingest([corpus])] == ["added"]
    catalog = rag.index.catalog
    assert catalog.sources()[0]["reader"] == 1
    old_ids = rag.index.live_ids()
    seen_during_update: list[set[str]] = []
    counting.on_encode = lambda texts: seen_during_update.append(set(rag.index.live_ids()))
    assert [r.status for r in rag.ingest([corpus])] == ["updated"]
    assert old_ids <= seen_during_update[0] and not (old_ids & rag.index.live_ids())
    assert catalog.sources()[0]["reader"] == 2 and rag.index.check().ok
    assert "crazy ones" in rag.retrieve("the crazy ones", top_k=1)[0].chunk.text
    counting.calls.clear()
    assert [r.status for r in rag.ingest([corpus])] == ["unchanged"] and counting.calls == []
    rag.close()


def test_an_ingest_of_one_batch_embeds_without_loading_torch(tmp_path):
    """A one-note `rag ingest` must not wait for torch and sentence-transformers to load (~6 s
    of its ~7 s on 2 cores): where `auto` chose torch, a run whose chunks all fit in one batch
    is embedded by the float32 export that queries use; a larger run loads torch as before, and
    torch asked by name embeds every run."""
    from rag.models.embedder import Embedder

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "lamp.txt").write_text("The lighthouse keeper polished the brass lamp on Tuesdays.")
    fresh = Embedder("packaged")  # nothing loaded yet
    rag = RAG.open(tmp_path / "index", embedder=fresh, ingest_batch_chunks=4, rerank_model="")
    try:
        assert [r.status for r in rag.ingest([notes])] == ["added"]
        assert "model" not in fresh.__dict__  # the torch model was never loaded
        hits = rag.retrieve("who polishes the brass lamp?", top_k=1, mode="dense")
        assert hits and hits[0].chunk.source.endswith("lamp.txt")
        assert hits[0].scores["dense"] > 0.5  # a real vector of the note, not a stand-in

        many = tmp_path / "many"
        many.mkdir()
        for n in range(9):  # nine one-chunk files: three batches of at most four
            (many / f"note{n}.txt").write_text(f"Note {n}: the kettle boiled at {90 + n} degrees.")
        assert all(r.status == "added" for r in rag.ingest([many]))
        # torch embeds a run of several batches wherever `auto` chose it for passages
        assert ("model" in fresh.__dict__) == (fresh.passage_backend == "torch")
    finally:
        rag.close()

    # torch asked by name keeps every vector on torch, small runs too
    assert Embedder("packaged", passage_backend="torch").small_ingest_encoder() is None
