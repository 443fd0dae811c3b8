"""The metric registry and the records metrics read and write.

A metric is looked up by name from one registry (as llama-index-core does), so the runner, the
report and the baseline gate handle every metric the same way: the ones here that need no LLM,
and judged ones (DeepEval with a local judge) that register themselves the same way later.

A metric returns a `Score` per case. A case it cannot score (no reference contexts, no answer)
gives `Score.skip(reason)` and a metric that broke gives `Score.fail(reason)`: both are counted
and shown, never averaged in as a zero or a NaN.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

if TYPE_CHECKING:
    from eval.datasets import EvalCase

Kind = Literal["retrieval", "answer", "judged", "latency"]
Status = Literal["scored", "not_scored", "failed"]
KIND_ORDER = ("retrieval", "answer", "judged", "latency")  # how reports list metrics


@dataclass
class Score:
    """One metric's result on one case.

    `reason` is free text a judge gives for its score (or why it was not scored / failed);
    `samples` holds each repeat's value when a metric is scored several times (`--repeats`),
    `value` then being their mean.
    """

    value: float | None
    status: Status = "scored"
    reason: str | None = None
    samples: list[float] | None = None

    @classmethod
    def of(cls, value: float, reason: str | None = None) -> "Score":
        return cls(float(value), "scored", reason)

    @classmethod
    def skip(cls, reason: str) -> "Score":
        """The metric does not apply to this case (e.g. it has no reference contexts)."""
        return cls(None, "not_scored", reason)

    @classmethod
    def fail(cls, reason: str) -> "Score":
        """The metric should apply but could not be computed (e.g. a judge gave no verdict)."""
        return cls(None, "failed", reason)

    @classmethod
    def repeated(cls, values: list[float], reason: str | None = None) -> "Score":
        """A metric scored several times on the same case (judge noise)."""
        return cls(statistics.fmean(values), "scored", reason, [float(v) for v in values])

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "status": self.status}
        if self.reason is not None:
            data["reason"] = self.reason
        if self.samples is not None:
            data["samples"] = self.samples
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Score":
        return cls(data.get("value"), data.get("status", "scored"), data.get("reason"),
                   data.get("samples"))


@dataclass
class Retrieved:
    """A retrieved chunk as the metrics and the report need it."""

    chunk_id: str
    source: str
    page: int | None
    score: float
    text: str

    @classmethod
    def from_hit(cls, hit: Any) -> "Retrieved":
        c = hit.chunk
        return cls(c.chunk_id, c.source, c.page, float(hit.score), c.text)


@dataclass
class CaseResult:
    """What the system did for one case.

    `ranked`: the top `depth` chunks (ranking metrics). `served`: the top_k chunks the answer is
    written from (a prefix of `ranked`). `answer`: a `rag.generation.Answer`, or None when
    answers were skipped. `timings`: milliseconds per stage. `memo`: scratch space metrics
    share (e.g. the chunk x reference hit matrix, computed once per case).
    """

    ranked: list[Retrieved]
    served: list[Retrieved]
    answer: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)


ScoreFn = Callable[["EvalCase", CaseResult], Score]


@dataclass(frozen=True)
class Metric:
    """A named per-case metric and how the gate treats it.

    `tolerance`: how far (absolute) the aggregate may move the wrong way before the gate fails
    (None: reported, never gated). `needs_answer`: skipped in `--retrieval-only` runs.
    """

    name: str
    kind: Kind
    score: ScoreFn
    higher_is_better: bool = True
    tolerance: float | None = 0.02
    needs_answer: bool = False
    description: str = ""


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (a later one with the same name replaces it)."""
    _REGISTRY[metric.name] = metric
    return metric


def metric(name: str, kind: Kind, **options: Any) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator form of `register` for a score function."""

    def wrap(fn: ScoreFn) -> ScoreFn:
        register(Metric(name, kind, fn, description=(fn.__doc__ or "").strip().split("\n")[0],
                        **options))
        return fn

    return wrap


def get_metric(name: str) -> Metric:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r} (known: {', '.join(_REGISTRY)})") from None


def registered(kinds: Iterable[Kind] | None = None, *, answers: bool = True) -> list[Metric]:
    """Registered metrics, by kind (`KIND_ORDER`) then registration order; `answers=False`
    leaves out those that need an answer."""
    wanted = set(kinds) if kinds is not None else None
    chosen = [m for m in _REGISTRY.values()
              if (wanted is None or m.kind in wanted) and (answers or not m.needs_answer)]
    return sorted(chosen, key=lambda m: KIND_ORDER.index(m.kind))  # stable: keeps registration order


@dataclass
class Aggregate:
    """A metric over a run: the mean of scored cases, how many were not scored or failed, and
    the spread across repeats (None when scored once)."""

    name: str
    kind: str
    value: float | None
    scored: int
    not_scored: int = 0
    failed: int = 0
    higher_is_better: bool = True
    tolerance: float | None = 0.02
    spread: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # why cases were not scored / failed

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "scored": self.scored, "not_scored": self.not_scored,
                "failed": self.failed, "higher_is_better": self.higher_is_better,
                "tolerance": self.tolerance, "spread": self.spread, "kind": self.kind,
                "reasons": self.reasons}


def aggregate(metric: Metric, scores: list[Score]) -> Aggregate:
    """Mean over scored cases. With repeats, `spread` is the standard deviation of the
    per-repeat means (how much a whole run moves from judge noise alone)."""
    values = [s.value for s in scores if s.status == "scored" and s.value is not None]
    reasons: dict[str, int] = {}
    for s in scores:
        if s.status != "scored":
            key = f"{s.status}: {s.reason or 'no reason given'}"
            reasons[key] = reasons.get(key, 0) + 1
    spread = None
    repeated = [s.samples for s in scores if s.status == "scored" and s.samples]
    if repeated and len({len(r) for r in repeated}) == 1 and len(repeated[0]) > 1:
        per_repeat = [statistics.fmean(r[i] for r in repeated) for i in range(len(repeated[0]))]
        spread = statistics.pstdev(per_repeat)
    return Aggregate(
        metric.name, metric.kind, statistics.fmean(values) if values else None, len(values),
        sum(s.status == "not_scored" for s in scores), sum(s.status == "failed" for s in scores),
        metric.higher_is_better, metric.tolerance, spread, reasons)
