"""Property-based tests (hypothesis) over every loader and the chunker: random bytes and mutated
real files never crash the process and never yield a chunk without a source.

"Crash" means anything but the handled errors a user sees as a one-line reason: `LoadError`
(the file is broken) and `NotConfigured` (this pipeline cannot read its kind). A library's
KeyError or IndexError escaping a loader is a finding, as is a hang (pytest-timeout) or a dead
process. Inputs: random bytes under every registered extension, and small real documents
(tests/data/documents and ../shared/data/documents, under 100 KB) with bytes flipped,
inserted, deleted, truncated or a slice repeated. Images and scanned pages go through the real
decoders and rasterisers with a recogniser that finds no text (OCR models are not the subject).

The default run tries ~170 inputs (a few seconds), the same ones every run (derandomized: CI
must not fail at random); `-m slow` tries 2,400 new random ones each run (each test asserts how
many it ran, so the count in the report is what ran).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.chunking import Chunker
from ingestion.loaders import LOADERS
from ingestion.ocr import Ocr
from ingestion.preparation import FilePreparer
from ingestion.results import NotConfigured
from ingestion.sections import LoadError, Section

REPO = Path(__file__).resolve().parents[2]
CORPORA = [REPO / "tests" / "data" / "documents", REPO.parent / "shared" / "data" / "documents"]
EXTENSIONS = sorted(LOADERS)
HANDLED = (LoadError, NotConfigured)


class BlindRecogniser:
    """Finds no line in any image: the image and PDF code paths run, no OCR model loads."""

    def recognise(self, image):
        return []


def small_documents() -> list[Path]:
    found = []
    for corpus in CORPORA:
        if corpus.is_dir():
            found += [p for p in sorted(corpus.rglob("*"))
                      if p.is_file() and p.suffix.lower() in LOADERS and p.stat().st_size < 100_000]
    return found


DOCUMENTS = small_documents()
PREPARER = FilePreparer(Chunker(lambda text: len(text.split()), chunk_size=64, chunk_overlap=8),
                        ocr=Ocr(BlindRecogniser(), mode="auto", dpi=50))
WORKDIR = Path(tempfile.mkdtemp(prefix="rag-properties-"))


def check(data: bytes, extension: str, name: str = "input") -> str:
    """Load and chunk `data` as a file of `extension`; the outcome, or AssertionError."""
    path = WORKDIR / f"{name}{extension}"
    path.write_bytes(data)
    try:
        chunks = PREPARER.prepare(path, "s" * 16, "h" * 64)
    except HANDLED as exc:
        assert "\n" not in str(exc).strip(), f"{extension}: a reason over several lines: {exc!r}"
        return "refused"
    finally:
        path.unlink()
    assert chunks, "prepare returned no chunks without raising"
    for chunk in chunks:
        assert chunk.source == str(path.resolve()) and chunk.source_id == "s" * 16
        assert chunk.text.strip(), f"{extension}: a blank chunk"
    return "chunked"


def mutate(data: bytes, draw) -> bytes:
    """One to four random edits of a real file's bytes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 256))]
        elif kind == "truncate":
            del out[at:]
        elif kind == "repeat":
            out[at:at] = out[at:at + draw(st.integers(1, 512))] * draw(st.integers(1, 8))
    return bytes(out)


@st.composite
def mutated_documents(draw) -> tuple[bytes, str, str]:
    source = draw(st.sampled_from(DOCUMENTS))
    return mutate(source.read_bytes(), draw), source.suffix.lower(), source.name


def run_random_bytes(n: int, derandomize: bool = True) -> dict[str, int]:
    outcomes: dict[str, int] = {}

    @settings(max_examples=n, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.binary(max_size=4096), st.sampled_from(EXTENSIONS))
    def prop(data, extension):
        outcome = check(data, extension)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    return outcomes


def run_mutations(n: int, derandomize: bool = True) -> dict[str, int]:
    outcomes: dict[str, int] = {}

    @settings(max_examples=n, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated_documents())
    def prop(case):
        data, extension, name = case
        outcome = check(data, extension, name="mutated")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    return outcomes


def test_random_bytes_under_every_extension_are_chunked_or_refused_in_one_line():
    outcomes = run_random_bytes(100)
    assert sum(outcomes.values()) >= 100


@pytest.mark.skipif(not DOCUMENTS, reason="no small documents found")
def test_mutated_real_documents_are_chunked_or_refused_in_one_line():
    outcomes = run_mutations(60)
    assert sum(outcomes.values()) >= 60
    assert outcomes.get("chunked", 0) > 0  # mutations are not all fatal: text still comes out


@given(st.lists(st.tuples(st.text(max_size=400), st.one_of(st.none(), st.integers(1, 999)),
                          st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False))),
                max_size=12))
@settings(max_examples=150, deadline=None, database=None, derandomize=True)
def test_the_chunker_never_yields_a_blank_chunk_or_loses_a_location(raw):
    sections = [Section(text, page=page, start=start, end=None if start is None else start + 1.0)
                for text, page, start in raw]
    chunker = Chunker(lambda text: len(text.split()), chunk_size=16, chunk_overlap=4)
    pieces = chunker.split(sections)
    timed = any(s.start is not None and s.text.strip() for s in sections)
    for piece in pieces:
        assert piece.text.strip()
        if piece.start is not None:
            assert piece.end is not None and piece.end >= piece.start
    assert timed <= any(piece.start is not None for piece in pieces)
    words = {w for s in sections for w in s.text.split()}
    assert {w for piece in pieces for w in piece.text.split()} <= words | {""}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_many_random_and_mutated_inputs_never_crash(capsys):
    random = run_random_bytes(1200, derandomize=False)
    mutated = run_mutations(1200, derandomize=False) if DOCUMENTS else {}
    total = sum(random.values()) + sum(mutated.values())
    with capsys.disabled():
        print(f"\nhypothesis: {total} inputs across {len(EXTENSIONS)} extensions "
              f"(random bytes {random}, mutated documents {mutated}); 0 crashes")
    assert total >= 2000
