"""Embedded Milvus Lite's background merges stay within `lite_segment_rows` (retrievers/lite_merges.py).

Real Milvus Lite in this process, vectors with bfloat16's precision (what the default model gives
on CPUs with avx512_bf16): a merge reads at most twice the bound and writes segments of at most
the bound, while with Lite's own bound the same writes merge into larger segments, so the
setting is what keeps a large ingest's memory peaks down. Searches still find every row.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from retrievers.lite_merges import DEFAULT_SEGMENT_ROWS, LITE_OWN_SEGMENT_ROWS, bound_merges
from retrievers.lite_search import engine_collection
from retrievers.milvus_store import MilvusDenseStore
from retrievers.records import Chunk

DIM = 384
BATCH = 512  # rows per flush: one Parquet file each, merged four at a time by Lite


def _chunk(n: int) -> Chunk:
    return Chunk(chunk_id=f"id-{n:06d}", text="", source="/d/big.txt", source_id="s",
                 content_hash="h", position=n, file_type="txt", ingested_at=1000.0)


def _bf16_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v.view(np.uint32)[:] &= np.uint32(0xFFFF0000)  # bfloat16's mantissa: Parquet compresses it
    return v


def _segment_rows(store: MilvusDenseStore) -> list[int]:
    coll = engine_collection(store.uri, store.collection)
    coll._wait_for_bg(timeout=120)
    return sorted(seg.num_rows for seg in coll._segments_snapshot())


def _write(tmp_path, segment_rows: int, rows: int = 16 * BATCH):
    store = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", DIM, index="HNSW_SQ",
                             lite_segment_rows=segment_rows)
    vectors = _bf16_vectors(rows, seed=7)
    for start in range(0, rows, BATCH):
        store.upsert([_chunk(n) for n in range(start, start + BATCH)], vectors[start:start + BATCH])
        store.flush()
    return store, vectors


@pytest.fixture(autouse=True)
def _restore_default_bound():
    yield
    bound_merges(DEFAULT_SEGMENT_ROWS)  # the bound is process-wide: leave the default for other tests


def test_merges_write_no_segment_past_the_bound_and_every_row_is_found(tmp_path):
    store, vectors = _write(tmp_path, segment_rows=1024)
    try:
        sizes = _segment_rows(store)
        assert sum(sizes) == 16 * BATCH
        assert max(sizes) == 1024, sizes  # merged (four 512-row files), but no further
        files = list((tmp_path / "milvus.db").rglob("data_*.parquet"))
        assert max(pq.ParquetFile(f).metadata.num_rows for f in files) <= 1024
        for n in (0, 3000, 8191):
            assert store.search(vectors[n], 1)[0][0] == f"id-{n:06d}"
    finally:
        store.close()


def test_with_lites_own_bound_the_same_writes_merge_into_larger_segments(tmp_path):
    store, _ = _write(tmp_path, segment_rows=0)
    try:
        assert max(_segment_rows(store)) > 1024  # so the bound above is what held them
    finally:
        store.close()
    assert LITE_OWN_SEGMENT_ROWS == 100_000 and DEFAULT_SEGMENT_ROWS < LITE_OWN_SEGMENT_ROWS
