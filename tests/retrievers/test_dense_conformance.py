"""One conformance suite for the dense store, run against every Milvus it must work with.

As haystack's document-store mixins do, `DenseStoreConformance` holds the behaviour and each
backend class only says how to make a store: Milvus Lite in-process, Milvus Lite shared through
`milvus-lite server` (the way to share an index between processes), and a real Milvus 2.3.5
standalone server from the PyPI `milvus` package, on loopback.
"""

from __future__ import annotations

import functools
import itertools
import time

import numpy as np
import pytest

from retrievers.errors import StoreConfigError
from retrievers.filters import Filters
from retrievers.milvus_store import MAX_TEXT, MilvusDenseStore
from retrievers.protocols import DenseStore
from retrievers.records import Chunk

DIM = 16
_names = itertools.count()


def _chunk(n: int, **meta) -> Chunk:
    base = dict(text=f"chunk number {n}", source=f"/docs/{'ab'[n % 2]}/f{n % 5}.txt",
                source_id=f"s{n % 5}", content_hash="h", position=n, file_type=["txt", "pdf"][n % 2],
                page=(n % 7) if n % 2 else None, ingested_at=1000.0 + n)
    base.update(meta)
    return Chunk(chunk_id=f"id-{n:05d}", **base)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class DenseStoreConformance:
    """Behaviour every backend must show. Subclasses provide the `make_store` fixture."""

    def test_it_is_a_dense_store(self, make_store):
        store = make_store()
        assert isinstance(store, DenseStore) and store.dim == DIM

    def test_search_ranks_by_cosine(self, make_store):
        store = make_store()
        chunks, vectors = [_chunk(n) for n in range(40)], _vectors(40)
        store.upsert(chunks, vectors)
        store.flush()
        query = vectors[7] + 0.05 * vectors[3]
        hits = store.search(query, 5)
        sims = vectors @ (query / np.linalg.norm(query))
        expected = [chunks[i].chunk_id for i in np.argsort(-sims)[:5]]
        assert [cid for cid, _ in hits] == expected
        assert [s for _, s in hits] == pytest.approx(sorted(sims, reverse=True)[:5], abs=1e-3)

    def test_upsert_replaces_and_delete_removes(self, make_store):
        store = make_store()
        chunks, vectors = [_chunk(n) for n in range(10)], _vectors(10)
        store.upsert(chunks, vectors)
        store.flush()
        store.upsert([chunks[0]], vectors[9:10])  # same id, new vector
        store.delete([chunks[9].chunk_id])
        store.flush()
        assert store.count() == 9
        assert store.all_ids() == {c.chunk_id for c in chunks[:9]}
        hits = store.search(vectors[9], 1)
        assert hits[0][0] == chunks[0].chunk_id and hits[0][1] == pytest.approx(1.0, abs=1e-3)

    def test_filters_select_the_same_rows_as_the_reference(self, make_store):
        store = make_store()
        chunks, vectors = [_chunk(n) for n in range(30)], _vectors(30)
        store.upsert(chunks, vectors)
        store.flush()
        for f in [Filters(sources=("/docs/a",)), Filters(sources=("/docs/b/f3.txt",)),
                  Filters(file_types=("pdf",)), Filters(since=1010.0, until=1019.0),
                  Filters(page_min=2, page_max=4), Filters(file_types=("txt",), page_min=1)]:
            expected = {c.chunk_id for c in chunks
                        if f.matches(c.source, c.file_type, c.page, c.ingested_at)}
            got = {cid for cid, _ in store.search(vectors[0], 30, f)}
            assert got == expected, f

    def test_all_ids_scans_past_one_batch(self, make_store):
        store = make_store()
        chunks, vectors = [_chunk(n) for n in range(1203)], _vectors(1203)
        store.upsert(chunks, vectors)
        store.flush()
        assert store.all_ids() == {c.chunk_id for c in chunks}

    def test_a_new_collection_holds_no_chunk_text(self, make_store):
        """With rank-bm25 the catalog holds the text; a copy in Milvus only costs memory."""
        store = make_store()
        fields = {f["name"] for f in store.client.describe_collection(store.collection)["fields"]}
        assert "text" not in fields and {"id", "vector", "source"} <= fields

    def test_a_collection_made_with_text_keeps_receiving_it_clipped(self, make_store):
        """Collections made before the text left Milvus still take upserts (text included,
        clipped to Milvus's byte limit)."""
        from pymilvus import DataType, MilvusClient

        probe = make_store()
        name = f"{probe.collection}_with_text"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        for field in ("source", "file_type"):
            schema.add_field(field, DataType.VARCHAR, max_length=4096)
        schema.add_field("page", DataType.INT64)
        for field in ("start", "end", "ingested_at"):
            schema.add_field(field, DataType.DOUBLE)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
        params = probe.client.prepare_index_params()
        params.add_index("vector", index_type="HNSW", metric_type="COSINE",
                         params={"M": 16, "efConstruction": 200})
        probe.client.create_collection(name, schema=schema, index_params=params)
        store = make_store(collection=name)
        store.upsert([_chunk(1, text="é" * 40000), _chunk(2)], _vectors(2))
        store.flush()
        rows = store.client.get(name, ids=["id-00001", "id-00002"], output_fields=["text"])
        texts = {r["id"]: r["text"] for r in rows}
        assert texts["id-00002"] == "chunk number 2"
        assert len(texts["id-00001"].encode()) <= MAX_TEXT and texts["id-00001"].startswith("éé")
        assert [cid for cid, _ in store.search(_vectors(2)[1], 1)] == ["id-00002"]

    def test_reopening_with_another_dimension_is_refused(self, make_store):
        store = make_store()
        with pytest.raises(StoreConfigError, match="holds 16-d vectors"):
            make_store(collection=store.collection, dim=DIM + 1)


