"""Passages embedded after their file's title line (`embed_source_titles`), and an index that
keeps the form it was made in."""

import numpy as np
import pytest

from rag.api import RAG
from retrievers.records import Chunk, passage_texts, titled_text

# The same paragraph in two files: only the file name says which model it is about.
PARAGRAPH = ("The model is pre-trained on two unsupervised tasks before it is fine-tuned. "
             "Both tasks use unlabeled text, and the pre-training corpus is large.")


def _files(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    for name in ("bert_pretraining.txt", "glove_vectors.txt"):
        (folder / name).write_text(PARAGRAPH + "\n")
    return folder


def test_title_line_is_the_file_name_as_words():
    assert titled_text("Body.", "/data/papers/RoBERTa_v2.pdf", True) == "RoBERTa v2\nBody."
    assert titled_text("Body.", "/data/papers/RoBERTa_v2.pdf", False) == "Body."
    chunk = Chunk("c1", "Body.", "/x/task-2-vec.pdf", "s1", "h", 0)
    assert passage_texts([chunk], True) == ["task 2 vec\nBody."]


def test_a_titled_index_finds_the_file_its_question_names(tmp_path, embedder):
    folder = _files(tmp_path)
    rag = RAG.open(tmp_path / "index", embedder=embedder, embed_source_titles=True)
    rag.ingest([folder])
    assert rag.stats()["index_settings"]["passage_titles"] is True
    hits = rag.retrieve("What tasks is BERT pre-trained on?", mode="dense", top_k=2)
    assert hits[0].chunk.source.endswith("bert_pretraining.txt")
    assert hits[0].score > hits[1].score + 0.02
    # What the store holds is the titled passage's vector.
    stored = embedder.encode(rag.index.passage_texts([hits[0].chunk]))[0]
    plain = embedder.encode([hits[0].chunk.text])[0]
    query_top = rag.retrieve("bert pretraining\n" + PARAGRAPH, mode="dense", top_k=1)[0]
    assert query_top.chunk.source.endswith("bert_pretraining.txt")
    assert float(np.dot(stored, plain)) < 0.99  # the title changed the vector
    rag.close()


def test_an_index_keeps_the_form_it_was_made_in(tmp_path, embedder):
    folder = _files(tmp_path)
    index = tmp_path / "index"
    first = RAG.open(index, embedder=embedder, embed_source_titles=False)
    first.ingest([folder / "glove_vectors.txt"])
    first.close()
    # Opened later with titles on: the index's own record wins, so its vectors stay one form.
    later = RAG.open(index, embedder=embedder, embed_source_titles=True,
                     rerank_model="")  # dense scores as they are, not reranked
    later.ingest([folder / "bert_pretraining.txt"])
    assert later.stats()["index_settings"]["passage_titles"] is False
    assert later.index.passage_titles is False
    scores = [h.score for h in later.retrieve("What tasks is BERT pre-trained on?", mode="dense",
                                              top_k=2)]
    assert abs(scores[0] - scores[1]) < 1e-3  # same text, same (untitled) vector
    later.close()


def test_fusion_uses_the_weights_chosen_for_the_index_form(tmp_path, embedder, capsys):
    from rag.config import TITLED_FUSION, Settings, fusion_settings

    defaults = Settings()
    titled = fusion_settings(defaults, titled=True)
    assert (titled.dense_weight, titled.named_dense_factor) == (1.0, 0.43) == tuple(
        TITLED_FUSION.values())
    assert fusion_settings(defaults, titled=False) is defaults  # an old untitled index
    mine = Settings(dense_weight=2.0)
    assert fusion_settings(mine, titled=True) is mine  # a weight the user chose is kept
    folder = _files(tmp_path)
    new = RAG.open(tmp_path / "new", embedder=embedder, embed_source_titles=True)
    new.ingest([folder / "glove_vectors.txt"])
    assert new.retriever.weights["dense"] == 1.0 and new.retriever.named_weights["dense"] == 0.43
    new.close()
    old = RAG.open(tmp_path / "old", embedder=embedder)
    old.ingest([folder / "glove_vectors.txt"])
    assert old.retriever.weights["dense"] == 0.8
    assert old.retriever.named_weights["dense"] == pytest.approx(0.8 * 0.43)
    old.close()
    # `rag config` says which weights an index's queries get (reads its record, loads nothing)
    import json

    from rag.cli import main

    for name, expected in (("new", "dense 1, dense on named questions 0.43 (titled index)"),
                           ("old", "dense 0.8, dense on named questions 0.344 (untitled index)"),
                           ("none", "dense 0.8, dense on named questions 0.344 (no index yet")):
        capsys.readouterr()
        assert main(["config", "--index", str(tmp_path / name), "--json"]) == 0
        assert expected in json.loads(capsys.readouterr().out)["derived"]["fusion_weights_effective"]
    assert not (tmp_path / "none").exists()
