"""The smoke evaluation a re-index must pass before the index switches to the new collection.

Why self-retrieval: it needs no labelled questions and no LLM, runs in seconds, and catches
what breaks a switch in practice: a model that cannot tell the corpus's chunks apart (vectors
of the wrong kind, a broken or truncated model, a collection that lost rows). Each probe is a
passage from the middle of a chunk (its middle half, at most 32 words), searched in the
collection; it passes when its own chunk is in the top k (5, or fewer in an index of under
100 chunks, where the top 5 is a large share of it). Whole chunks would find themselves with
almost any model; a passage must be recognised by meaning and wording.

A switch passes when the new model finds at least `min_rate` of the probes and, when the
serving model was probed too (`baseline`), no more than `max_drop` fewer than it: on the Paul
Graham essays (2948 chunks) MiniLM itself finds 41 of 50 in the top 5, so a fixed bar near 1
would refuse good models, and one far below it would let a much worse model through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

PROBE_WORDS = 32
MIN_WORDS = 8


@dataclass
class SmokeResult:
    """How many probe passages found their own chunk in the top k."""

    probes: int
    found: int
    k: int
    min_rate: float
    missed: list[str] = field(default_factory=list)  # chunk ids of the probes that failed
    baseline: float | None = None  # the serving model's rate on the same probes
    max_drop: float = 1.0

    @property
    def rate(self) -> float:
        return self.found / self.probes if self.probes else 1.0

    @property
    def needed(self) -> float:
        """The rate that passes: `min_rate`, or the baseline less `max_drop` if that is higher."""
        floor = self.min_rate
        if self.baseline is not None:
            floor = max(floor, self.baseline - self.max_drop)
        return floor

    @property
    def passed(self) -> bool:
        return self.rate >= self.needed - 1e-9

    def describe(self) -> str:
        return (f"{self.found} of {self.probes} chunks found by a passage of their own text "
                f"in the top {self.k} ({self.rate:.0%}; needs {self.needed:.0%})")

    def to_json(self) -> dict[str, Any]:
        return {"probes": self.probes, "found": self.found, "k": self.k, "rate": round(self.rate, 4),
                "needed": round(self.needed, 4), "min_rate": self.min_rate,
                "baseline": self.baseline, "max_drop": self.max_drop, "passed": self.passed,
                "missed": self.missed[:20]}


def probe_ids(live_ids: Sequence[str], n: int) -> list[str]:
    """`n` chunk ids spread evenly over the sorted live ids (the same ones on every run)."""
    ordered = sorted(live_ids)
    if len(ordered) <= n:
        return ordered
    step = len(ordered) / n
    return [ordered[int(i * step)] for i in range(n)]


def probe_text(text: str) -> str:
    """The middle half of a chunk's words, at most PROBE_WORDS (a short chunk: all of it)."""
    words = text.split()
    if len(words) < 2 * MIN_WORDS:
        return " ".join(words)
    middle = words[len(words) // 4: len(words) - len(words) // 4]
    start = max(0, (len(middle) - PROBE_WORDS) // 2)
    return " ".join(middle[start:start + PROBE_WORDS])


def self_retrieval(texts: dict[str, str], encode_query: Callable[[str], np.ndarray],
                   search: Callable[[np.ndarray, int], list[tuple[str, float]]], *, k: int = 5,
                   min_rate: float = 0.6, baseline: float | None = None,
                   max_drop: float = 1.0) -> SmokeResult:
    """Probe each chunk of `texts` ({chunk id: text}) through `encode_query` and `search`
    (the model and collection under test)."""
    found, missed = 0, []
    probes = [(chunk_id, probe_text(text)) for chunk_id, text in texts.items() if text.strip()]
    for chunk_id, passage in probes:
        hits = search(encode_query(passage), k)
        if any(hit_id == chunk_id for hit_id, _ in hits):
            found += 1
        else:
            missed.append(chunk_id)
    return SmokeResult(len(probes), found, k, min_rate, missed, baseline, max_drop)
