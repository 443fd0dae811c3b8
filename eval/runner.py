"""Run a dataset through a `RAG` and score every case: the one loop behind `rag eval`.

Per case: the top `DEPTH` chunks for ranking metrics, and (unless answers are skipped) the
answer with the top_k contexts it was written from; then every metric. Nothing here is random,
so the same index, models and dataset give the same scores (the LLM runs at temperature 0 with
a seed); only timings and the wall time vary.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from eval.datasets import EvalCase, EvalDataset, cases_hash
from eval.errors import EvalError
from eval.metrics import DEPTH, default_metrics
from eval.latency import latency_aggregates
from eval.scoring import Aggregate, CaseResult, Metric, Retrieved, Score, aggregate


@dataclass
class CaseRecord:
    """One case, what the system did, and each metric's score."""

    case: EvalCase
    result: CaseResult
    scores: dict[str, Score]
    error: str | None = None
    answer_cached: bool = False  # the answer came from the answer cache: generation not timed

    def to_json(self) -> dict[str, Any]:
        answer = self.result.answer
        return {
            "id": self.case.id,
            "question": self.case.question,
            "answerable": self.case.answerable,
            "generated": self.case.generated,
            "reference_answer": self.case.reference_answer,
            "reference_contexts": len(self.case.reference_contexts),
            "answer": None if answer is None else answer.text,
            "declined": None if answer is None else answer.declined,
            "decline_reason": None if answer is None else answer.decline_reason,
            "citations": [] if answer is None else [
                {"n": c.n, "chunk_id": c.chunk_id, "source": c.source, "page": c.page}
                for c in answer.citations],
            "served": [r.chunk_id for r in self.result.served],
            "retrieved": [{"chunk_id": r.chunk_id, "source": r.source, "page": r.page,
                           "score": round(r.score, 6)} for r in self.result.ranked],
            "scores": {name: s.to_json() for name, s in self.scores.items()},
            "timings_ms": {k: round(v, 1) for k, v in self.result.timings.items()},
            "answer_cached": self.answer_cached,
            "error": self.error,
        }


@dataclass
class EvalRun:
    """A finished run: per-case records, aggregates, and what it ran on."""

    dataset: EvalDataset
    dataset_hash: str  # of the whole dataset file
    records: list[CaseRecord]
    aggregates: dict[str, Aggregate]
    options: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    wall_s: float = 0.0
    warmup_s: float = 0.0  # loading the models, before the first case (not in latency)

    @property
    def cases_hash(self) -> str:
        """Hash of the cases actually run (differs from `dataset_hash` under `--limit`)."""
        return cases_hash(r.case for r in self.records)

    @property
    def metrics(self) -> dict[str, Aggregate]:
        return self.aggregates


