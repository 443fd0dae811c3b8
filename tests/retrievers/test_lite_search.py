"""The direct Milvus Lite search (retrievers/lite_search.py) gives Milvus Lite's own answers.

Real Milvus Lite in this process: several segments, upserts that shadow older versions, deletes;
the direct path must be taken (else these tests would prove nothing) and agree with
`MilvusClient.search`, and must step aside where it cannot vouch for its answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from retrievers.filters import Filters
from retrievers.lite_search import LiteDirectSearch, engine_collection
from retrievers.milvus_store import MilvusDenseStore
from retrievers.records import Chunk

DIM = 16


def _chunk(n: int) -> Chunk:
    return Chunk(chunk_id=f"id-{n:05d}", text=f"chunk {n}", source=f"/d/f{n % 3}.txt",
                 source_id=f"s{n % 3}", content_hash="h", position=n, file_type="txt",
                 ingested_at=1000.0 + n)


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _public(store: MilvusDenseStore, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
    direct, store._direct = store._direct, None
    try:
        return store.search(vector, k)
    finally:
        store._direct = direct


def _assert_direct_agrees(store: MilvusDenseStore, queries: np.ndarray, gone: set[str],
                          k: int = 10) -> None:
    """The direct path answers each query, with Milvus Lite's own hits, none of them `gone`."""
    for query in queries:
        direct = store._direct.search(query, k)
        assert direct is not None, "the direct path was not taken"
        public = _public(store, query, k)
        assert [cid for cid, _ in direct] == [cid for cid, _ in public]
        assert [s for _, s in direct] == pytest.approx([s for _, s in public], abs=1e-4)
        assert not {cid for cid, _ in direct} & gone


@pytest.fixture()
def store(tmp_path):
    s = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", DIM)
    yield s
    s.close()


def _settle(store: MilvusDenseStore) -> None:
    store.flush()
    engine_collection(store.uri, store.collection)._wait_for_bg(timeout=60)  # HNSW per segment


def test_direct_search_agrees_with_milvus_lite_after_upserts_and_deletes(store):
    vectors = _vectors(300, seed=1)
    for start in (0, 100, 200):  # three flushes: three segments, each with its own HNSW
        store.upsert([_chunk(n) for n in range(start, start + 100)], vectors[start:start + 100])
        store.flush()
    moved = _vectors(40, seed=2)  # newer versions of 40 ids, in a later segment
    store.upsert([_chunk(n) for n in range(0, 80, 2)], moved)
    store.delete([f"id-{n:05d}" for n in range(150, 190)])
    _settle(store)
    queries = np.vstack([_vectors(20, seed=3), moved[:5], vectors[150:155]])
    _assert_direct_agrees(store, queries, {f"id-{n:05d}" for n in range(150, 190)})
    # a shadowed (older) version never answers: the query equal to a moved id's new vector
    # finds it with similarity 1, not its old one
    assert store.search(moved[0], 1) == [("id-00000", pytest.approx(1.0, abs=1e-4))]


def test_unflushed_rows_are_searched_on_the_direct_path_as_milvus_lite_would(store):
    """While an ingest runs, Lite's memtable holds up to 4,096 unflushed rows. The direct path
    searches them itself (before, any unflushed row sent the query to Lite's per-row walk):
    new rows, newer versions of flushed ids, deletes of flushed ids and of unflushed ones."""
    vectors = _vectors(400, seed=4)
    for start in (0, 150):  # two flushed segments
        store.upsert([_chunk(n) for n in range(start, start + 150)], vectors[start:start + 150])
        store.flush()
    _settle(store)
    store.upsert([_chunk(n) for n in range(300, 360)], vectors[300:360])  # new, unflushed
    moved = _vectors(30, seed=5)
    store.upsert([_chunk(n) for n in range(0, 60, 2)], moved)  # newer versions of flushed ids
    store.delete([f"id-{n:05d}" for n in range(100, 130)])  # flushed ids deleted, unflushed
    store.delete([f"id-{n:05d}" for n in range(340, 350)])  # unflushed ids deleted
    coll = engine_collection(store.uri, store.collection)
    assert coll._memtable.size() > 0, "nothing unflushed: the test would prove nothing"
    gone = {f"id-{n:05d}" for n in (*range(100, 130), *range(340, 350))}
    queries = np.vstack([_vectors(15, seed=6), moved[:5], vectors[[0, 2, 4]], vectors[100:105],
                         vectors[300:305], vectors[340:345]])
    _assert_direct_agrees(store, queries, gone)
    assert store.search(vectors[310], 1) == [("id-00310", pytest.approx(1.0, abs=1e-4))]
    assert store.search(moved[1], 1) == [("id-00002", pytest.approx(1.0, abs=1e-4))]
    assert store.search(vectors[2], 1)[0][0] != "id-00002"  # its old version no longer answers


