"""The metrics that need no LLM, registered on import; judged metrics register the same way.

`eval.scoring` holds the registry; `eval.retrieval_metrics` (hit rate, Recall@k, MRR@k,
nDCG@k against reference contexts) and `eval.answer_metrics` (containment, token F1, citation
validity, decline rates) fill it. `eval.latency` gives p50/p95 per stage.
"""

from __future__ import annotations

from eval import answer_metrics, retrieval_metrics  # noqa: F401  (they register themselves)
from eval.latency import latency_aggregates
from eval.retrieval_metrics import DEPTH, is_hit
from eval.scoring import Aggregate, CaseResult, Metric, Score, get_metric, register, registered


def default_metrics(*, answers: bool = True) -> list[Metric]:
    """Every registered metric except judged ones; those needing an answer only if `answers`."""
    return registered(["retrieval", "answer"], answers=answers)


__all__ = ["Aggregate", "CaseResult", "DEPTH", "Metric", "Score", "default_metrics", "get_metric",
           "is_hit", "latency_aggregates", "register", "registered"]
