"""`rag drift`: the profile kept at ingest, the domain-classifier statistic, and the CLI on a
tiny real corpus (a few Paul Graham essays as the reference; more essays, and the Solana
PDF, as new documents), plus logged queries under the similarity floor."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

ESSAYS = SHARED_DATA / "qa" / "paul_graham" / "essays"
SOLANA = SHARED_DATA / "qa" / "blockchain_solana" / "source_files" / "BlockchainSolana.pdf"


def _clusters(rng, centre, n_groups=30, per_group=8, spread=0.3):
    """Unit vectors in passages: each passage's chunks near a passage centre near `centre`."""
    rows, groups = [], []
    for g in range(n_groups):
        passage = centre + spread * rng.normal(size=centre.shape)
        for _ in range(per_group):
            rows.append(passage + 0.1 * rng.normal(size=centre.shape))
            groups.append(g)
    rows = np.array(rows)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), np.array(groups)


def test_the_classifier_tells_a_new_domain_from_more_of_the_same():
    from eval.drift import DEFAULT_THRESHOLD, document_drift

    rng = np.random.default_rng(1)
    home = rng.normal(size=32)
    ref, ref_groups = _clusters(rng, home)
    same, same_groups = _clusters(rng, home)
    other, other_groups = _clusters(rng, home + 0.8 * rng.normal(size=32))
    within = document_drift(ref, ref_groups, same, same_groups)
    past = document_drift(ref, ref_groups, other, other_groups)
    assert within.value < DEFAULT_THRESHOLD and not within.drifted, within
    assert past.value > 0.9 and past.drifted, past
    assert past.centroid_distance > within.centroid_distance


def test_too_few_chunks_are_not_judged():
    from eval.drift import document_drift

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 8))
    result = document_drift(ref, np.arange(40) // 8, ref[:3], np.zeros(3, dtype=int))
    assert result.value is None and not result.drifted and "too few" in result.note


def test_the_profile_is_a_uniform_sample_saved_without_pickle(tmp_path):
    from rag.drift_profile import DriftProfile

    profile = DriftProfile.empty(50, "fp")
    rng = np.random.default_rng(0)
    vectors = np.repeat(np.arange(1000, dtype=np.float32)[:, None], 4, axis=1)
    for start in range(0, 1000, 100):
        profile.add(vectors[start:start + 100], [7] * 100, range(start, start + 100), rng)
    assert profile.seen == 1000 and len(profile.sample) == 50
    assert np.allclose(profile.centroid, 499.5)
    assert profile.sample[:, 0].mean() == pytest.approx(500, abs=120)  # not just the first 50
    path = profile.save(tmp_path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert set(data.files) >= {"sample", "sources", "positions", "total", "seen"}
    loaded = DriftProfile.load(tmp_path)
    assert np.array_equal(loaded.sample, profile.sample) and loaded.fingerprint == "fp"


@pytest.fixture(scope="module")
def essay_index(tmp_path_factory, embedder):
    """Six essays indexed (the reference), six others kept aside (new documents)."""
    from rag.api import RAG

    essays = sorted(ESSAYS.glob("*"))
    tmp = tmp_path_factory.mktemp("drift")
    reference, new = tmp / "reference", tmp / "new"
    reference.mkdir(), new.mkdir()
    for i, essay in enumerate(essays[:24:2]):
        (reference if i % 2 == 0 else new).joinpath(essay.name).write_bytes(essay.read_bytes())
    index = tmp / "index"
    with RAG.open(index, embedder=embedder) as rag:
        assert all(r.status == "added" for r in rag.ingest([reference]))
    return index, new, functools.partial(RAG.open, embedder=embedder)


def _drift(index, opener, *args):
    from rag.cli import main

    return main(["drift", *args, "--index", str(index), "--json"], open_rag=opener)


def test_drift_flags_the_solana_pdf_not_more_essays(essay_index, capsys):
    index, new, opener = essay_index
    assert (index / "drift_profile.npz").is_file()
    assert _drift(index, opener, str(new)) == 0
    essays = json.loads(capsys.readouterr().out)["documents"]
    assert _drift(index, opener, str(SOLANA), "--max-chunks", "60", "--set", "ocr=never") == 1
    solana = json.loads(capsys.readouterr().out)["documents"]
    assert essays["statistic"] == "domain-classifier ROC AUC" and essays["threshold"] > 0.5
    assert essays["value"] < essays["threshold"] < solana["value"], (essays, solana)
    assert not essays["drifted"] and solana["drifted"]
    print(f"ROC AUC: 6 more essays {essays['value']:.3f}, Solana PDF {solana['value']:.3f} "
          f"(threshold {essays['threshold']})")


def test_logged_off_topic_queries_drift(essay_index, capsys):
    from rag.api import RAG

    index, _, opener = essay_index
    with opener(index, query_log=True) as rag:
        for q in ("How do I reset my router's wifi password?", "Best recipe for sourdough bread",
                  "What is the boiling point of liquid nitrogen?"):
            rag.retrieve(q)
    assert _drift(index, opener) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["queries"]["queries"] == 3 and doc["queries"]["value"] > 0.5
    assert "documents" not in doc
    with RAG.open(index, embedder=opener.keywords["embedder"]) as rag:
        assert all(q["text"] is None for q in rag.oplog.queries())  # no text unless asked


def test_drift_without_a_profile_says_how_to_get_one(tmp_path, embedder, capsys):
    from rag.api import RAG

    index = tmp_path / "index"
    with RAG.open(index, embedder=embedder, drift_profile_size=0) as rag:
        rag.ingest([next(ESSAYS.glob("*"))])
    assert _drift(index, functools.partial(RAG.open, embedder=embedder), str(ESSAYS)) == 2
    assert "no drift profile" in capsys.readouterr().err
