"""Several `ChunkIndex`es over one index (one catalog, one Milvus server), as several serving
processes and one ingesting process hold it: a publish by one is searchable in the others at
their next query, one writes at a time, and opening never "repairs" another's ingest in flight.

The writer lock is a flock on its own file descriptor, so two instances in one process contend
for it exactly as two processes do; the cross-process run is tests/rag/test_scale_out.py (slow).
Stand-in 16-d vectors (no model): what is tested is who sees which ids, not ranking.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from retrievers.catalog import PENDING
from retrievers.index import ChunkIndex
from retrievers.milvus_store import MilvusDenseStore
from retrievers.records import Chunk

DIM = 16
_collections = itertools.count()


def _chunks(source: str, words: list[str], version: str = "") -> list[Chunk]:
    # Ids name the content, as real ones do (source id + content hash + position).
    return [Chunk(chunk_id=f"{source}{version}-{n}", text=f"{word} appears in {source}",
                  source=f"/d/{source}.txt", source_id=source, content_hash="h" + version,
                  position=n, file_type="txt", ingested_at=1.0)
            for n, word in enumerate(words)]


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _write(index: ChunkIndex, source: str, words: list[str], version: str = "") -> list[Chunk]:
    chunks = _chunks(source, words, version)
    index.write_source(chunks, _vectors(len(chunks)), source_id=source, path=f"/d/{source}.txt",
                       content_hash="h", file_type="txt")
    return chunks


@pytest.fixture(params=["rank-bm25", "milvus"])
def open_index(request, tmp_path, lite_server):
    """Opens instances of one index: catalog in tmp_path, vectors in a shared Milvus Lite server."""
    collection = f"shared_{next(_collections)}_{time.monotonic_ns() % 10**6}"
    opened: list[ChunkIndex] = []

    def make() -> ChunkIndex:
        dense = MilvusDenseStore(lite_server, collection, DIM, full_text=request.param == "milvus")
        index = ChunkIndex(tmp_path, dense, sparse=request.param)
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def test_a_publish_in_one_instance_is_searched_by_another_at_its_next_query(open_index):
    writer, server = open_index(), open_index()
    _write(writer, "first", ["zebra"])
    writer.finish_writes()
    assert server.keywords.search("zebra", 5) == []  # nothing read the catalog yet
    with server.reading():  # each query starts here: it catches up first
        hits = server.keywords.search("zebra", 5)
    assert [cid for cid, _ in hits] == ["first-0"]
    # A replaced source: its old chunk leaves the other instance too, the new one arrives.
    _write(writer, "first", ["walrus", "walrus again"], version="v2")
    writer.finish_writes()
    with server.reading():
        assert server.live_ids() == {"firstv2-0", "firstv2-1"}
        assert {cid for cid, _ in server.keywords.search("walrus", 5)} == {"firstv2-0", "firstv2-1"}
        assert [cid for cid, _ in server.keywords.search("zebra", 5)] == []
    writer.delete_source("first")
    with server.reading():
        assert server.live_ids() == set()


def test_nothing_is_reread_while_nobody_publishes(open_index):
    writer, server = open_index(), open_index()
    _write(writer, "one", ["alpha"])
    writer.finish_writes()
    assert server.refresh() is True
    assert server.refresh() is False


def test_one_writer_at_a_time_and_the_second_waits_for_the_first_run_to_end(open_index):
    first, second = open_index(), open_index()
    _write(first, "a", ["apple"])  # the run has begun: the lock is held until finish_writes
    done = threading.Event()

    def write_second() -> None:
        _write(second, "b", ["banana"])
        second.finish_writes()
        done.set()

    thread = threading.Thread(target=write_second)
    thread.start()
    assert not done.wait(1.0), "a second writer wrote while the first run was in progress"
    first.finish_writes()
    assert done.wait(30)
    thread.join()
    with first.reading():
        assert first.live_ids() == {"a-0", "b-0"}


def test_opening_while_another_writes_leaves_its_pending_chunks_alone(open_index):
    writer = open_index()
    staged = _chunks("big", ["one", "two", "three"])
    writer.stage_part(staged, _vectors(3))  # an ingest in flight: pending rows, the lock held
    opener = open_index()  # would repair (drop pending rows) if the writer were gone
    assert sorted(writer.catalog.ids_in_state(PENDING)) == [c.chunk_id for c in staged]
    assert {c.chunk_id for c in staged} <= writer.dense.all_ids()
    writer.finish_writes()
    # The writer is gone now (lock free): the next opener repairs what it left.
    open_index()
    assert writer.catalog.ids_in_state(PENDING) == []
    assert not ({c.chunk_id for c in staged} & writer.dense.all_ids())
    del opener
