"""The pipeline with its parts passed in: any executor gives the same results, batches and
writes, and progress goes to the `Progress` given. No models: a stand-in embedder and index
(the real ones are covered by test_pipeline.py)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from ingestion.chunking import Chunker
from ingestion.executors import InlineExecutor, ThreadExecutor
from ingestion.pipeline import IngestionPipeline
from retrievers.catalog import Catalog

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


class StandInIndex:
    """Records each `write_sources` call and publishes to a real catalog."""

    def __init__(self, directory: Path):
        self.catalog = Catalog(directory / "catalog.sqlite")
        self.writes: list[list[str]] = []

    def write_sources(self, items, vectors):
        assert len(vectors) == sum(len(chunks) for _, chunks in items)
        if any("refused by the index" in c.text for _, chunks in items for c in chunks):
            raise OSError("disk full")
        self.writes.append([Path(publication.path).name for publication, _ in items])
        self.catalog.publish_many([publication for publication, _ in items])
        return []

    def finish_writes(self) -> None:
        pass

    def passage_texts(self, chunks):
        return [c.text for c in chunks]


class StandInEmbedder:
    def __init__(self):
        self.calls: list[int] = []

    def encode(self, texts, progress=None):
        self.calls.append(len(texts))
        if any("refused by the model" in text for text in texts):
            raise RuntimeError("model refused")
        if progress:
            progress(len(texts))
        return np.ones((len(texts), 4), dtype=np.float32)


class RecordingProgress:
    def __init__(self):
        self.events: list[tuple] = []

    def start(self, n_files):
        self.events.append(("start", n_files))

    def file_started(self, name):
        self.events.append(("file", name))

    def file_done(self):
        self.events.append(("done",))

    def embedding(self, n_chunks):
        self.events.append(("embed", n_chunks))
        return lambda n: self.events.append(("embedded", n))

    @contextmanager
    def transcription(self, path, total):
        yield lambda done, known: None

    def close(self):
        self.events.append(("close",))


def corpus(tmp_path: Path) -> Path:
    notes = tmp_path / "notes"
    notes.mkdir()
    for item in SAMPLE.iterdir():
        if item.suffix != ".mp3":
            shutil.copy(item, notes / item.name)
    (notes / "refused_by_model.txt").write_text("This note is refused by the model. " * 3)
    (notes / "refused_by_index.txt").write_text("This note is refused by the index. " * 3)
    (notes / "empty.txt").write_bytes(b"")
    return notes


def ingest(tmp_path: Path, executor, read_ahead: int):
    index = StandInIndex(tmp_path / "index")
    embedder = StandInEmbedder()
    progress = RecordingProgress()
    pipeline = IngestionPipeline(index, embedder, Chunker(lambda t: len(t.split()), 40, 4),
                                 batch_chunks=8, read_ahead=read_ahead, executor=executor,
                                 progress=progress)
    results = pipeline.ingest([corpus(tmp_path)])
    index.catalog.close()
    return [(Path(r.path).name, r.status, r.chunks, r.error) for r in results], index, embedder, progress


@pytest.mark.parametrize("executor,read_ahead", [(None, 8), (None, 0), (InlineExecutor(), 8),
                                                 (ThreadExecutor(), 0)])
def test_any_executor_gives_the_same_results_batches_and_writes(tmp_path, executor, read_ahead):
    expected, expected_index, expected_embedder, _ = ingest(tmp_path / "run", None, 8)
    shutil.rmtree(tmp_path / "run")  # chunk ids depend on the absolute path: same folder again
    results, index, embedder, _ = ingest(tmp_path / "run", executor, read_ahead)
    assert results == expected
    assert embedder.calls == expected_embedder.calls and index.writes == expected_index.writes
    statuses = {name: (status, error) for name, status, _, error in results}
    assert statuses["refused_by_model.txt"] == ("failed", "RuntimeError: model refused")
    assert statuses["refused_by_index.txt"] == ("failed", "disk full")
    assert statuses["empty.txt"] == ("failed", "empty file (0 bytes)")
    assert all(status == "added" for name, (status, _) in statuses.items()
               if name not in {"refused_by_model.txt", "refused_by_index.txt", "empty.txt"})
    assert any(len(batch) > 1 for batch in index.writes)  # files share batches


def test_progress_goes_to_the_progress_given(tmp_path):
    results, _, embedder, progress = ingest(tmp_path, InlineExecutor(), 0)
    events = progress.events
    assert events[0] == ("start", len(results)) and events[-1] == ("close",)
    assert [e[1] for e in events if e[0] == "file"] == [name for name, *_ in results]
    assert events.count(("done",)) == len(results)
    assert [e[1] for e in events if e[0] == "embed"] == embedder.calls
