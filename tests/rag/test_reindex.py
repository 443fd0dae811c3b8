"""`rag reindex`: switch an index to another embedding model, roll back, refuse mismatches.

The old model is the packaged MiniLM (384-d); the new one is a real different model, a
model2vec static model distilled locally from it (256-d, cached per machine). A query that
embedded with one model and searched the other's collection would fail on the dimension, so
every query below also shows that model and collection switched together.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from rag.api import RAG
from rag.errors import ConfigError
from retrievers.collections import CollectionFamily

from tests.conftest import REPO, SAMPLE, SAMPLE_TEXT

QUERY = "how long should green tea steep"


@pytest.fixture(scope="module")
def built_index(tmp_path_factory, embedder):
    """A MiniLM index of the three sample text files (about 10 chunks). Tests get copies: the
    Milvus Lite directory stays locked to this process once opened here, a copy does not, so
    the CLI can open one in a child process."""
    root = tmp_path_factory.mktemp("built")
    folder = root / "docs"
    folder.mkdir()
    for name in SAMPLE_TEXT:
        shutil.copy(SAMPLE / name, folder / name)
    rag = RAG.open(root / "index", embedder=embedder)
    assert all(r.status == "added" for r in rag.ingest([folder]))
    rag.close()
    return root


@pytest.fixture
def docs(tmp_path, built_index):
    return shutil.copytree(built_index / "docs", tmp_path / "docs")


@pytest.fixture
def minilm_index(tmp_path, built_index, docs):
    """This test's own copy of the built index (its sources are `docs`, same paths' content)."""
    return shutil.copytree(built_index / "index", tmp_path / "index")


def ids(hits):
    return [h.chunk.chunk_id for h in hits]


def test_switch_serves_the_new_model_and_records_it(minilm_index, docs, embedder, static_model):
    rag = RAG.open(minilm_index, embedder=embedder)
    bm25_before = ids(rag.retrieve(QUERY, mode="bm25"))
    old = rag.stats()["index_settings"]
    report = rag.reindex(str(static_model))
    assert report.switched, report.to_json()
    assert (report.collection, report.previous) == ("rag_chunks_v2", "rag_chunks")
    assert report.embedded == report.chunks == rag.stats()["chunks"] > 0
    assert report.smoke.passed and report.smoke.probes == report.chunks
    # Queries in this process now embed with the static model and search its collection.
    dense = rag.retrieve(QUERY, mode="dense")
    assert dense and "tea" in dense[0].chunk.source
    assert rag.index.dense.collection == "rag_chunks_v2" and rag.index.dense.dim == 256
    assert ids(rag.retrieve(QUERY, mode="bm25")) == bm25_before  # BM25 is untouched
    stats = rag.stats()
    new = stats["index_settings"]
    assert new["embedding_fingerprint"] == report.model["embedding_fingerprint"] != old["embedding_fingerprint"]
    assert (new["dimension"], new["collection"]) == (256, "rag_chunks_v2")
    assert stats["previous_collection"]["collection"] == "rag_chunks"
    # Ingest after the switch embeds with the new model, into the new collection.
    extra = docs / "kettle.md"
    extra.write_text("# Kettle descaling\n\nDescale the kettle monthly with citric acid and rinse twice.\n")
    assert [r.status for r in rag.ingest([extra])] == ["added"]
    assert "kettle" in rag.retrieve("descale the kettle with citric acid", mode="dense")[0].chunk.source
    assert rag.index.check().ok
    assert rag.reindex(str(static_model)).note.startswith("the index already serves")
    rag.close()

    # Opened again without choosing a model, the index loads its own (the static one).
    again = RAG.open(minilm_index)
    assert again.embedder.fingerprint == report.model["embedding_fingerprint"]
    assert again.retrieve(QUERY, mode="dense")
    # Every collection records its model; the alias names the serving one.
    family = CollectionFamily(again.index.dense.client, "rag_chunks")
    assert family.serving() == "rag_chunks_v2"
    assert family.record("rag_chunks_v2")["embedding_fingerprint"] == report.model["embedding_fingerprint"]
    assert family.record("rag_chunks")["dimension"] == "384"
    again.close()


def test_rollback_returns_to_the_old_collection_with_what_was_ingested_since(
        minilm_index, docs, embedder, static_model):
    rag = RAG.open(minilm_index, embedder=embedder)
    old_fingerprint = embedder.fingerprint
    assert rag.reindex(str(static_model)).switched
    late = docs / "late.md"
    late.write_text("# Lighthouse keeper\n\nThe keeper winds the clockwork lens at dusk every day.\n")
    rag.ingest([late])
    back = rag.reindex(rollback=True)
    assert back.switched and (back.collection, back.previous) == ("rag_chunks", "rag_chunks_v2")
    assert back.already == back.chunks - 1 and back.embedded == 1  # only the late file
    stats = rag.stats()
    assert stats["index_settings"]["embedding_fingerprint"] == old_fingerprint
    assert stats["index_settings"]["dimension"] == 384
    assert rag.index.dense.dim == 384
    assert "late" in rag.retrieve("keeper winds the clockwork lens", mode="dense")[0].chunk.source
    # Rolling back again rolls forward, reusing the static collection (nothing to embed).
    forward = rag.reindex(rollback=True)
    assert forward.switched and forward.collection == "rag_chunks_v2" and forward.embedded == 0
    rag.close()


def test_opening_with_another_configured_model_is_refused_naming_the_fix(
        minilm_index, embedder, static_model):
    with pytest.raises(ConfigError) as refused:
        RAG.open(minilm_index, embedding_model=str(static_model)).index
    message = str(refused.value)
    assert "\n" not in message
    assert f"rag reindex --embedding-model {static_model}" in message
    assert "--set embedding_model=packaged" in message

    rag = RAG.open(minilm_index, embedder=embedder)
    assert rag.reindex(str(static_model)).switched
    rag.close()
    # Now the index serves the static model: asking for MiniLM by name, or passing it, is refused.
    for explicit in ({"embedding_model": "packaged"}, {"embedder": embedder}):
        with pytest.raises(ConfigError) as refused:
            RAG.open(minilm_index, **explicit).index
        assert "rag reindex --embedding-model packaged" in str(refused.value)
        assert f"--set embedding_model={static_model}" in str(refused.value)


def test_a_model_that_fails_the_smoke_check_is_not_switched_to(
        minilm_index, embedder, useless_model):
    rag = RAG.open(minilm_index, embedder=embedder)
    before = rag.stats()["index_settings"]
    report = rag.reindex(str(useless_model))
    assert not report.switched and not report.smoke.passed, report.to_json()
    assert report.serving_smoke.passed  # the model it keeps finds the same probes
    assert rag.stats()["index_settings"] == before
    assert rag.index.dense.collection == "rag_chunks" and rag.retrieve(QUERY, mode="dense")
    rag.close()


def test_an_interrupted_run_resumes_where_it_stopped(minilm_index, embedder, static_model):
    rag = RAG.open(minilm_index, embedder=embedder, reindex_batch_chunks=2)
    total = rag.stats()["chunks"]

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rag.reindex(str(static_model), progress=stop_after_two_batches)
    assert rag.index.dense.collection == "rag_chunks" and rag.retrieve(QUERY, mode="dense")
    assert rag.stats()["unfinished_reindex"]["collection"] == "rag_chunks_v2"
    report = rag.reindex(str(static_model))
    assert report.switched and report.note == "resuming an interrupted re-index"
    assert report.already == 4 and report.embedded == total - 4
    assert rag.stats()["unfinished_reindex"] is None
    rag.close()


def test_a_switch_killed_between_alias_and_catalog_is_completed_on_open(
        minilm_index, embedder, static_model):
    """The alias call is the switch: if the catalog write after it never happened, the next
    open takes the alias's word and records the collection's model."""
    rag = RAG.open(minilm_index, embedder=embedder)
    report = rag.reindex(str(static_model))
    catalog = rag.index.catalog
    switched = catalog.get_meta("index_settings")
    # Put the catalog back as it was before the switch (the alias stays on rag_chunks_v2).
    catalog.set_meta("index_settings", {**switched, "collection": "rag_chunks",
                                        "embedding_fingerprint": embedder.fingerprint,
                                        "dimension": 384, "embedding_ref": "packaged",
                                        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"})
    catalog.set_meta("reindex", {"building": None, "previous": None})
    rag.close()
    again = RAG.open(minilm_index)
    assert again.stats()["index_settings"]["collection"] == "rag_chunks_v2"
    assert again.stats()["index_settings"]["embedding_fingerprint"] == report.model["embedding_fingerprint"]
    assert again.stats()["previous_collection"]["collection"] == "rag_chunks"
    assert again.retrieve(QUERY, mode="dense")
    again.close()


def test_queries_in_threads_never_fail_across_the_switch(minilm_index, embedder, static_model):
    rag = RAG.open(minilm_index, embedder=embedder, reindex_batch_chunks=1)
    stop = threading.Event()
    answered, problems = [0], []

    def loop() -> None:
        while not stop.is_set():
            try:
                hits = rag.retrieve(QUERY, mode="hybrid")
                assert hits, "no results"
                answered[0] += 1
            except Exception as exc:  # noqa: BLE001 - every error is a failure
                problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        report = rag.reindex(str(static_model))
        after = answered[0]
        while answered[0] < after + 4 and not problems:  # some queries after the switch too
            stop.wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert report.switched and not problems, problems[:3]
    assert answered[0] >= 4
    rag.close()


def test_cli_reindex_refusal_switch_stats_and_mismatch(minilm_index, static_model,
                                                       useless_model):
    refused = subprocess.run(
        [sys.executable, "-m", "rag", "reindex", "--index", str(minilm_index),
         "--embedding-model", str(useless_model), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = [l for l in refused.stderr.splitlines() if l.startswith("rag: reindex refused")]
    assert len(lines) == 1 and "still serves collection rag_chunks" in lines[0], refused.stderr

    out = subprocess.run(
        [sys.executable, "-m", "rag", "reindex", "--index", str(minilm_index),
         "--embedding-model", str(static_model), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["switched"] and report["collection"] == "rag_chunks_v2"
    stats = subprocess.run([sys.executable, "-m", "rag", "stats", "--json", "--check", "--index",
                            str(minilm_index)], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert stats.returncode == 0, stats.stderr
    shown = json.loads(stats.stdout)
    assert shown["index_settings"]["embedding_fingerprint"] == report["model"]["embedding_fingerprint"]
    assert shown["index_settings"]["dimension"] == 256 and shown["check"]["ok"]
    # Asking for the old model by name is now refused, in one line naming both fixes (exit 2).
    out = subprocess.run(
        [sys.executable, "-m", "rag", "retrieve", QUERY, "--index", str(minilm_index),
         "--set", "embedding_model=packaged"], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "rag reindex --embedding-model packaged" in line
    assert f"--set embedding_model={static_model}" in line
