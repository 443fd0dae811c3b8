"""One conformance suite for the keyword index, run against every implementation.

`KeywordIndexConformance` holds the behaviour (as haystack's document-store mixins do); each
backend class only says how to make an index and how a chunk reaches it: the in-process
`BM25Index` (rank-bm25 scoring) takes the catalog's term counts, `MilvusKeywordIndex` (Milvus's
built-in BM25 function) finds the text in the Milvus collection the dense store writes, in
Milvus Lite embedded and shared through `milvus-lite server`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retrievers.bm25 import BM25Index, facets_of
from retrievers.filters import Filters
from retrievers.milvus_keywords import MilvusKeywordIndex
from retrievers.milvus_store import MilvusDenseStore
from retrievers.protocols import KeywordIndex
from retrievers.records import Chunk
from retrievers.text import tokenize

TEXTS = {
    "tea-1": ("Oolong leaves unfurl slowly; oolong rewards several short infusions.", "md", "/docs/tea.md"),
    "tea-2": ("Green tea wants water well below boiling and a short steep.", "md", "/docs/tea.md"),
    "lamp-1": ("The harbour lamp warranty covers lightning damage for two years.", "txt", "/docs/lamp.txt"),
    "lamp-2": ("Oolong is also the name of the lamp's brass finish.", "txt", "/docs/lamp.txt"),
    "speech-1": ("Ask not what your country can do for you.", "pdf", "/docs/speech.pdf"),
}
_collections = itertools.count()


def _chunk(chunk_id: str) -> Chunk:
    text, file_type, source = TEXTS[chunk_id]
    return Chunk(chunk_id=chunk_id, text=text, source=source, source_id=source, content_hash="h",
                 position=0, file_type=file_type, page=1 if file_type == "pdf" else None)


class Backend:
    """An index plus how chunks reach it (what `ChunkIndex` does for that backend)."""

    def __init__(self, index: KeywordIndex, store: MilvusDenseStore | None = None):
        self.index = index
        self.store = store

    def stage(self, chunks: list[Chunk]) -> None:
        """What an ingest in flight leaves in the stores before it publishes."""
        if self.store is not None:  # Milvus BM25 reads the text from the collection's rows
            vectors = np.random.default_rng(0).normal(size=(len(chunks), 8)).astype(np.float32)
            self.store.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
            self.store.flush()

    def add(self, *chunk_ids: str) -> None:
        chunks = [_chunk(c) for c in chunk_ids]
        self.stage(chunks)
        for chunk in chunks:
            self.index.add_tokens(chunk.chunk_id, tokenize(chunk.text), facets_of(chunk))


class KeywordIndexConformance:
    """Behaviour every keyword index must show. Subclasses provide the `backend` fixture."""

    def test_it_is_a_keyword_index(self, backend):
        assert isinstance(backend.index, KeywordIndex)

    def test_search_finds_only_chunks_with_a_query_term_best_first(self, backend):
        backend.add(*TEXTS)
        hits = backend.index.search("oolong infusions", 5)
        assert [cid for cid, _ in hits] == ["tea-1", "lamp-2"]
        assert hits[0][1] > hits[1][1] > 0

    def test_stop_words_and_unknown_words_find_nothing(self, backend):
        backend.add(*TEXTS)
        assert backend.index.search("the of and", 5) == []
        assert backend.index.search("zebra", 5) == []

    def test_ids_follow_adds_and_removes_and_removed_chunks_are_not_found(self, backend):
        backend.add(*TEXTS)
        assert backend.index.ids() == set(TEXTS) and len(backend.index) == len(TEXTS)
        backend.index.remove(["tea-1", "not-there"])
        assert "tea-1" not in backend.index and "tea-2" in backend.index
        assert len(backend.index) == len(TEXTS) - 1
        assert [cid for cid, _ in backend.index.search("oolong", 5)] == ["lamp-2"]

    def test_adding_an_id_again_keeps_one_entry(self, backend):
        backend.add("lamp-1", "lamp-2")
        backend.add("lamp-1")
        assert len(backend.index) == 2
        assert [cid for cid, _ in backend.index.search("warranty", 5)] == ["lamp-1"]

    def test_filters_apply_before_the_top_k_cut(self, backend):
        backend.add(*TEXTS)
        # tea-1 outscores lamp-2 on "oolong"; with k=1 a filter must still find lamp-2
        only_lamp = backend.index.search("oolong", 1, Filters(sources=("/docs/lamp.txt",)))
        assert [cid for cid, _ in only_lamp] == ["lamp-2"]
        only_txt = backend.index.search("oolong", 1, Filters(file_types=("txt",)))
        assert [cid for cid, _ in only_txt] == ["lamp-2"]
        assert backend.index.search("oolong", 5, Filters(file_types=("pdf",))) == []

    def test_rows_of_an_ingest_in_flight_do_not_crowd_out_live_ones(self, backend):
        backend.add(*TEXTS)
        staged = [Chunk(chunk_id=f"pending-{n}", text="oolong oolong oolong " * (n + 1),
                        source="/docs/new.md", source_id="new", content_hash="h", position=n)
                  for n in range(30)]
        backend.stage(staged)
        hits = backend.index.search("oolong", 2)
        assert [cid for cid, _ in hits] == ["tea-1", "lamp-2"]

    def test_top_k_is_respected(self, backend):
        backend.add(*TEXTS)
        assert len(backend.index.search("oolong lamp tea water country", 2)) == 2


class TestRankBM25Index(KeywordIndexConformance):
    @pytest.fixture
    def backend(self):
        return Backend(BM25Index())


class TestMilvusBM25Lite(KeywordIndexConformance):
    @pytest.fixture
    def backend(self, tmp_path):
        store = MilvusDenseStore(str(tmp_path / "milvus.db"), "keywords", 8, full_text=True)
        yield Backend(MilvusKeywordIndex(store), store)
        store.close()


class TestMilvusBM25LiteServer(KeywordIndexConformance):
    @pytest.fixture
    def backend(self, lite_server):
        store = MilvusDenseStore(lite_server, f"keywords_{next(_collections)}", 8, full_text=True)
        yield Backend(MilvusKeywordIndex(store), store)
        store.client.drop_collection(store.collection)
        store.close()
