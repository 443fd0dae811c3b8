"""DeepEval's judged metrics for one case, scored by our judge, each failure kept apart.

The four metrics the product promises: faithfulness (is every claim of the answer backed by the
retrieved contexts), answer relevancy (does the answer address the question), contextual recall
(do the retrieved contexts hold what the reference answer says) and contextual precision (are
the relevant contexts ranked first). A metric that needs a reference answer is "not scored" on a
case without one; a judge that fails after its retries leaves the metric "failed" with the
reason. Neither is ever turned into a number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

JUDGED_METRICS = ("faithfulness", "answer_relevancy", "contextual_recall", "contextual_precision")
NEEDS_REFERENCE = {"contextual_recall", "contextual_precision"}


@dataclass
class Judgement:
    """One judged metric on one case: a score in [0, 1] with the judge's reason, or why not."""

    metric: str
    score: float | None = None
    reason: str = ""
    status: str = "scored"  # scored | failed | not_scored

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _metric_class(name: str) -> Callable[..., Any]:
    from deepeval import metrics

    return {
        "faithfulness": metrics.FaithfulnessMetric,
        "answer_relevancy": metrics.AnswerRelevancyMetric,
        "contextual_recall": metrics.ContextualRecallMetric,
        "contextual_precision": metrics.ContextualPrecisionMetric,
    }[name]


def judge_case(judge: Any, question: str, answer: str, contexts: list[str],
               reference_answer: str = "", metrics: tuple[str, ...] = JUDGED_METRICS,
               include_reason: bool = True) -> dict[str, Judgement]:
    """Score `answer` to `question` over the retrieved `contexts` with each named metric."""
    from deepeval.test_case import LLMTestCase

    from eval.judge import JudgeOutputError

    out: dict[str, Judgement] = {}
    for name in metrics:
        if name not in JUDGED_METRICS:
            raise ValueError(f"judged metric must be one of {JUDGED_METRICS}, not {name!r}")
        if name in NEEDS_REFERENCE and not reference_answer.strip():
            out[name] = Judgement(name, status="not_scored", reason="the case has no reference answer")
            continue
        if not contexts:
            out[name] = Judgement(name, status="not_scored", reason="nothing was retrieved")
            continue
        case = LLMTestCase(input=question, actual_output=answer or "(no answer)",
                           retrieval_context=list(contexts),
                           expected_output=reference_answer or None)
        metric = _metric_class(name)(model=judge, include_reason=include_reason,
                                     async_mode=False, verbose_mode=False)
        try:
            score = metric.measure(case, _show_indicator=False)
        except JudgeOutputError as exc:
            out[name] = Judgement(name, status="failed", reason=str(exc))
            continue
        out[name] = Judgement(name, float(score), getattr(metric, "reason", "") or "")
    return out
