"""Baselines and the regression gate.

A baseline file holds, per dataset, the aggregate metrics of an accepted run and a tolerance
per metric: a metric regresses when it moves the wrong way by more than its tolerance
(below `value - tolerance`, or above `value + tolerance` for lower-is-better metrics such as
`decline_rate_answerable`). Default tolerances come from each metric's registration:
- retrieval metrics 0.02 absolute: retrieval is deterministic, so the tolerance only absorbs
  near-tied chunks swapping ranks across machines (float/bf16 kernels): about one case in 50;
- answer metrics 0.05: llama.cpp at temperature 0 with a seed repeats itself on one machine,
  but other CPU kernels or thread counts can change a few answers;
- latency: none (reported, not gated: it measures the machine as much as the code).
A hand-edited tolerance is kept when the baseline is updated.

Judge noise: a metric scored N times per case (`--repeats N`) carries a `spread` (standard
deviation of the per-repeat run means). The gate then allows `tolerance + SPREAD_FACTOR *
max(baseline spread, run spread)`, so a noisy judge widens its own margin instead of failing
builds, while deterministic metrics (spread None) keep their plain tolerance.

File layout (JSON, one file may hold several datasets):
    {"format": "rag-eval-baseline/1",
     "datasets": {"<name>": {"cases": 58, "cases_hash": "sha256:...", "recorded_at": "...",
                             "settings": {...}, "metrics": {"recall@5": {"value": 0.62,
                             "tolerance": 0.02, "higher_is_better": true, "spread": null}}}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.errors import BaselineError

if TYPE_CHECKING:
    from eval.runner import EvalRun

FORMAT = "rag-eval-baseline/1"
SPREAD_FACTOR = 2.0  # two standard deviations of run-to-run judge noise


@dataclass
class Delta:
    """One metric of a run next to its baseline."""

    name: str
    baseline: float | None
    value: float | None
    tolerance: float | None  # effective (spread included); None: not gated
    higher_is_better: bool = True
    status: str = "ok"  # ok | regressed | improved | ungated | new | not_run

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.value is None:
            return None
        return self.value - self.baseline

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "value": self.value, "delta": self.delta,
                "tolerance": self.tolerance, "higher_is_better": self.higher_is_better,
                "status": self.status}


@dataclass
class Comparison:
    """A run against its baseline: every metric's delta, and which regressed."""

    baseline_path: Path
    dataset: str
    deltas: dict[str, Delta]

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas.values() if d.status == "regressed"]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def summary(self) -> str:
        """One line: which metrics regressed (with baseline, value and tolerance), or none."""
        if self.ok:
            return f"no metric regressed against {self.baseline_path} ({self.dataset})"
        parts = [f"{d.name} {_fmt(d.value)} < {_fmt(d.baseline)} - {d.tolerance:g}"
                 if d.higher_is_better else
                 f"{d.name} {_fmt(d.value)} > {_fmt(d.baseline)} + {d.tolerance:g}"
                 for d in self.regressions]
        return f"regressed against {self.baseline_path} ({self.dataset}): " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"baseline": str(self.baseline_path), "dataset": self.dataset, "ok": self.ok,
                "regressed": [d.name for d in self.regressions],
                "metrics": {name: d.to_json() for name, d in self.deltas.items()}}


def _fmt(value: float | None) -> str:
    return "not scored" if value is None else f"{value:.4f}"


def read_baseline(path: str | Path) -> dict[str, Any]:
    """The whole baseline file (checked for its format)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such baseline file (create it with --update-baseline)") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: not a baseline JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or \
            not isinstance(data.get("datasets"), dict):
        raise BaselineError(f"{path}: not a baseline file (expected \"format\": \"{FORMAT}\")")
    return data


def baseline_entry(path: str | Path, name: str, cases_hash: str, cases: int) -> dict[str, Any]:
    """The baseline recorded for dataset `name`, checked to be about the same cases (a gate
    over other questions would compare nothing); `rag eval` calls it before a long run too."""
    path = Path(path)
    data = read_baseline(path)
    entry = data["datasets"].get(name)
    if entry is None:
        known = ", ".join(sorted(data["datasets"])) or "none"
        raise BaselineError(f"{path}: no baseline for dataset {name!r} (it has: {known}); "
                            "record one with --update-baseline")
    if entry.get("cases_hash") != cases_hash:
        raise BaselineError(
            f"{path}: the baseline for {name!r} was recorded on other cases ({entry.get('cases')} "
            f"cases, {entry.get('cases_hash')}) than this run ({cases} cases, {cases_hash}); "
            "use the same dataset and --limit, or --update-baseline")
    return entry


def compare(run: "EvalRun", path: str | Path) -> Comparison:
    """Compare a run's aggregates with the baseline recorded for its dataset."""
    path = Path(path)
    name = run.dataset.name
    entry = baseline_entry(path, name, run.cases_hash, len(run.records))
    deltas: dict[str, Delta] = {}
    for metric, base in entry.get("metrics", {}).items():
        agg = run.aggregates.get(metric)
        higher = bool(base.get("higher_is_better", True))
        if agg is None:
            deltas[metric] = Delta(metric, base.get("value"), None, base.get("tolerance"), higher,
                                   "not_run")
            continue
        tolerance = base.get("tolerance")
        spreads = [s for s in (base.get("spread"), agg.spread) if s is not None]
        if tolerance is not None and spreads:
            tolerance = tolerance + SPREAD_FACTOR * max(spreads)
        deltas[metric] = Delta(metric, base.get("value"), agg.value, tolerance, higher,
                               _status(base.get("value"), agg.value, tolerance, higher))
    for metric, agg in run.aggregates.items():
        if metric not in deltas:
            deltas[metric] = Delta(metric, None, agg.value, agg.tolerance, agg.higher_is_better,
                                   "new")
    return Comparison(path, name, deltas)


def _status(base: float | None, value: float | None, tolerance: float | None,
            higher: bool) -> str:
    if tolerance is None:
        return "ungated"
    if base is None:
        return "new" if value is not None else "ok"
    if value is None:  # scored in the baseline, nothing scored now (e.g. every judgement failed)
        return "regressed"
    change = (value - base) if higher else (base - value)  # > 0 is better
    if change < -tolerance - 1e-12:
        return "regressed"
    return "improved" if change > tolerance else "ok"


def update_baseline(run: "EvalRun", path: str | Path) -> dict[str, Any]:
    """Record the run's aggregates as the dataset's baseline, keeping tolerances set before.

    Other datasets in the file are left as they are; returns the dataset's new entry."""
    path = Path(path)
    data = read_baseline(path) if path.exists() else {"format": FORMAT, "datasets": {}}
    old = data["datasets"].get(run.dataset.name, {}).get("metrics", {})
    metrics = {}
    for name, agg in run.aggregates.items():
        tolerance = old[name].get("tolerance") if name in old else agg.tolerance
        metrics[name] = {"value": agg.value, "tolerance": tolerance,
                         "higher_is_better": agg.higher_is_better, "spread": agg.spread,
                         "scored": agg.scored, "not_scored": agg.not_scored}
    entry = {"cases": len(run.records), "cases_hash": run.cases_hash,
             "dataset_hash": run.dataset_hash, "limit": run.options.get("limit"),
             "recorded_at": run.started_at, "options": run.options, "settings": run.settings,
             "fingerprints": run.fingerprints, "metrics": metrics}
    data["datasets"][run.dataset.name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    tmp.replace(path)
    return entry
