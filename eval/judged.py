"""DeepEval's judged metrics for one case, scored by our judge, each failure kept apart.

The four metrics the product promises: faithfulness (is every claim of the answer backed by the
retrieved contexts), answer relevancy (does the answer address the question), contextual recall
(do the retrieved contexts hold what the reference answer says) and contextual precision (are
the relevant contexts ranked first). A metric that needs a reference answer is "not scored" on a
case without one; a judge that fails after its retries leaves the metric "failed" with the
reason. Neither is ever turned into a number.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable

JUDGED_METRICS = ("faithfulness", "answer_relevancy", "contextual_recall", "contextual_precision")
NEEDS_REFERENCE = {"contextual_recall", "contextual_precision"}
TRUTHS_LIMIT = 8


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
        options: dict[str, Any] = {}
        if name == "faithfulness":  # the truths list is the longest judgement
            options["truths_extraction_limit"] = TRUTHS_LIMIT
        summary = include_reason and getattr(judge, "summary_reasons", True)
        metric = _metric_class(name)(model=judge, include_reason=summary,
                                     async_mode=False, verbose_mode=False, **options)
        try:
            score = metric.measure(case, _show_indicator=False)
        except JudgeOutputError as exc:
            # DeepEval writes the reason after the score: a judge that scored but then rambled
            # past its token budget in the reason keeps its score, with the reason marked.
            if getattr(metric, "score", None) is not None:
                out[name] = Judgement(name, float(metric.score), f"(no reason: {exc})")
            else:
                out[name] = Judgement(name, status="failed", reason=str(exc))
            continue
        reason = (getattr(metric, "reason", "") or "") if summary else verdict_reason(name, metric)
        out[name] = Judgement(name, float(score), reason)
    return out


def judged_text(answer: str) -> str:
    """The answer as the judge reads it: without its `[n]` citation marks. They point at the
    contexts and are not claims or statements; a small judge quoted them as statements of
    their own ("The statement 'Consensus latency ... [2]' is irrelevant"), and stock
    llama-index's answers, judged beside ours, carry none."""
    from eval.answer_metrics import answer_words

    text = re.sub(r"[ \t]+(?=\n)", "", re.sub(r"[ \t]{2,}", " ", answer_words(answer)))
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", text).strip()


def verdict_reason(name: str, metric: Any, limit: int = 600) -> str:
    """The reason for a score read off the judge's own verdicts, without the extra call that
    asks it for a summary (one call per metric, 15-25 s on 2 cores with the packaged judge)."""
    verdicts = list(getattr(metric, "verdicts", None) or [])
    if not verdicts:
        return "the judge gave no verdicts"
    if name == "contextual_precision":
        relevant = [str(i) for i, v in enumerate(verdicts, 1) if v.verdict.strip().lower() == "yes"]
        head = (f"relevant contexts at ranks {', '.join(relevant)} of {len(verdicts)}" if relevant
                else f"none of the {len(verdicts)} contexts judged relevant")
        return head[:limit]
    what = {"faithfulness": "claims", "answer_relevancy": "statements",
            "contextual_recall": "reference sentences"}[name]
    against = [v for v in verdicts if v.verdict.strip().lower() != "yes"]
    head = f"{len(verdicts) - len(against)} of {len(verdicts)} {what} judged yes"
    details = "; ".join(f"{v.verdict}: {v.reason}" if v.reason else v.verdict for v in against)
    return (head + (f"; {details}" if details else ""))[:limit]


def judged_metrics(judges: list[Any], names: tuple[str, ...] = JUDGED_METRICS,
                   tolerance: float = 0.05) -> list[Any]:
    """`eval.scoring.Metric`s for the named judged metrics, scored by each of `judges` in turn
    (one judge per repeat: `--repeats N` passes N judges that differ only in sampling seed).

    Faithfulness and answer relevancy judge the answer; contextual recall and precision judge
    the served contexts against the reference answer, so they also run without answers.
    Tolerance 0.05: judged scores move more than counted ones; with repeats the gate widens it
    by the observed spread."""
    from eval.scoring import Metric, Score

    def scorer(name: str):
        def score(case: Any, result: Any) -> Any:
            answer = result.answer
            if name in ("faithfulness", "answer_relevancy") and answer is None:
                return Score.skip("no answer (retrieval only)")
            if name in ("faithfulness", "answer_relevancy") and getattr(answer, "declined", False):
                return Score.skip("the system declined to answer")
            contexts = [r.text for r in result.served]
            values, reasons = [], []
            for judge in judges:
                judged = judge_case(judge, case.question, judged_text(answer.text) if answer
                                    else "", contexts, case.reference_answer, metrics=(name,))[name]
                if judged.status == "not_scored":
                    return Score.skip(judged.reason)
                if judged.status == "failed":
                    return Score.fail(judged.reason)
                values.append(judged.score)
                reasons.append(judged.reason)
            if len(values) == 1:
                return Score.of(values[0], reasons[0])
            return Score.repeated(values, reasons[0])
        return score

    return [Metric(name, "judged", scorer(name), tolerance=tolerance,
                   needs_answer=name in ("faithfulness", "answer_relevancy"),
                   description=f"DeepEval {name.replace('_', ' ')} by the judge")
            for name in names]
