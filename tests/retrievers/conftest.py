"""A small real index (Milvus Lite + BM25, real MiniLM vectors) with varied metadata, for filters."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


def sample_sentences(name: str) -> list[str]:
    text = " ".join((SAMPLE / name).read_text().split())
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]


def make_chunks(source: str, file_type: str, texts: list[str], ingested_at: float,
                pages: bool = False):
    from retrievers.records import Chunk, chunk_id_for

    source_id = hashlib.sha256(source.encode()).hexdigest()[:16]
    return [
        Chunk(chunk_id=chunk_id_for(source_id, f"{n:016x}", n), text=t, source=source,
              source_id=source_id, content_hash="h" * 16, position=n,
              page=(n + 1) if pages else None, file_type=file_type, ingested_at=ingested_at)
        for n, t in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three sources: a Markdown guide (day 1), a text manual (day 2) and a paged 'pdf' (day 3)."""
    root = tmp_path_factory.mktemp("docs")
    return {
        str(root / "guides" / "tea.md"): ("md", sample_sentences("tea_brewing_guide.md"), 1000.0, False),
        str(root / "manuals" / "lamp.txt"): ("txt", sample_sentences("harbor_lamp_manual.txt"), 2000.0, False),
        str(root / "reports" / "speech.pdf"): ("pdf", sample_sentences("inaugural_address_notes.md"), 3000.0, True),
    }


def build_index(directory, corpus, embedder, full_text: bool = False):
    from retrievers.index import ChunkIndex
    from retrievers.milvus_store import MilvusDenseStore

    dense = MilvusDenseStore(str(directory / "milvus.db"), "chunks", embedder.dimension,
                             full_text=full_text)
    index = ChunkIndex(directory, dense)
    for source, (file_type, texts, when, pages) in corpus.items():
        chunks = make_chunks(source, file_type, texts, when, pages)
        index.write_source(chunks, embedder.encode([c.text for c in chunks]),
                           source_id=chunks[0].source_id, path=source, content_hash="h" * 16,
                           file_type=file_type)
    index.flush()
    return index


@pytest.fixture(scope="module")
def filter_index(tmp_path_factory, corpus, embedder):
    index = build_index(tmp_path_factory.mktemp("filter_index"), corpus, embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def full_text_index(tmp_path_factory, corpus, embedder):
    """The same corpus in a collection with Milvus's BM25 function (sparse = "milvus")."""
    index = build_index(tmp_path_factory.mktemp("ft_index"), corpus, embedder, full_text=True)
    yield index
    index.close()

# `lite_server` and `milvus_server` are in tests/conftest.py (the scale-out tests use them too).


@pytest.fixture(scope="session")
def packaged_reranker():
    """The packaged ms-marco-MiniLM-L-12-v2 INT8 cross-encoder, loaded once."""
    from rag.config import Settings
    from rag.parts import default_reranker

    return default_reranker(Settings(rerank_model="packaged"))
