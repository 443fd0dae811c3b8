"""Is the judge worth listening to? Score a true answer and a counterfactual one for faithfulness.

For each case with a reference answer and reference contexts, the reference answer is judged
against its contexts next to a copy with one fact changed, deterministically (a number moved,
a name swapped for another name of the contexts, or a statement negated). A judge that can be
trusted scores the true answer higher. Reported: the share of pairs where it does (ties count as
misses), the AUC over all true and counterfactual scores (ties count half), and the failures.
A judge under `RELIABLE_AT` is reported as unreliable by every evaluation report that uses it
(the verdict is kept per judge fingerprint beside the judgement cache).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

RELIABLE_AT = 0.7
NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?![\w.]*\d)")
NAME = re.compile(r"(?<=[a-z,;] )([A-Z][a-z]{2,}(?: [A-Z][a-z]+)*)")
CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}\b")
VERB = re.compile(r"\b(is|are|was|were|can|will|should|must|has|have|does|do|did)\b")


def counterfactual(answer: str, contexts: Iterable[str] = ()) -> tuple[str, str]:
    """`answer` with one fact changed, and which kind of change (number, name, negation)."""
    match = NUMBER.search(answer)
    if match:
        value = match.group(1).replace(",", "")
        number = float(value)
        changed = number * 2 + 1 if "." not in value else number * 2
        text = f"{changed:g}" if "." in value else str(int(changed))
        return answer[: match.start(1)] + text + answer[match.end(1):], "number"
    match = NAME.search(answer)
    if match:
        present = set(CAPITALISED.findall(answer))
        others = sorted({w for c in contexts for w in CAPITALISED.findall(c)} - present)
        if others:
            return answer[: match.start(1)] + others[0] + answer[match.end(1):], "name"
    match = VERB.search(answer)
    if match:
        return answer[: match.end(1)] + " not" + answer[match.end(1):], "negation"
    return "It is not true that " + answer[:1].lower() + answer[1:], "negation"


@dataclass
class PairResult:
    case_id: str
    kind: str
    true_score: float | None
    counterfactual_score: float | None
    counterfactual: str
    error: str = ""


@dataclass
class JudgeCheck:
    judge: str
    fingerprint: str
    dataset: str
    pairs: list[PairResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def scored(self) -> list[PairResult]:
        return [p for p in self.pairs if p.true_score is not None and p.counterfactual_score is not None]

    @property
    def true_above(self) -> float:
        """Share of scored pairs where the true answer scored strictly higher."""
        scored = self.scored
        return sum(p.true_score > p.counterfactual_score for p in scored) / len(scored) if scored else 0.0

    @property
    def auc(self) -> float:
        """P(a true answer outscores a counterfactual one), over all scored answers; ties half."""
        trues = [p.true_score for p in self.scored]
        falses = [p.counterfactual_score for p in self.scored]
        if not trues:
            return 0.0
        wins = sum((t > f) + 0.5 * (t == f) for t in trues for f in falses)
        return wins / (len(trues) * len(falses))

    @property
    def reliable(self) -> bool:
        return self.true_above >= RELIABLE_AT

    def summary(self) -> dict[str, Any]:
        return {"judge": self.judge, "fingerprint": self.fingerprint, "dataset": self.dataset,
                "pairs": len(self.pairs), "scored": len(self.scored),
                "failed": len(self.pairs) - len(self.scored),
                "true_above_counterfactual": round(self.true_above, 4), "auc": round(self.auc, 4),
                "reliable": self.reliable, "threshold": RELIABLE_AT, "seconds": round(self.seconds, 1)}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "details": [asdict(p) for p in self.pairs]}


def run_judge_check(judge: Any, cases: Iterable[Any], dataset: str = "",
                    progress: bool = True) -> JudgeCheck:
    """Judge each case's reference answer and its counterfactual against the reference contexts.

    `cases` have `id`, `reference_answer` and `reference_contexts` (attributes or keys)."""
    from tqdm import tqdm

    from eval.judged import judge_case

    usable = [c for c in cases if _get(c, "reference_answer") and _get(c, "reference_contexts")]
    check = JudgeCheck(judge.get_model_name(), judge.fingerprint, dataset)
    started = time.perf_counter()
    for case in tqdm(usable, desc="judge-check", unit="pair", disable=not progress):
        true, contexts = _get(case, "reference_answer"), list(_get(case, "reference_contexts"))
        false, kind = counterfactual(true, contexts)
        scores, errors = [], []
        for answer in (true, false):
            judged = judge_case(judge, _get(case, "question") or "", answer, contexts,
                                metrics=("faithfulness",), include_reason=False)["faithfulness"]
            scores.append(judged.score)
            if judged.status != "scored":
                errors.append(judged.reason)
        check.pairs.append(PairResult(str(_get(case, "id")), kind, scores[0], scores[1], false,
                                      "; ".join(errors)))
    check.seconds = time.perf_counter() - started
    return check


def _get(case: Any, name: str) -> Any:
    return case.get(name) if isinstance(case, dict) else getattr(case, name, None)


def verdict_path(cache_path: Path) -> Path:
    """Where judge-check verdicts are kept: beside the judgement cache."""
    return Path(cache_path).with_name("judge_checks.json")


def record_verdict(cache_path: Path, check: JudgeCheck) -> None:
    """Keep the check's summary per judge fingerprint and dataset, for later reports."""
    path = verdict_path(cache_path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(check.fingerprint, {})[check.dataset or "?"] = check.summary()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def verdict_for(cache_path: Path, fingerprint: str) -> dict[str, Any]:
    """The judge's recorded checks: {"reliable": bool | None, "checks": {dataset: summary}}.
    `reliable` is None when the judge was never checked, False when any check fell short."""
    path = verdict_path(cache_path)
    checks = (json.loads(path.read_text()) if path.is_file() else {}).get(fingerprint, {})
    if not checks:
        return {"reliable": None, "checks": {}}
    return {"reliable": all(c["reliable"] for c in checks.values()), "checks": checks}
