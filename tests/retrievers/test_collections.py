"""Versioned collections behind one alias (`CollectionFamily`), on every Milvus the index runs on.

What `rag reindex` relies on: a collection keeps the model record it was created with; the
alias names the serving collection and moves in one call; the serving one cannot be dropped.
Milvus Lite in-process and through `milvus-lite server` run by default; the Milvus 2.3.5
standalone server (PyPI `milvus`, ~20 s to start) with -m slow.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retrievers.collections import CollectionFamily, as_properties
from retrievers.milvus_store import MilvusDenseStore
from retrievers.records import Chunk

_bases = itertools.count()
RECORD_A = {"model": "a", "ref": "/models/a", "fingerprint": "sha256:aaaa", "dimension": 8}
RECORD_B = {"model": "b", "ref": "/models/b", "fingerprint": "sha256:bbbb", "dimension": 4}


def _chunks(n: int) -> list[Chunk]:
    return [Chunk(chunk_id=f"c{i}", text=f"text {i}", source="/d/f.txt", source_id="s",
                  content_hash="h", position=i, file_type="txt", ingested_at=1.0) for i in range(n)]


def _unit(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(dim).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class CollectionFamilyConformance:
    """Subclasses provide `uri`."""

    @pytest.fixture
    def family(self, uri):
        base = f"fam{next(_bases)}"
        stores: list[MilvusDenseStore] = []

        def store(name: str, record: dict) -> MilvusDenseStore:
            made = MilvusDenseStore(uri, name, int(record["dimension"]),
                                    properties=as_properties(record))
            stores.append(made)
            return made

        first = store(base, RECORD_A)
        yield CollectionFamily(first.client, base), store
        for s in stores:
            s.close()

    def test_collections_carry_their_model_record(self, family):
        fam, store = family
        second = store(fam.next_name(), RECORD_B)
        assert second.collection == f"{fam.base}_v2"
        assert fam.record(fam.base) == {k: str(v) for k, v in RECORD_A.items()}
        assert fam.record(second.collection)["fingerprint"] == "sha256:bbbb"
        assert fam.members() == [fam.base, second.collection]
        assert fam.next_name() == f"{fam.base}_v3"

    def test_the_alias_moves_in_one_call_and_searches_follow_it(self, family):
        fam, store = family
        old = store(fam.base, RECORD_A)
        new = store(fam.next_name(), RECORD_B)
        old.upsert(_chunks(3), _unit(3, 8))
        new.upsert(_chunks(5), _unit(5, 4))
        old.flush(), new.flush()
        assert fam.serving() is None  # never switched: the index serves its first collection
        fam.switch(new.collection)
        assert fam.serving() == new.collection
        assert fam.client.query(fam.alias, filter="", output_fields=["count(*)"])[0]["count(*)"] == 5
        fam.switch(old.collection)  # back: alter_alias
        assert fam.serving() == old.collection
        assert fam.client.query(fam.alias, filter="", output_fields=["count(*)"])[0]["count(*)"] == 3

    def test_the_serving_collection_cannot_be_dropped(self, family):
        fam, store = family
        new = store(fam.next_name(), RECORD_B)
        fam.switch(new.collection)
        with pytest.raises(ValueError, match="serving collection"):
            fam.drop(new.collection)
        fam.drop(fam.base)
        assert fam.members() == [new.collection]


class TestMilvusLite(CollectionFamilyConformance):
    @pytest.fixture
    def uri(self, tmp_path):
        return str(tmp_path / "milvus.db")


class TestMilvusLiteServer(CollectionFamilyConformance):
    @pytest.fixture
    def uri(self, lite_server):
        return lite_server


@pytest.mark.slow
class TestMilvusServer(CollectionFamilyConformance):
    @pytest.fixture
    def uri(self, milvus_server):
        return milvus_server
