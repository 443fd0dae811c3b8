"""BM25 on real text equals rank-bm25, survives a .npz snapshot round trip, and catches up
with the catalog incrementally when it reopens."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from retrievers.bm25 import BM25Index, Facets
from retrievers.bm25_store import SNAPSHOT_FILE, open_bm25, save_bm25
from retrievers.catalog import TOKENIZER_KEY, Catalog
from retrievers.records import Chunk
from retrievers.text import TOKENIZER_VERSION, tokenize

REPO = Path(__file__).resolve().parents[2]
ESSAYS = REPO.parent / "shared" / "data" / "qa" / "paul_graham"


def windows(text: str, size: int = 120) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def shipped_corpus() -> list[str]:
    """Every text the project ships: the sample documents and the speech transcripts."""
    paths = sorted((REPO / "rag" / "sample").glob("*.md")) + sorted((REPO / "rag" / "sample").glob("*.txt"))
    paths += sorted((REPO / "tests" / "data").glob("*.txt")) + [REPO / "README.md"]
    docs = []
    for path in paths:
        docs += windows(path.read_text(encoding="utf-8"), 30)
    return docs


def assert_top_k_equals_okapi(docs: list[str], queries: list[str], k: int = 10) -> None:
    ids = [f"d{n:05d}" for n in range(len(docs))]
    tokens = [tokenize(d) for d in docs]
    okapi = BM25Okapi(tokens)
    index = BM25Index()
    for chunk_id, toks in zip(ids, tokens):
        index.add_tokens(chunk_id, toks)
    checked = 0
    for query in queries:
        q = tokenize(query)
        expected = okapi.get_scores(q)
        got = index.top_k(q, k)
        present = {i for i, t in zip(ids, tokens) if set(q) & set(t)}
        want = sorted(((i, s) for i, s in zip(ids, expected) if i in present),
                      key=lambda x: (-x[1], x[0]))[:k]
        assert [i for i, _ in got] == [i for i, _ in want], query
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-9)
        checked += bool(got)
    assert checked >= len(queries) // 2


def test_top_k_equals_bm25okapi_on_the_shipped_corpus():
    docs = shipped_corpus()
    assert len(docs) > 40
    assert_top_k_equals_okapi(docs, [
        "green tea water temperature", "how long to steep oolong", "lamp battery warranty",
        "ask not what your country can do for you", "install the tests", "stuff it into you",
        "lightning storm harbor", "freedom liberty", "zebra quantum",
    ])


@pytest.mark.skipif(not ESSAYS.is_dir(), reason="shared data (../shared/data) not present")
def test_top_k_equals_bm25okapi_on_paul_graham_essays():
    docs = []
    for path in sorted((ESSAYS / "essays").glob("*.txt"))[:80]:
        docs += windows(path.read_text(encoding="utf-8", errors="replace"))
    queries = [json.loads(line)["question"]
               for line in (ESSAYS / "normalized.jsonl").read_text().splitlines()[:25]]
    assert len(docs) > 1000
    assert_top_k_equals_okapi(docs, queries)


def _index_with_facets(docs: list[str]) -> BM25Index:
    index = BM25Index(k1=1.2, b=0.7, epsilon=0.3)
    for n, text in enumerate(docs):
        index.add_tokens(f"d{n:05d}", tokenize(text),
                         Facets(f"/src/{n % 3}.txt", ["txt", "pdf"][n % 2], n % 5 or None, float(n)))
    return index


def test_snapshot_round_trip_keeps_scores_facets_and_stays_incremental(tmp_path):
    docs = shipped_corpus()
    index = _index_with_facets(docs)
    index.remove([f"d{n:05d}" for n in range(0, len(docs), 4)])  # dead slots get compacted
    np.savez(tmp_path / "s.npz", **index.to_arrays())
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        loaded = BM25Index.from_arrays({k: data[k] for k in data.files}, k1=1.2, b=0.7, epsilon=0.3)
    assert loaded.ids() == index.ids()
    for query in ["green tea", "lamp warranty battery", "country"]:
        assert loaded.scores(tokenize(query)) == pytest.approx(index.scores(tokenize(query)), rel=1e-12)
    some = sorted(index.ids())[5]
    assert loaded.facets_of(some) == index.facets_of(some)
    from retrievers.filters import Filters

    f = Filters(sources=("/src/1.txt",), page_min=2)
    assert [i for i, _ in loaded.top_k(tokenize("tea"), 5, filters=f)] == \
        [i for i, _ in index.top_k(tokenize("tea"), 5, filters=f)]
    # still incremental after loading
    loaded.add_tokens("new", tokenize("green tea green tea"))
    loaded.remove([some])
    assert "new" in loaded and some not in loaded
    assert loaded.top_k(tokenize("green tea"), 1)[0][0] == "new"


def test_compaction_after_many_removals_keeps_okapi_scores():
    docs = [f"tea {'green' if n % 3 else 'black'} water {n % 17} leaf{n % 29}" for n in range(3000)]
    index = BM25Index()
    for n, d in enumerate(docs):
        index.add_tokens(f"d{n:05d}", tokenize(d))
    gone = {f"d{n:05d}" for n in range(0, 3000, 2)}
    index.remove(gone)
    assert len(index._ids) == 1500  # compacted: dead slots squeezed out
    ids = [f"d{n:05d}" for n in range(3000) if f"d{n:05d}" not in gone]
    okapi = BM25Okapi([tokenize(docs[int(i[1:])]) for i in ids])
    q = tokenize("green water leaf7")
    got = index.scores(q)
    np.testing.assert_allclose([got.get(i, 0.0) for i in ids], okapi.get_scores(q), rtol=1e-9)


def _chunk(source: str, n: int, text: str) -> Chunk:
    return Chunk(chunk_id=f"{source}-{n:03d}", text=text, source=f"/docs/{source}.txt",
                 source_id=source, content_hash="h", position=n, file_type="txt", ingested_at=7.0)


def _publish(catalog: Catalog, source: str, texts: list[str]) -> None:
    chunks = [_chunk(source, n, t) for n, t in enumerate(texts)]
    catalog.stage(chunks, [tokenize(t) for t in texts])
    catalog.publish(source, f"/docs/{source}.txt", "h", "txt", [c.chunk_id for c in chunks])


def test_reopen_uses_the_snapshot_and_catches_up_with_the_catalog(tmp_path, caplog):
    docs = shipped_corpus()
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _publish(catalog, "a", docs[:10])
    _publish(catalog, "b", docs[10:20])
    first = open_bm25(catalog, tmp_path)
    assert save_bm25(first, tmp_path) and not save_bm25(first, tmp_path)  # unchanged: no rewrite
    # while "closed": one source goes, another comes
    catalog.unpublish("a")
    _publish(catalog, "c", docs[20:30])
    with caplog.at_level(logging.INFO, logger="retrievers.bm25_store"):
        reopened = open_bm25(catalog, tmp_path)
    assert "10 chunks added, 10 removed since the snapshot" in caplog.text
    rebuilt = BM25Index()
    for cid, terms, _ in catalog.bm25_rows():
        rebuilt.add(cid, terms)
    assert reopened.ids() == rebuilt.ids() == set(catalog.ids_in_state("live"))
    q = tokenize("tea water lamp country")
    assert reopened.scores(q) == pytest.approx(rebuilt.scores(q), rel=1e-12)
    assert reopened.facets_of("c-000") == Facets("/docs/c.txt", "txt", None, 7.0)
    catalog.close()


def test_unreadable_snapshot_is_rebuilt_from_the_catalog(tmp_path, caplog):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _publish(catalog, "a", shipped_corpus()[:10])
    (tmp_path / SNAPSHOT_FILE).write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        index = open_bm25(catalog, tmp_path)
    assert len(index) == 10 and "unreadable BM25 snapshot" in caplog.text
    catalog.close()


ACRONYM_TEXTS = ["Most VCs meet founders twice before they invest.",
                 "Training LLMs on GPUs takes weeks.", "Green tea steeps for two minutes."]


def _as_an_older_tokenizer_stored_it(catalog: Catalog) -> None:
    """The catalog as the tokenizer before acronym plurals wrote it: lowercase first, so "VCs"
    stayed "vcs"; and the version it recorded (none)."""
    for chunk_id, text in catalog.db.execute("SELECT chunk_id, text FROM chunks").fetchall():
        catalog.db.execute("UPDATE chunks SET terms = ? WHERE chunk_id = ?",
                           (json.dumps(dict(Counter(tokenize(text.lower())))), chunk_id))
    catalog.db.execute("DELETE FROM meta WHERE key = ?", (TOKENIZER_KEY,))


def test_a_reader_derives_terms_another_tokenizer_stored_from_the_texts(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _publish(catalog, "a", ACRONYM_TEXTS)
    _as_an_older_tokenizer_stored_it(catalog)
    assert not catalog.tokenizer_current(TOKENIZER_VERSION)
    index = open_bm25(catalog, tmp_path)  # no writer lock here: nothing is rewritten
    assert [i for i, _ in index.top_k(tokenize("Which VC?"), 3)] == ["a-000"]
    assert [i for i, _ in index.top_k(tokenize("an LLM on one GPU"), 3)] == ["a-001"]
    assert json.loads(catalog.db.execute("SELECT terms FROM chunks WHERE chunk_id = 'a-000'")
                      .fetchone()[0]).get("vcs") == 1
    catalog.close()


def test_the_writer_derives_a_stale_catalogs_terms_again_once(tmp_path, embedder, caplog):
    from retrievers.index import ChunkIndex
    from retrievers.milvus_store import MilvusDenseStore

    def opened() -> ChunkIndex:
        dense = MilvusDenseStore(str(tmp_path / "milvus.db"), "chunks", embedder.dimension)
        return ChunkIndex(tmp_path, dense)

    index = opened()
    chunks = [_chunk("a", n, t) for n, t in enumerate(ACRONYM_TEXTS)]
    index.write_source(chunks, embedder.encode(ACRONYM_TEXTS), source_id="a", path="/docs/a.txt",
                       content_hash="h", file_type="txt")
    index.close()
    with caplog.at_level(logging.INFO, logger="retrievers.index"):
        opened().close()  # a new index records its tokenizer: reopened, nothing to derive
    assert "deriving" not in caplog.text
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _as_an_older_tokenizer_stored_it(catalog)
    catalog.close()
    (tmp_path / SNAPSHOT_FILE).unlink()  # an older snapshot: rebuilt from the catalog either way
    with caplog.at_level(logging.INFO, logger="retrievers.index"):
        index = opened()
    assert "deriving the terms of 3 chunks again" in caplog.text
    assert "2 chunks' terms changed" in caplog.text  # the tea sentence has no acronym
    assert index.catalog.get_meta(TOKENIZER_KEY) == TOKENIZER_VERSION
    assert [i for i, _ in index.bm25.top_k(tokenize("Which VC?"), 3)] == [chunks[0].chunk_id]
    assert dict(index.catalog.terms_of([chunks[1].chunk_id])[chunks[1].chunk_id]) == dict(
        Counter(tokenize(ACRONYM_TEXTS[1])))
    index.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="retrievers.index"):
        index = opened()  # once: the catalog records the version now
    assert "deriving" not in caplog.text
    index.close()
