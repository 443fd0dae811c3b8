"""Cross-encoder rerank plumbing, with a tiny randomly initialised model built here (no
cross-encoder ships offline; its scores are meaningless, the plumbing is what is tested)."""

from __future__ import annotations

import pytest
import torch

from retrievers.errors import StoreConfigError
from retrievers.hybrid import HybridRetriever
from retrievers.rerank import CrossEncoderReranker

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
