"""Passages on an int8 copy of the ONNX export (`embedding_passage_backend = onnx-int8`), queries
staying on the float32 export: faster on AVX2-only CPUs, and it must still find what float32
finds, keep queries exactly as they were, and rebuild a damaged copy."""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import ModelFileError
from rag.models import onnx_int8
from rag.models.embedder import Embedder

PASSAGES = ["Green tea steeps for two to three minutes in water at 80 degrees.",
            "The Merkle tree lets a light client check one transaction without the whole block.",
            "Viaweb's template language RTML was named after Robert Morris.",
            "Sourdough needs a starter fed with flour and water for several days."]
QUESTIONS = ["How long should green tea steep?", "What does a Merkle tree let a client verify?",
             "Who was RTML named after?", "What does sourdough bread need?"]


@pytest.fixture(scope="module")
def int8():
    return Embedder("packaged", passage_backend="onnx-int8")


@pytest.fixture(scope="module")
def float32():
    return Embedder("packaged", passage_backend="onnx")


def test_int8_passages_are_close_to_float32_and_rank_alike(int8, float32):
    ours, reference = int8.encode(PASSAGES), float32.encode(PASSAGES)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() > 0.98  # close ...
    assert np.abs(ours - reference).max() > 1e-4  # ... but really int8, not the float32 export
    queries = np.stack([int8.encode_query(q) for q in QUESTIONS])
    assert list((queries @ ours.T).argmax(axis=1)) == [0, 1, 2, 3]


def test_queries_stay_on_the_float32_export(int8, float32):
    assert np.abs(int8.encode_query(QUESTIONS[0]) - float32.encode_query(QUESTIONS[0])).max() < 1e-6
    assert int8.passage_runtime.startswith("onnxruntime int8")
    assert "one text per call" in int8.passage_runtime  # what `rag config` says
    assert int8.query_runtime.startswith("onnxruntime float32")
    assert int8.batch_size == 1


def test_a_damaged_int8_copy_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    first = Embedder("packaged", passage_backend="onnx-int8")
    vector = first.encode(PASSAGES[:1])
    folder = onnx_int8.int8_folder(first.fingerprint)
    with open(folder / "model.onnx", "r+b") as handle:  # a torn write
        handle.truncate(1000)
    assert onnx_int8.cached_int8(first.fingerprint) is None
    again = Embedder("packaged", passage_backend="onnx-int8")
    assert np.abs(again.encode(PASSAGES[:1]) - vector).max() < 1e-6
    assert not list((tmp_path / "cache").glob("*.tmp-*"))


def test_int8_passages_for_a_model_without_an_export_say_what_to_set(static_model):
    with pytest.raises(ModelFileError, match="embedding_passage_backend = onnx or torch"):
        Embedder(str(static_model), passage_backend="onnx-int8").encode(["tea"])


def test_an_unknown_passage_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="onnx-int8"):
        Embedder("packaged", passage_backend="int4")


def test_an_int8_vector_depends_on_its_own_text_only_unless_texts_share_a_call(int8, tmp_path):
    """Why passages go one text per call (README rules 24 and 43): dynamic int8 takes one
    activation scale per onnxruntime call, so in batches a passage gets another vector beside
    other texts than alone; one text per call, in any order or grouping, gives the same bits."""
    from rag.config import load_settings
    from rag.models.embedder import embedder_for

    alone = np.vstack([int8.encode([text]) for text in PASSAGES])
    assert np.array_equal(int8.encode(PASSAGES), alone)
    assert np.array_equal(int8.encode(PASSAGES[::-1])[::-1], alone)
    batched = embedder_for("packaged", load_settings(
        tmp_path, embedding_passage_backend="onnx-int8", embedding_batch_size=8))
    assert batched.batch_size == 8 and "vary with the texts" in batched.passage_runtime
    assert (batched.encode(PASSAGES) * alone).sum(axis=1).min() < 0.9999


def test_the_int8_copy_runs_without_the_scalar_skip_layer_norm_kernel(int8, tmp_path):
    """onnxruntime's CPU SkipLayerNormalization is scalar code, 12% of an int8 passage's time
    (README rule 44): the copy keeps Add + LayerNormalization, and its session does not fuse
    them back, while attention stays one quantised operator."""
    import onnx

    from rag.models.onnx_embedder import open_session

    int8.encode(PASSAGES[:1])  # makes the copy on first use
    folder = onnx_int8.int8_folder(int8.fingerprint)
    open_session(folder / "model.onnx", 1, save_optimized_to=tmp_path / "runs.onnx")
    runs = {node.op_type for node in onnx.load(str(tmp_path / "runs.onnx")).graph.node}
    assert "LayerNormalization" in runs and "SkipLayerNormalization" not in runs
    assert "QAttention" in runs
