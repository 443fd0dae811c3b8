"""Two reports of `rag eval` on the same questions, compared question by question.

Why: the dev files hold 20 to 98 questions, and the small answer model's output moves whenever
anything before it moves (what is served, its order, the prompt), so an aggregate that changed
by one question (0.033 on 30) says little on its own. Pairing each question's score before and
after shows how many got better and how many worse; the exact sign test over the questions that
changed (scipy's `binomtest`; for 0/1 metrics such as containment or a decline this is McNemar's
exact test) says how often a split at least that uneven comes from a change that did nothing. A
bootstrap interval of the mean change goes beside it. Hand-written around scipy and numpy: the
pairing and the report format are this suite's own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from eval.errors import EvalError

BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class PairedChange:
    """One metric over the questions both reports scored."""

    metric: str
    n: int  # questions scored in both reports
    before: float  # mean over those n
    after: float
    better: int  # questions whose score moved the good way
    worse: int
    p_value: float  # exact two-sided sign test over better + worse
    ci_low: float  # 95% bootstrap interval of the mean change (after - before)
    ci_high: float
    higher_is_better: bool = True

    @property
    def change(self) -> float:
        return self.after - self.before


def load_report(path: str | Path) -> dict[str, Any]:
    """A `rag eval` report: its `report.json`, or the folder holding it."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise EvalError(f"{file}: no such report (give a `rag eval --report` folder or its "
                        "report.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalError(f"{file}: not a readable report ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise EvalError(f"{file}: not a `rag eval` report (no cases)")
    return data


def case_scores(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{case id: {metric: value}} for every score the report marks as scored."""
    out: dict[str, dict[str, float]] = {}
    for case in report["cases"]:
        scores = {name: float(s["value"]) for name, s in (case.get("scores") or {}).items()
                  if isinstance(s, dict) and s.get("status") == "scored" and s.get("value") is not None}
        out[str(case.get("id"))] = scores
    return out


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact sign test: 1.0 when nothing changed."""
    if better + worse == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(better, worse), better + worse, 0.5).pvalue)


def bootstrap_interval(diffs: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `diffs`, resampling questions."""
    if len(diffs) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(BOOTSTRAP_SAMPLES, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def compare_reports(before: dict[str, Any], after: dict[str, Any],
                    metrics: Iterable[str] | None = None) -> tuple[list[PairedChange], dict[str, int]]:
    """Each metric's paired change, and how many case ids were in one report only.

    Metrics default to every one scored in both; the good direction is the report's own
    (`higher_is_better` of its aggregates: a lower `decline_rate_answerable` is better)."""
    old, new = case_scores(before), case_scores(after)
    common = [cid for cid in new if cid in old]
    if not common:
        raise EvalError("the two reports share no question ids: are they runs of the same dataset?")
    directions = {name: bool(a.get("higher_is_better", True))
                  for name, a in {**before.get("aggregates", {}), **after.get("aggregates", {})}.items()
                  if isinstance(a, dict)}
    present = sorted({m for cid in common for m in old[cid].keys() & new[cid].keys()})
    wanted = list(metrics) if metrics else present
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise EvalError(f"not scored in both reports: {', '.join(unknown)} (scored in both: "
                        f"{', '.join(present) or 'none'})")
    changes = []
    for metric in wanted:
        pairs = np.array([(old[c][metric], new[c][metric]) for c in common
                          if metric in old[c] and metric in new[c]])
        diffs = pairs[:, 1] - pairs[:, 0]
        up = directions.get(metric, True)
        better = int(np.sum(diffs > 1e-12 if up else diffs < -1e-12))
        worse = int(np.sum(diffs < -1e-12 if up else diffs > 1e-12))
        low, high = bootstrap_interval(diffs)
        changes.append(PairedChange(metric, len(pairs), float(pairs[:, 0].mean()),
                                    float(pairs[:, 1].mean()), better, worse,
                                    sign_test(better, worse), low, high, up))
    only = {"before": sum(1 for c in old if c not in new), "after": sum(1 for c in new if c not in old)}
    return changes, only


def format_changes(changes: list[PairedChange], only: dict[str, int]) -> str:
    """The table `rag eval compare` prints."""
    lines = [f"{'metric':28} {'n':>4} {'before':>8} {'after':>8} {'change':>8} {'better':>6} "
             f"{'worse':>6} {'p (sign)':>9}  95% interval of the change"]
    for c in changes:
        lines.append(f"{c.metric:28} {c.n:>4} {c.before:>8.4f} {c.after:>8.4f} {c.change:>+8.4f} "
                     f"{c.better:>6} {c.worse:>6} {c.p_value:>9.3f}  [{c.ci_low:+.4f}, {c.ci_high:+.4f}]")
    if only["before"] or only["after"]:
        lines.append(f"(questions in one report only, not compared: {only['before']} before, "
                     f"{only['after']} after)")
    lines.append("better / worse: questions whose score moved the good / bad way (a lower "
                 "decline_rate_answerable is better). p: how often a split at least this uneven "
                 "comes from a change that did nothing (exact sign test over the questions that "
                 "moved); a single question moving gives p = 1.")
    return "\n".join(lines)


def changes_json(changes: list[PairedChange], only: dict[str, int]) -> dict[str, Any]:
    return {"metrics": [{**asdict(c), "change": c.change} for c in changes], "only_in": only}
