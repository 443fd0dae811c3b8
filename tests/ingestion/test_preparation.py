"""The pure per-file step: a file becomes chunks with deterministic ids, with no catalog, no
index, no threads and no progress bars, so a worker process can run it as well as the pipeline."""

from __future__ import annotations

import pickle
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingestion.audio import Segment, Transcript
from ingestion.chunking import Chunker
from ingestion.preparation import FilePreparer
from ingestion.results import NotConfigured
from ingestion.sections import LoadError
from retrievers.records import chunk_id_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "rag" / "sample"


def count_words(text: str) -> int:
    return len(text.split())


def preparer(**kwargs) -> FilePreparer:
    return FilePreparer(Chunker(count_words, chunk_size=40, chunk_overlap=4), **kwargs)


def test_a_text_file_becomes_chunks_with_deterministic_ids():
    path = SAMPLE / "tea_brewing_guide.md"
    chunks = preparer().prepare(path, "s" * 16, "h" * 64)
    assert len(chunks) > 1
    assert [c.chunk_id for c in chunks] == [chunk_id_for("s" * 16, "h" * 64, k)
                                            for k in range(len(chunks))]
    assert all(c.source == str(path.resolve()) and c.file_type == "md" for c in chunks)
    again = preparer().prepare(path, "s" * 16, "h" * 64)
    assert [(c.chunk_id, c.text) for c in again] == [(c.chunk_id, c.text) for c in chunks]


def test_a_pickled_preparer_gives_the_same_chunks_and_drops_its_transcriber():
    original = preparer(transcriber_factory=dict)
    original._transcriber = object()  # as after a recording: not sent to a worker
    copy = pickle.loads(pickle.dumps(original))
    assert copy._transcriber is None and copy.transcriber_factory is dict
    path = SAMPLE / "harbor_lamp_manual.txt"
    assert ([c.text for c in copy.prepare(path, "a" * 16, "b" * 64)]
            == [c.text for c in original.prepare(path, "a" * 16, "b" * 64)])


def test_preparing_needs_no_catalog_index_or_pipeline():
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ingestion.chunking import Chunker\n"
        "from ingestion.preparation import FilePreparer\n"
        "p = FilePreparer(Chunker(lambda t: len(t.split()), 40, 4))\n"
        f"assert p.prepare(Path({str(SAMPLE / 'harbor_lamp_manual.txt')!r}), 's' * 16, 'h' * 64)\n"
        "loaded = {'retrievers.catalog', 'retrievers.index', 'ingestion.pipeline',\n"
        "          'ingestion.executors', 'ingestion.progress', 'ingestion.changes'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_file_without_text_raises():
    with pytest.raises(LoadError):
        preparer().prepare(REPO / "tests" / "data" / "documents" / "encrypted-file.pdf",
                           "s" * 16, "h" * 64)


def test_audio_without_a_transcriber_is_not_configured():
    with pytest.raises(NotConfigured):
        preparer().prepare(SAMPLE / "jfk.mp3", "s" * 16, "h" * 64)


class FakeWhisper:
    def transcribe_blocks(self, blocks, total=0.0, progress=None):
        seconds = sum(len(block) for block in blocks) / 16_000
        if progress:
            progress(seconds, seconds)
        return Transcript("en", [Segment(0.0, 5.0, "ask not what your country can do for you"),
                                 Segment(5.0, seconds, "ask what you can do for your country")])


def test_transcription_reports_through_the_callback_and_keeps_timings():
    made: list[FakeWhisper] = []
    opened: list[tuple[str, float]] = []
    reported: list[tuple[float, float]] = []

    def factory() -> FakeWhisper:
        made.append(FakeWhisper())
        return made[-1]

    @contextmanager
    def transcription(path, total):
        opened.append((path.name, total))
        yield lambda done, known: reported.append((done, known))

    step = preparer(transcriber_factory=factory)
    chunks = step.prepare(SAMPLE / "jfk.mp3", "s" * 16, "h" * 64, transcription=transcription)
    step.prepare(SAMPLE / "jfk.mp3", "s" * 16, "h" * 64)  # no callback: fine too
    assert len(made) == 1  # the transcriber is made once, on the first recording
    assert opened[0][0] == "jfk.mp3" and opened[0][1] > 10
    assert reported and reported[-1][0] > 10
    assert chunks[0].start == 0.0 and chunks[-1].end == pytest.approx(reported[-1][0])
    assert all(c.extra == {"language": "en"} for c in chunks)