def test_rows_written_before_a_query_are_found_while_flushes_run_beside_it(store):
    """A writer thread upserts and flushes while queries run: a flush moves rows from the
    memtable into a segment, and a query reading the two in between must find each row in
    one of them (or both), never in neither."""
    import threading

    vectors = _vectors(3000, seed=13)
    written: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        for start in range(0, 3000, 50):
            if stop.is_set():
                return
            store.upsert([_chunk(n) for n in range(start, start + 50)], vectors[start:start + 50])
            written.extend(range(start, start + 50))
            if start % 200 == 150:
                store.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    taken, checked = 0, 0
    try:
        while thread.is_alive() or checked == 0:
            if not written:
                continue
            n = written[-1 - (checked % len(written))]
            hits = store.search(vectors[n], 1)
            taken += store._direct.search(vectors[n], 1) is not None
            assert hits and hits[0][0] == f"id-{n:05d}", f"row {n} was not found"
            own_source = Filters(sources=[f"/d/f{n % 3}.txt"])  # the filtered path too
            hits = store.search(vectors[n], 1, filters=own_source)
            assert hits and hits[0][0] == f"id-{n:05d}", f"row {n} was not found by its source"
            checked += 1
    finally:
        stop.set()
        thread.join()
    assert checked >= 20 and taken >= checked // 2, (checked, taken)


def test_a_search_does_not_wait_for_lites_background_merge(store):
    """Lite merges segments in a background thread holding its lock (up to ~1 s for 64k rows);
    searches answer meanwhile from their last reading (a merge changes how rows are stored,
    not which are visible), and find rows written during the merge. After a flush that
    reading is stale: the search then waits for the lock."""
    import threading
    import time

    vectors = _vectors(400, seed=14)
    for start in (0, 150):
        store.upsert([_chunk(n) for n in range(start, start + 150)], vectors[start:start + 150])
        store.flush()
    _settle(store)
    store.upsert([_chunk(n) for n in range(300, 340)], vectors[300:340])  # unflushed
    queries = _vectors(10, seed=15)
    before = [store.search(q, 10) for q in queries]
    coll = engine_collection(store.uri, store.collection)
    held, release = threading.Event(), threading.Event()

    def merge_stand_in() -> None:  # holds Lite's lock as its background merge does
        with coll._maintenance_lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=merge_stand_in)
    holder.start()
    # an ingest's upsert meanwhile waits for the lock inside Lite (it reads each id's old row)
    writer = threading.Thread(target=store.upsert,
                              args=([_chunk(n) for n in range(340, 360)], vectors[340:360]))
    try:
        held.wait(10)
        writer.start()
        started = time.perf_counter()
        assert [store.search(q, 10) for q in queries] == before
        assert store.search(vectors[320], 1) == [("id-00320", pytest.approx(1.0, abs=1e-4))]
        assert time.perf_counter() - started < 5  # did not wait for the 30 s hold
    finally:
        release.set()
        holder.join()
        writer.join()
    assert store.search(vectors[350], 1) == [("id-00350", pytest.approx(1.0, abs=1e-4))]
    store.flush()  # a new WAL: the next search reads Lite's segments again
    assert store.search(vectors[355], 1) == [("id-00355", pytest.approx(1.0, abs=1e-4))]
    segments, _ = coll._read_snapshot()
    assert store._direct._last[2] == segments


def test_rows_of_a_flush_in_flight_combine_with_newer_ones_by_lites_rules():
    """While a flush runs, searches read the memtable it froze and the one after it: for each
    id the newest insert wins, and a newer delete hides an older row."""
    from retrievers.lite_memtable import UnflushedRows

    v = _vectors(5, seed=16)
    older = UnflushedRows(["a", "b", "c"], np.array([1, 2, 3], dtype=np.uint64), v[:3],
                          {"z": 4})
    newer = UnflushedRows(["b", "d"], np.array([7, 8], dtype=np.uint64), v[3:5], {"c": 6})
    both = UnflushedRows.combined(older, newer)
    assert both.pks == ["a", "b", "d"]
    assert both.seqs.tolist() == [1, 7, 8]
    assert np.array_equal(both.vectors, np.vstack([v[0], v[3], v[4]]))
    assert both.deletes == {"z": 4, "c": 6}
    assert both.hides("c", 3) and not both.hides("a", 1)


