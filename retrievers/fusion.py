"""Merge ranked lists: reciprocal rank fusion, or weighted sums of normalised scores (z-score or
min-max).

Why z-score is the default: on the two labelled QA sets (benchmarks/retrieval_quality.py) it was
the normalisation whose weights kept hybrid at or above the better single retriever on Recall@5,
Recall@10 and MRR@10 over the widest range (dense weight 1.2-1.7 at 50 candidates each; min-max
held at scattered weights only). BM25 scores have a long tail that min-max squeezes against
the top hit; z-scores compare each candidate with its own list's spread.

Each fused entry keeps every retriever's rank and score so the UI and `rag retrieve` can show
why a chunk came up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from retrievers.names import name_words
from retrievers.strategies import Fusion


@dataclass
class Fused:
    chunk_id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def reciprocal_rank_fusion(
    rankings: dict[str, list[tuple[str, float]]],
    k: int = 60,
    weights: dict[str, float] | None = None,
) -> list[Fused]:
    """score(d) = sum over retrievers of weight / (k + rank); ranks start at 1."""
    fused: dict[str, Fused] = {}
    for name, ranked in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, (chunk_id, score) in enumerate(ranked, start=1):
            entry = fused.setdefault(chunk_id, Fused(chunk_id, 0.0))
            entry.score += weight / (k + rank)
            entry.ranks[name] = rank
            entry.scores[name] = score
    return sorted(fused.values(), key=lambda f: (-f.score, f.chunk_id))


def weighted_score_fusion(
    rankings: dict[str, list[tuple[str, float]]],
    weights: dict[str, float] | None = None,
) -> list[Fused]:
    """Min-max normalise each retriever's scores to [0, 1], then sum them with weights."""
    fused: dict[str, Fused] = {}
    for name, ranked in rankings.items():
        if not ranked:
            continue
        weight = (weights or {}).get(name, 1.0)
        values = [s for _, s in ranked]
        low, high = min(values), max(values)
        span = high - low
        for rank, (chunk_id, score) in enumerate(ranked, start=1):
            normalised = 1.0 if span == 0 else (score - low) / span
            entry = fused.setdefault(chunk_id, Fused(chunk_id, 0.0))
            entry.score += weight * normalised
            entry.ranks[name] = rank
            entry.scores[name] = score
    return sorted(fused.values(), key=lambda f: (-f.score, f.chunk_id))


def zscores(values: Sequence[float]) -> list[float]:
    """(v - mean) / population std; all 0.0 when the values are all equal."""
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
    return [(v - mean) / spread for v in values]


def zscore_fusion(
    rankings: dict[str, list[tuple[str, float]]],
    weights: dict[str, float] | None = None,
) -> list[Fused]:
    """Standardise each retriever's candidate scores ((s - mean) / std), then sum them with
    weights. A chunk missing from a retriever's candidates gets that list's lowest z-score: it
    ranked below all of them there, which is neither average nor nothing."""
    per: dict[str, dict[str, float]] = {}
    floor: dict[str, float] = {}
    fused: dict[str, Fused] = {}
    for name, ranked in rankings.items():
        if not ranked:
            continue
        per[name] = dict(zip((chunk_id for chunk_id, _ in ranked),
                             zscores([score for _, score in ranked])))
        floor[name] = min(per[name].values())
        for rank, (chunk_id, score) in enumerate(ranked, start=1):
            entry = fused.setdefault(chunk_id, Fused(chunk_id, 0.0))
            entry.ranks[name] = rank
            entry.scores[name] = score
    for entry in fused.values():
        entry.score = sum((weights or {}).get(name, 1.0) * z.get(entry.chunk_id, floor[name])
                          for name, z in per.items())
    return sorted(fused.values(), key=lambda f: (-f.score, f.chunk_id))


Rankings = dict[str, list[tuple[str, float]]]

FUSERS: dict[Fusion, Callable[[Rankings, "dict[str, float] | None", int], list[Fused]]] = {
    Fusion.ZSCORE: lambda rankings, weights, rrf_k: zscore_fusion(rankings, weights),
    Fusion.WEIGHTED: lambda rankings, weights, rrf_k: weighted_score_fusion(rankings, weights),
    Fusion.RRF: lambda rankings, weights, rrf_k: reciprocal_rank_fusion(rankings, rrf_k, weights),
}


def weights_for(query: str, weights: dict[str, float],
                named_weights: dict[str, float] | None) -> dict[str, float]:
    """The fusion weights for `query`: `named_weights` when it names something (a capitalised
    word not opening a sentence, a word with digits: `names.name_words`), else `weights`."""
    if not named_weights or named_weights == weights:
        return weights
    return named_weights if name_words(query) else weights


def fuse(method: "Fusion | str", rankings: Rankings, weights: "dict[str, float] | None" = None,
         rrf_k: int = 60) -> list[Fused]:
    """Fuse `rankings` with the named method (see `Fusion`)."""
    return FUSERS[Fusion.parse(method)](rankings, weights, rrf_k)