class TestMilvusLite(DenseStoreConformance):
    index = "HNSW"

    @pytest.fixture
    def make_store(self, tmp_path):
        stores: list[MilvusDenseStore] = []

        def make(collection: str = "chunks", dim: int = DIM) -> MilvusDenseStore:
            for s in stores:  # one Milvus Lite client per directory and process
                if s.collection == collection:
                    s.close()
            store = MilvusDenseStore(str(tmp_path / "milvus.db"), collection, dim,
                                     index=self.index)
            stores.append(store)
            return store

        yield make
        for s in stores:
            s.close()


class TestMilvusLiteQuantised(TestMilvusLite):
    """The embedded default: HNSW over 8-bit codes (`dense_index = auto` on Milvus Lite)."""

    index = "HNSW_SQ"


def _server_factory(uri: str):
    stores: list[MilvusDenseStore] = []
    prefix = f"t{time.monotonic_ns() % 10**9}_"

    def make(collection: str | None = None, dim: int = DIM) -> MilvusDenseStore:
        store = MilvusDenseStore(uri, collection or f"{prefix}{next(_names)}", dim)
        stores.append(store)
        return store

    return make, stores


class TestMilvusLiteServer(DenseStoreConformance):
    @pytest.fixture
    def make_store(self, lite_server):
        make, stores = _server_factory(lite_server)
        yield make
        for s in stores:
            s.close()


def _slow(name: str):
    """The mixin's test `name`, marked slow for one backend only (a copy, not the shared one)."""
    base = getattr(DenseStoreConformance, name)

    @functools.wraps(base)
    def test(self, make_store):
        return base(self, make_store)

    return pytest.mark.slow(test)


class TestMilvusServer(DenseStoreConformance):
    # Milvus 2.3.5 takes ~6 s per fresh collection here (index build, load, flush): two tests
    # run by default (~20 s with the server start), the rest with -m slow.
    test_upsert_replaces_and_delete_removes = _slow("test_upsert_replaces_and_delete_removes")
    test_all_ids_scans_past_one_batch = _slow("test_all_ids_scans_past_one_batch")
    test_a_collection_made_with_text_keeps_receiving_it_clipped = _slow(
        "test_a_collection_made_with_text_keeps_receiving_it_clipped")
    test_reopening_with_another_dimension_is_refused = _slow(
        "test_reopening_with_another_dimension_is_refused")

    @pytest.fixture
    def make_store(self, milvus_server):
        make, stores = _server_factory(milvus_server)
        yield make
        for s in stores:
            s.client.drop_collection(s.collection)
            s.close()