def test_a_filter_reads_the_scalar_columns_of_the_rows_a_flush_in_flight_keeps():
    import pyarrow as pa
    import pyarrow.compute as pc

    from retrievers.lite_memtable import UnflushedRows

    v = _vectors(5, seed=17)
    frozen = (pa.RecordBatch.from_pydict({"source": ["x", "q"]}),
              pa.RecordBatch.from_pydict({"source": ["y", "x"]}))
    older = UnflushedRows(["a", "b", "c"], np.array([1, 2, 3], dtype=np.uint64), v[:3], {},
                          [(frozen, np.array([3, 2, 0]))])  # a: "x" (batch 2), b: "y", c: "x"
    newer = UnflushedRows(["b", "d"], np.array([7, 8], dtype=np.uint64), v[3:5], {"c": 6},
                          [((pa.RecordBatch.from_pydict({"source": ["x", "z"]}),),
                            np.array([0, 1]))])
    both = UnflushedRows.combined(older, newer)
    passes = both.filter_mask(lambda table: pc.equal(table["source"], "x"))
    assert dict(zip(both.pks, passes.tolist())) == {"a": True, "b": True, "d": False}


def _moved_chunk(n: int) -> Chunk:
    """A newer version of chunk n, under another source, type, page and date."""
    return Chunk(chunk_id=f"id-{n:05d}", text=f"chunk {n} moved", source="/e/moved.pdf",
                 source_id="s9", content_hash="h2", position=n, page=n % 7, file_type="pdf",
                 ingested_at=5000.0 + n)


def _exact_filtered(rows: dict[str, tuple[Chunk, np.ndarray]], query: np.ndarray, k: int,
                    filters: Filters) -> list[tuple[str, float]]:
    """The exact top-k by the filters' plain-Python reference semantics."""
    q = query / np.linalg.norm(query)
    scored = [(cid, float(v @ q / np.linalg.norm(v))) for cid, (c, v) in rows.items()
              if filters.matches(c.source, c.file_type, c.page, c.ingested_at)]
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]


FILTERS = [Filters(sources=["/d/f1.txt"]), Filters(sources=["/d"]), Filters(sources=["/e"]),
           Filters(file_types=["pdf"]), Filters(page_min=2, page_max=4),
           Filters(since=1100.0, until=1250.0), Filters(sources=["/d/f2.txt"], since=1200.0)]


def test_filtered_searches_are_answered_directly_with_the_exact_top_k_of_rows_that_pass(store):
    """A source, type, page or date filter: answered on the direct path (Lite's own filtered
    search walks every row in Python, and its HNSW walk restricted to a few rows missed most of
    the top 50 of a one-file filter at 100k chunks), exactly, among the live rows that pass:
    flushed and unflushed, newer versions under another source, deletes of both."""
    vectors = _vectors(400, seed=30)
    rows: dict[str, tuple[Chunk, np.ndarray]] = {}
    for start in (0, 150):  # two flushed segments
        chunks = [_chunk(n) for n in range(start, start + 150)]
        store.upsert(chunks, vectors[start:start + 150])
        store.flush()
        rows.update({c.chunk_id: (c, v) for c, v in zip(chunks, vectors[start:start + 150])})
    _settle(store)
    fresh = [_chunk(n) for n in range(300, 360)]  # new, unflushed
    store.upsert(fresh, vectors[300:360])
    moved_vectors = _vectors(30, seed=31)
    moved = [_moved_chunk(n) for n in range(0, 60, 2)]  # flushed ids, now another source
    store.upsert(moved, moved_vectors)
    for c, v in (*zip(fresh, vectors[300:360]), *zip(moved, moved_vectors)):
        rows[c.chunk_id] = (c, v)
    gone = [f"id-{n:05d}" for n in (*range(100, 130), *range(340, 350))]
    store.delete(gone)
    for cid in gone:
        del rows[cid]
    assert engine_collection(store.uri, store.collection)._memtable.size() > 0
    queries = np.vstack([_vectors(8, seed=32), moved_vectors[:3], vectors[[0, 2, 101, 305]]])
    for filters in FILTERS:
        for query in queries:
            direct = store._direct.search(query, 10, expr=filters.milvus_expr())
            assert direct is not None, f"the direct path was not taken for {filters}"
            expected = _exact_filtered(rows, query, 10, filters)
            assert [c for c, _ in direct] == [c for c, _ in expected], filters
            assert [s for _, s in direct] == pytest.approx([s for _, s in expected], abs=1e-4)
            assert store.search(query, 10, filters=filters) == direct
    # a moved id answers under its new source only, a deleted one under none
    assert store.search(moved_vectors[0], 1, filters=Filters(sources=["/e"]))[0][0] == "id-00000"
    assert "id-00000" not in {c for c, _ in store.search(vectors[0], 10, filters=FILTERS[1])}