def run_eval(rag: Any, dataset: EvalDataset, *, top_k: int | None = None,
             limit: int | None = None, answers: bool = True,
             metrics: list[Metric] | None = None, progress: bool = True,
             answer_hits: Callable[[], int] | None = None) -> EvalRun:
    """Evaluate `dataset` (its first `limit` cases) on `rag`; `answers=False` skips the LLM.

    `metrics` defaults to every registered metric that needs no judge (those needing an
    answer only when `answers`). `answer_hits()` counts answers served from an answer cache
    (`eval.answer_cache`): a case whose answer came from it keeps its retrieval timing only."""
    from tqdm import tqdm

    from rag.api import INDEX_SETTINGS_KEY
    from rag.errors import USER_ERRORS

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall = time.perf_counter()
    selected = dataset.head(limit)
    if not selected.cases:
        raise EvalError(f"{dataset.path}: no cases to run (--limit {limit})")
    if rag.index.catalog.count() == 0:
        raise EvalError(f"{rag.index_dir}: the index is empty; run `rag ingest` on the dataset's "
                        "documents first")
    top_k = top_k or rag.settings.top_k
    warmup_s = _warm_up(rag, selected.cases[0].question, answers)
    chosen = metrics if metrics is not None else default_metrics(answers=answers)
    chosen = [m for m in chosen if answers or not m.needs_answer]
    records = []
    for case in tqdm(selected.cases, desc=f"eval {dataset.name}", unit="case",
                     disable=not progress):
        hits_before = answer_hits() if answer_hits else 0
        try:
            result = _run_case(rag, case, top_k, answers)
        except USER_ERRORS:
            raise  # a setup problem (model file, index settings): every case would fail alike
        except Exception as exc:  # one bad case must not end the run
            reason = f"{type(exc).__name__}: {exc}"
            records.append(CaseRecord(case, CaseResult([], []),
                                      {m.name: Score.fail(reason) for m in chosen}, reason))
            continue
        cached = bool(answer_hits) and answer_hits() > hits_before
        if cached:  # a lookup is not a generation: only the retrieval was timed
            result.timings = {k: v for k, v in result.timings.items() if k == "retrieve"}
        records.append(CaseRecord(case, result, {m.name: _score(m, case, result) for m in chosen},
                                  answer_cached=cached))
    aggregates = {m.name: aggregate(m, [r.scores[m.name] for r in records]) for m in chosen}
    aggregates.update(latency_aggregates([r.result.timings for r in records if not r.error]))
    from rag.models.llama_kernels import loaded

    fingerprints = {"index_settings": rag.index.catalog.get_meta(INDEX_SETTINGS_KEY),
                    "llm": rag.llm.name if answers else None,
                    # which llama.cpp kernels wrote the answers (AVX-512 ones round differently)
                    "llm_cpu_kernels": (kernels := loaded()) and kernels.describe()}
    options = {"top_k": top_k, "depth": max(DEPTH, top_k), "answers": answers, "limit": limit,
               "cases": len(records), "metrics": [m.name for m in chosen],
               "answers_from_cache": sum(r.answer_cached for r in records)}
    return EvalRun(selected, dataset.hash, records, aggregates, options,
                   settings=rag.settings.as_dict(), fingerprints=fingerprints,
                   started_at=started_at, wall_s=time.perf_counter() - wall, warmup_s=warmup_s)


def _warm_up(rag: Any, question: str, answers: bool) -> float:
    """Load the models before the first timed case, so latency measures queries, not loading;
    returns the seconds it took. Changes no result: every query stands alone (the LLM backend
    resets its state and seed per call)."""
    started = time.perf_counter()
    rag.retrieve(question, top_k=1)
    if answers:
        rag.llm.count_tokens(question)
    return time.perf_counter() - started


def _run_case(rag: Any, case: EvalCase, top_k: int, answers: bool) -> CaseResult:
    depth = max(DEPTH, top_k)
    if not answers:
        started = time.perf_counter()
        hits = rag.retrieve(case.question, top_k=top_k)
        elapsed_ms = (time.perf_counter() - started) * 1000
        served = [Retrieved.from_hit(h) for h in hits]
        ranked = served if top_k >= depth else [
            Retrieved.from_hit(h) for h in rag.retrieve(case.question, top_k=depth)]
        return CaseResult(ranked, served, None, {"retrieve": elapsed_ms})
    stream = rag.stream(case.question, top_k=top_k)
    answer = stream.answer
    served = [Retrieved.from_hit(h) for h in stream.hits]
    # The answer's own retrieval went only to top_k; ranking metrics need DEPTH chunks. The
    # fused ranking does not depend on k (both retrievers return candidate_k first), but what
    # is served may (`cover_names` brings names into the top_k), so served stays its own list.
    ranked = served if top_k >= depth else [
        Retrieved.from_hit(h) for h in rag.retrieve(case.question, top_k=depth)]
    return CaseResult(ranked, served, answer, dict(answer.timings))


def _score(metric: Metric, case: EvalCase, result: CaseResult) -> Score:
    try:
        score = metric.score(case, result)
    except Exception as exc:  # a broken metric fails its cell, not the run
        return Score.fail(f"{type(exc).__name__}: {exc}")
    if score.status == "scored" and (score.value is None or not math.isfinite(score.value)):
        return Score.fail(f"metric returned {score.value!r}")
    return score
