"""Merge ranked lists: reciprocal rank fusion or weighted, normalised score fusion.

Each fused entry keeps every retriever's rank and score so the UI and `rag retrieve` can show
why a chunk came up.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
