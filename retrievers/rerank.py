"""Optional cross-encoder rerank of the fused top-N, from a local model folder.

No cross-encoder ships offline (see MODELS.md), so this stays off unless `rerank_model` names a
local sentence-transformers CrossEncoder folder. The fused score and each retriever's rank and
score stay on the hit; the cross-encoder's score becomes `scores["rerank"]` and the new order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from retrievers.errors import StoreConfigError
from retrievers.records import Hit


class CrossEncoderReranker:
    """Scores (query, chunk text) pairs with a CrossEncoder and sorts the hits by that score."""

    def __init__(self, model_path: str | Path, device: str = "cpu", batch_size: int = 16,
                 model: Any = None):
        path = Path(model_path).expanduser()
        if model is None and not path.is_dir():
            raise StoreConfigError(f"rerank_model {model_path}: no such local CrossEncoder folder")
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self._model = model

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(str(self.path), device=self.device, local_files_only=True)
        return self._model

    def scores(self, query: str, texts: list[str]) -> list[float]:
        raw = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                 show_progress_bar=False)
        return [float(s) for s in raw]

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        scores = self.scores(query, [h.chunk.text for h in hits])
        reranked = []
        for rank, (score, hit) in enumerate(
            sorted(zip(scores, hits), key=lambda p: -p[0]), start=1
        ):
            reranked.append(replace(hit, score=score, ranks={**hit.ranks, "rerank": rank},
                                    scores={**hit.scores, "fused": hit.score, "rerank": score}))
        return reranked
