"""Latency per stage (retrieve, the decline gate's cross-encoder when it ran, first token of a
generated answer, generate, total): p50 and p95 over a run's cases.

Reported, never gated by default: timings depend on the machine and on what else runs on it
(the CI machines share two cores), so a tolerance that held there would be meaningless here.
A baseline may still set a tolerance on one of them by hand.
"""

from __future__ import annotations

import numpy as np

from eval.scoring import Aggregate

STAGES = ("retrieve", "decline_rerank", "quote", "first_token", "generate", "total")
PERCENTILES = (50, 95)


def latency_name(stage: str, percentile: int) -> str:
    return f"latency_ms.{stage}.p{percentile}"


def latency_aggregates(timings: list[dict[str, float]]) -> dict[str, Aggregate]:
    """`latency_ms.<stage>.p50/.p95` for every stage some case timed (in milliseconds)."""
    out: dict[str, Aggregate] = {}
    for stage in STAGES:
        values = [t[stage] for t in timings if stage in t]
        if not values:
            continue
        for p in PERCENTILES:
            name = latency_name(stage, p)
            out[name] = Aggregate(name, "latency", float(np.percentile(values, p)), len(values),
                                  len(timings) - len(values), 0, higher_is_better=False,
                                  tolerance=None)
    return out