def test_a_filter_passing_many_rows_walks_the_hnsw_graph_restricted_to_them(tmp_path):
    """Where a filter passes a large share of a segment, the segment's HNSW graph is walked
    restricted to the rows that pass (with a wider ef): every hit passes, and the top 10
    is (nearly) the exact one."""
    dim, n = 64, 4000
    store = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", dim)
    try:
        v = np.random.default_rng(33).normal(size=(n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        chunks = [_chunk(i) for i in range(n)]
        store.upsert(chunks, v)
        _settle(store)
        graph = LiteDirectSearch(store.uri, store.collection, exact_filtered=(0, 0.0))
        rows = {c.chunk_id: (c, vec) for c, vec in zip(chunks, v)}
        queries = np.random.default_rng(34).normal(size=(20, dim)).astype(np.float32)
        found = []
        for filters in (Filters(sources=["/d/f0.txt", "/d/f1.txt"]), Filters(since=1000.0 + n / 2)):
            for query in queries:
                hits = graph.search(query, 10, expr=filters.milvus_expr())
                assert hits is not None, "the direct path was not taken"
                assert all(filters.matches(rows[c][0].source, "txt", None, rows[c][0].ingested_at)
                           for c, _ in hits)
                exact = {c for c, _ in _exact_filtered(rows, query, 10, filters)}
                found.append(len(exact & {c for c, _ in hits}) / 10)
        assert np.mean(found) >= 0.98, np.mean(found)  # 0.99 here; 0.95 without the wider ef
    finally:
        store.close()


def test_deleted_rows_near_the_query_are_skipped_or_the_path_steps_aside(store):
    """Liveness is checked best first, only until k live rows are found. A few deleted rows at
    the top are skipped; when every candidate a segment gave is deleted before k are found, its
    live rows may lie deeper than it was asked, so the direct path must step aside (None) and
    the store answers through Milvus."""
    rng = np.random.default_rng(21)
    query = _vectors(1, seed=20)[0]
    near = query + rng.normal(scale=0.05, size=(300, DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    far = _vectors(300, seed=22)
    store.upsert([_chunk(n) for n in range(300)], far)  # segment 1: far from the query
    store.flush()
    store.upsert([_chunk(n) for n in range(300, 600)], near)  # segment 2: all near it
    store.flush()
    order = np.argsort(-(near @ query))
    store.delete([f"id-{300 + n:05d}" for n in order[:5]])  # the 5 nearest
    _settle(store)
    direct = store._direct.search(query, 10)
    assert direct is not None, "the direct path was not taken"
    assert [c for c, _ in direct] == [c for c, _ in _public(store, query, 10)]
    assert [c for c, _ in direct] == [f"id-{300 + n:05d}" for n in order[5:15]]
    store.delete([f"id-{300 + n:05d}" for n in order[5:250]])  # more than segment 2 is asked for
    _settle(store)
    assert store._direct.search(query, 10) is None
    hits = store.search(query, 10)
    assert [c for c, _ in hits] == [c for c, _ in _public(store, query, 10)]
    assert {c for c, _ in hits} <= {f"id-{300 + n:05d}" for n in order[250:]}  # live, near


def test_deep_top_k_is_the_same_on_both_paths(tmp_path):
    """At k = 50 the direct path takes 108 candidates a segment, which raises HNSW's ef; the
    public path must search with the same ef, else deep ranks differ between a filtered and
    an unfiltered question (they did on Paul Graham: 19 of 55 top-50 lists)."""
    dim, rows = 64, 4000
    store = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", dim)
    try:
        v = np.random.default_rng(7).normal(size=(rows, dim)).astype(np.float32)
        store.upsert([_chunk(n) for n in range(rows)], v / np.linalg.norm(v, axis=1, keepdims=True))
        _settle(store)
        queries = np.random.default_rng(8).normal(size=(20, dim)).astype(np.float32)
        for query in queries:
            assert store._direct.search(query, 50) is not None, "the direct path was not taken"
            direct = store.search(query, 50)
            assert [cid for cid, _ in direct] == [cid for cid, _ in _public(store, query, 50)]
    finally:
        store.close()


def test_an_8_bit_index_answers_with_exact_cosines(tmp_path):
    """HNSW_SQ (the embedded default) walks its graph by 8-bit distances; the direct path
    re-scores the candidates from the float vectors, so fusion and the decline thresholds read
    exact cosines and the order among candidates is the float order."""
    dim, rows = 64, 3000
    store = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", dim, index="HNSW_SQ")
    try:
        v = np.random.default_rng(9).normal(size=(rows, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for start in range(0, rows, 1000):  # three segments
            store.upsert([_chunk(n) for n in range(start, start + 1000)], v[start:start + 1000])
            store.flush()
        _settle(store)
        segments, _ = engine_collection(store.uri, store.collection)._read_snapshot()
        assert {type(s.indexes["vector"]).index_type for s in segments} == {"HNSW_SQ"}
        quantised_off = 0.0
        for query in np.random.default_rng(10).normal(size=(20, dim)).astype(np.float32):
            hits = store._direct.search(query, 10)
            assert hits is not None, "the direct path was not taken"
            exact = v @ (query / np.linalg.norm(query))
            assert [s for _, s in hits] == pytest.approx([exact[int(c[3:])] for c, _ in hits],
                                                         abs=1e-5)
            assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
            truth = {f"id-{n:05d}" for n in np.argsort(-exact)[:10]}
            assert len(truth & {c for c, _ in hits}) >= 9
            public = _public(store, query, 10)
            quantised_off = max(quantised_off, max(abs(s - exact[int(c[3:])]) for c, s in public))
        assert quantised_off > 1e-4  # Milvus's own answer is quantised: the re-scoring matters
    finally:
        store.close()


def test_a_segment_whose_index_is_still_building_is_searched_exactly(tmp_path):
    """Lite attaches each flushed segment's index from a background thread. Before this path
    searched such a segment itself it handed the query to Lite, which could attach the 8-bit
    index in between and answer with quantised similarities (a CI failure at stop 32: 0.3242
    where the cosine was 0.3262). Here the build is held back behind a gate, so the segment is
    certainly unindexed while it is searched."""
    import threading

    dim = 64
    store = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", dim, index="HNSW_SQ")
    coll = engine_collection(store.uri, store.collection)
    gate = threading.Event()
    try:
        v = np.random.default_rng(11).normal(size=(600, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.upsert([_chunk(n) for n in range(300)], v[:300])
        _settle(store)  # one indexed segment
        coll._bg_executor.submit(gate.wait, 60)  # the next index build queues behind this
        store.upsert([_chunk(n) for n in range(300, 600)], v[300:])
        store.upsert([_chunk(n) for n in range(0, 20)], v[580:600])  # upserts shadow old rows
        store.delete([f"id-{n:05d}" for n in range(300, 320)])
        store.flush()
        segments, _ = coll._read_snapshot()
        assert any("vector" not in s.indexes for s in segments if s.num_rows), "no gap to test"
        expected = {n: v[n] for n in range(20, 600)}
        expected.update({n: v[580 + n] for n in range(20)})
        for n in range(300, 320):
            del expected[n]
        ids = np.array(sorted(expected))
        matrix = np.vstack([expected[n] for n in ids])
        for query in np.random.default_rng(12).normal(size=(15, dim)).astype(np.float32):
            hits = store._direct.search(query, 8)
            assert hits is not None, "the direct path stepped aside"
            exact = matrix @ (query / np.linalg.norm(query))
            order = np.argsort(-exact)
            truth = [f"id-{n:05d}" for n in ids[order[:8]]]
            assert [c for c, _ in hits][:3] == truth[:3]
            assert len(set(truth) & {c for c, _ in hits}) >= 7
            by_id = dict(zip((f"id-{n:05d}" for n in ids), exact))
            assert [s for _, s in hits] == pytest.approx([by_id[c] for c, _ in hits], abs=1e-5)
    finally:
        gate.set()
        store.close()


def test_an_existing_collection_keeps_the_index_it_was_built_with(tmp_path):
    uri = str(tmp_path / "milvus.db")
    MilvusDenseStore(uri, "chunks", DIM, index="HNSW").close()
    reopened = MilvusDenseStore(uri, "chunks", DIM, index="HNSW_SQ")
    try:
        assert reopened.index_type == "HNSW"
    finally:
        reopened.close()


def test_a_store_that_let_its_index_go_while_writing_answers_exactly_and_reopens(tmp_path):
    """A large file is written with the collection released (`defer_vector_index`): no segment
    holds an HNSW index in memory meanwhile; at the end `write_index_files` leaves an index
    file per segment (still holding none), the first search loads them and answers with exact
    cosines, and a reopened store answers the same without building anything."""
    dim, rows = 32, 2400
    uri = str(tmp_path / "milvus.db")
    store = MilvusDenseStore(uri, "chunks", dim, index="HNSW_SQ")
    v = np.random.default_rng(3).normal(size=(rows, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    queries = np.random.default_rng(4).normal(size=(10, dim)).astype(np.float32)
    try:
        assert store.defer_vector_index()
        for start in range(0, rows, 800):  # three flushed segments
            store.upsert([_chunk(n) for n in range(start, start + 800)], v[start:start + 800])
            store.flush()
        coll = engine_collection(uri, "chunks")
        coll._wait_for_bg(timeout=60)
        segments, _ = coll._read_snapshot()
        assert coll.load_state == "released" and len(segments) == 3
        assert not any(s.indexes for s in segments)  # nothing held while writing
        assert not list(tmp_path.rglob("*.idx"))  # nor built
        store.write_index_files()
        assert coll.load_state == "released"
        assert not any(s.indexes for s in coll._read_snapshot()[0])
        index_files = sorted(p.name for p in tmp_path.rglob("*.idx"))
        assert len(index_files) == 3 and all("hnsw_sq" in name for name in index_files)
        first = [store.search(q, 5) for q in queries]  # loads the collection
        assert coll.load_state == "loaded"
        for q, hits in zip(queries, first):
            exact = v @ (q / np.linalg.norm(q))
            assert [c for c, _ in hits] == [f"id-{n:05d}" for n in np.argsort(-exact)[:5]]
            assert [s for _, s in hits] == pytest.approx([exact[int(c[3:])] for c, _ in hits],
                                                         abs=1e-5)
    finally:
        store.close()
    reopened = MilvusDenseStore(uri, "chunks", dim, index="HNSW_SQ")
    try:
        assert sorted(p.name for p in tmp_path.rglob("*.idx")) == index_files
        assert [reopened.search(q, 5) for q in queries] == first
        assert reopened.count() == rows
    finally:
        reopened.close()


def test_segment_walks_answer_in_order_shared_with_the_helper_and_leave_openmp_as_found():
    """A large index is several Lite segments; the helper thread walks from the first while
    the caller walks from the last (issue 17: the dense side grew with the number of
    segments). The last walk waits until the first has started, the first until the caller
    has walked the second."""
    import os
    import threading

    import faiss

    from retrievers.lite_search import walk_segments

    threads: dict[int, str] = {}
    first_started, second_walked = threading.Event(), threading.Event()

    def walk(n: int):
        def run():
            threads[n] = threading.current_thread().name
            if n == 0:
                first_started.set()
                second_walked.wait(5)
            if n == 1:
                second_walked.set()
            if n == 4:
                first_started.wait(5)
            return np.array([n]), np.array([float(n)])
        return run

    before = faiss.omp_get_max_threads()
    found = walk_segments([walk(n) for n in range(5)])
    assert [int(ids[0]) for ids, _ in found] == [0, 1, 2, 3, 4]
    assert faiss.omp_get_max_threads() == before
    if len(os.sched_getaffinity(0)) > 1:
        assert threads[0].startswith("rag-query-helper")
        assert {threads[n] for n in (1, 2, 3, 4)} == {threading.current_thread().name}

def test_segment_walks_still_run_in_a_process_forked_after_some_ran():
    """A server that forks workers after answering (a pre-fork web server) must not hand the
    child's walks to a helper thread that only the parent has."""
    import os
    import time

    from retrievers.lite_search import walk_segments

    def walk(n: int):
        return lambda: (np.array([n]), np.array([float(n)]))

    walk_segments([walk(n) for n in range(4)])  # the parent's helper exists now
    child = os.fork()
    if child == 0:
        found = walk_segments([walk(n) for n in range(4)])
        os._exit(0 if [int(ids[0]) for ids, _ in found] == [0, 1, 2, 3] else 1)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the forked child's walks never finished")
    assert os.waitstatus_to_exitcode(done[1]) == 0
