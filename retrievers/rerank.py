"""Optional cross-encoder rerank of the fused top-N, from a local model folder.

Two kinds: a sentence-transformers CrossEncoder folder (torch), or an ONNX export run by
onnxruntime (`OnnxCrossEncoderReranker`; the packaged ms-marco-MiniLM-L-12-v2 INT8, found by
`rag.models.reranker`). The fused score and each retriever's rank and
score stay on the hit; the cross-encoder's score becomes `scores["rerank"]` and the new order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from retrievers.errors import StoreConfigError
from retrievers.fusion import zscores
from retrievers.records import Hit, passage_texts


def pair_texts(hits: list[Hit], titles: bool) -> list[str]:
    """The passage side of each (question, passage) pair: the chunk's text, after a line with its
    file's name when `titles` (`rerank_source_titles`), as titled vectors embed it: the
    cross-encoder then knows that a chunk of llama.pdf that says "our model" is about LLaMA."""
    return passage_texts([h.chunk for h in hits], titles)


class CrossEncoderReranker:
    """Scores (query, chunk text) pairs with a CrossEncoder and sorts the hits by that score."""

    def __init__(self, model_path: str | Path, device: str = "cpu", batch_size: int = 16,
                 model: Any = None, blend: float = 1.0, max_length: int | None = None,
                 titles: bool = False):
        path = Path(model_path).expanduser()
        if model is None and not path.is_dir():
            raise StoreConfigError(f"rerank_model {model_path}: no such local CrossEncoder folder")
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self.blend = blend
        self.max_length = max_length  # None: the model's own limit
        self.titles = titles
        self._model = model

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(str(self.path), device=self.device, local_files_only=True,
                                       max_length=self.max_length)
        return self._model

    def scores(self, query: str, texts: list[str]) -> list[float]:
        raw = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                 show_progress_bar=False)
        return [float(s) for s in raw]

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return reorder(hits, self.scores(query, pair_texts(hits, self.titles)), self.blend)


def reorder(hits: list[Hit], scores: list[float], blend: float = 1.0) -> list[Hit]:
    """Hits sorted by the cross-encoder's scores (`blend` 1.0), or by `blend` * z(cross-encoder)
    + (1 - blend) * z(fused score): the fused order keeps a say where the cross-encoder, trained
    on web search questions, misjudges a corpus. The fused score and ranks stay beside it."""
    order = _blended(scores, [h.score for h in hits], blend) if blend < 1.0 else list(scores)
    reranked = []
    ranked = sorted(zip(order, scores, hits), key=lambda p: -p[0])
    for rank, (key, score, hit) in enumerate(ranked, start=1):
        reranked.append(replace(hit, score=key, ranks={**hit.ranks, "rerank": rank},
                                scores={**hit.scores, "fused": hit.score, "rerank": score}))
    return reranked


def _blended(rerank: list[float], fused: list[float], blend: float) -> list[float]:
    return [blend * r + (1 - blend) * f for r, f in zip(zscores(rerank), zscores(fused))]


class OnnxCrossEncoderReranker:
    """A cross-encoder exported to ONNX (a folder with `model.onnx` and `tokenizer.json`), run by
    onnxruntime: the packaged ms-marco-MiniLM-L-12-v2 INT8 reranker ships this way, and
    onnxruntime needs neither torch nor a model hub. Pairs are truncated to `max_length` tokens
    (the passage side is cut first)."""

    def __init__(self, model_dir: str | Path, batch_size: int = 16, max_length: int = 512,
                 threads: int = 0, blend: float = 1.0, titles: bool = False):
        path = Path(model_dir).expanduser()
        if not (path / "model.onnx").is_file() or not (path / "tokenizer.json").is_file():
            raise StoreConfigError(f"rerank_model {model_dir}: no model.onnx and tokenizer.json there")
        self.path = path
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.blend = blend
        self.titles = titles
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        self._session = onnxruntime.InferenceSession(
            str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_length, strategy="only_second")
        tokenizer.enable_padding()
        self._tokenizer = tokenizer

    def scores(self, query: str, texts: list[str]) -> list[float]:
        import numpy as np

        if self._session is None:
            self._load()
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self._tokenizer.encode_batch([(query, t) for t in texts[start:start + self.batch_size]])
            feed = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64)}
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            out.extend(float(x) for x in np.asarray(logits).reshape(len(encoded), -1)[:, 0])
        return out

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return reorder(hits, self.scores(query, pair_texts(hits, self.titles)), self.blend)
