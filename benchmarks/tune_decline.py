"""The decline-before-generation threshold, chosen by leave-one-dataset-out over the dev sets and
reported on the set left out, with a precision/recall curve (issue 16's "declining that is
calibrated").

For each dev set, its answerable questions and its unanswerable ones (the set's own, like
ARAGOG's GLM-130B questions, plus eval/questions/unanswerable_dev_<set>.jsonl) are retrieved
against the set's prepared index with the default settings; each gets decline scores computed
from retrieval alone (no LLM):
- `dense_top`: the best cosine of the contexts (today's gate, with term coverage);
- `rerank_top`: the packaged cross-encoder's best logit over the top-k contexts (with --rerank);
- `gate`: today's whole rule (`Evidence.weak`: names the contexts lack, low term coverage with
  a modest cosine, or a cosine under the threshold) with the threshold as `decline_min_dense`.
  This is the setting `rag` ships.
For a score and a fold (held-out set X), the threshold is the highest one that declines at most
`--max-answerable-decline` (5%) of the answerable questions of EACH other set; X's answerable and
unanswerable decline rates at that threshold are the reported figures. Today's rule
(`Evidence.weak` with the configured thresholds) is reported beside it. The threshold chosen on
all dev sets is then applied to the held-out unanswerable questions
(eval/questions/unanswerable_heldout_*.jsonl), which no choice ever saw.

With `--answers NAME=REPORT` (an eval report.json of that set's answers), a question the model
or the support check declined there counts as declined at every threshold: the 5% limit is
then on end-to-end declines, which is what a user sees (the gate must leave room for them).
Reports from before `decline_reason` existed: a declined case whose generation took over
0.1 s was declined after the model was asked.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/tune_decline.py \
        --set paul_graham=/work/evalstate/idx_pg --set blockchain_solana=/work/evalstate/idx_solana \
        --set aragog_arxiv=/work/evalstate/idx_aragog [--rerank packaged] [--json OUT] \
        [--answers paul_graham=/work/evalstate/report_pg/report.json ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa"
QUESTIONS = REPO / "eval" / "questions"

from eval.datasets import load_dataset  # noqa: E402
from rag.grounding import retrieval_evidence  # noqa: E402

SCORES = ("dense_top", "rerank_top", "gate")
COVERAGE = 0.4  # decline_min_coverage, kept as it is


def declines(score: str, t: float):
    """`row -> bool`: is the question declined at threshold `t` of `score`?"""
    if score == "gate":
        return lambda r: (r.get("model_declined", False) or r["missing_names"] or r["dense_top"] < t
                          or (r["coverage"] < COVERAGE and r["dense_top"] < t + 0.15))
    return lambda r: r.get("model_declined", False) or r.get(score, 1e9) < t


def model_declined(report: Path) -> set[str]:
    """Ids of the cases the model or the support check declined in an eval report."""
    cases = json.loads(report.read_text())["cases"]
    return {c["id"] for c in cases if c.get("declined") and (
        c["decline_reason"].startswith(("model:", "support:")) if c.get("decline_reason")
        else (c.get("timings_ms") or {}).get("generate", 0) > 100)}


def values_of(score: str, rows) -> list[float]:
    key = "dense_top" if score == "gate" else score
    return sorted({r[key] for r in rows if key in r})


def features(name: str, index_dir: Path, cache: Path, rerank: str) -> list[dict]:
    """One row per question: {"id", "kind": dev|heldout, "answerable", "dense_top", "coverage",
    "missing_names", "today_weak", "rerank_top"}; cached as JSON."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from rag.api import RAG

    cases = [("dev", c) for c in load_dataset(QA / name / "normalized.jsonl").cases]
    for kind in ("dev", "heldout"):
        extra = QUESTIONS / f"unanswerable_{kind}_{name}.jsonl"
        if extra.is_file():
            cases += [(kind, c) for c in load_dataset(extra).cases]
    work = Path(tempfile.mkdtemp(prefix=f"decline-{name}-"))
    shutil.copytree(index_dir, work / "index")
    rag = RAG.open(work / "index")
    reranker = None
    if rerank:
        from dataclasses import replace

        from rag.parts import default_reranker

        reranker = default_reranker(replace(rag.settings, rerank_model=rerank))
    s = rag.settings
    rows = []
    started = time.perf_counter()
    for kind, case in cases:
        hits = rag.retrieve(case.question)
        texts = [h.chunk.text for h in hits]
        evidence = retrieval_evidence(case.question, texts,
                                      [h.scores["dense"] for h in hits if "dense" in h.scores],
                                      sources=[h.chunk.source for h in hits])
        row = {"id": case.id, "kind": kind, "answerable": case.answerable,
               "dense_top": evidence.dense_top if evidence.dense_top is not None else -1.0,
               "coverage": evidence.coverage, "missing_names": bool(evidence.missing_names),
               "today_weak": bool(not hits or evidence.weak(s.decline_min_coverage,
                                                            s.decline_min_dense))}
        if reranker is not None and texts:
            row["rerank_top"] = max(reranker.scores(case.question, texts))
        rows.append(row)
    rag.close()
    shutil.rmtree(work, ignore_errors=True)
    print(f"{name}: {len(rows)} questions in {time.perf_counter() - started:.0f} s", flush=True)
    cache.write_text(json.dumps(rows))
    return rows


def rates(rows: list[dict], declined) -> tuple[float, float]:
    """(answerable decline rate, unanswerable decline rate) under `declined(row)`."""
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    share = lambda group: sum(map(declined, group)) / len(group) if group else float("nan")  # noqa: E731
    return share(ans), share(una)


def threshold_for(score: str, sets: dict[str, list[dict]], max_answerable: float) -> float:
    """The highest threshold (decline when score < t) that keeps every set's answerable decline
    rate at or under `max_answerable`, placed midway between that score and the next lower one:
    every t in between makes the same decisions on these sets, and the midpoint leaves the most
    margin for a question scored a little differently elsewhere."""
    values = values_of(score, [r for rows in sets.values() for r in rows])
    best = 0
    for i, t in enumerate(values):
        if all(rates(rows, declines(score, t))[0] <= max_answerable
               for rows in sets.values()):
            best = i
    return (values[best - 1] + values[best]) / 2 if best else values[0] - 1e-9


def pr_curve(score: str, rows: list[dict], points: int = 8) -> list[dict]:
    """Declining as detection of unanswerable questions: precision and recall per threshold."""
    values = values_of(score, rows)
    out = []
    for t in values[:: max(1, len(values) // points)]:
        declined = [r for r in rows if declines(score, t)(r)]
        true = sum(not r["answerable"] for r in declined)
        positives = sum(not r["answerable"] for r in rows)
        out.append({"threshold": round(t, 4), "precision": true / len(declined) if declined else 1.0,
                    "recall": true / positives if positives else float("nan")})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=INDEX_DIR")
    parser.add_argument("--rerank", default="", metavar="MODEL", help="e.g. packaged")
    parser.add_argument("--max-answerable-decline", type=float, default=0.05)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tune_decline")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--answers", action="append", default=[], metavar="NAME=REPORT_JSON",
                        help="count this eval report's model/support declines (end-to-end limit)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = dict(item.split("=", 1) for item in args.set)
    data = {n: features(n, Path(d), args.cache / f"{n}{'.rr' if args.rerank else ''}.json", args.rerank)
            for n, d in sets.items()}
    for item in args.answers:
        name, report = item.split("=", 1)
        asked_and_declined = model_declined(Path(report))
        for row in data[name]:
            row["model_declined"] = row["id"] in asked_and_declined
    dev = {n: [r for r in rows if r["kind"] == "dev"] for n, rows in data.items()}
    heldout = [r for rows in data.values() for r in rows if r["kind"] == "heldout"]
    scores = [s for s in SCORES
              if s == "gate" or any(s in r for rows in dev.values() for r in rows)]
    report: dict = {"folds": {}, "max_answerable_decline": args.max_answerable_decline}
    print(f"{'held-out set':20} {'score':11} {'threshold':>9} {'answerable':>10} {'unanswerable':>12}"
          f" | today: {'answerable':>10} {'unanswerable':>12}")
    for held in dev:
        others = {n: rows for n, rows in dev.items() if n != held}
        today = rates(dev[held], lambda r: r["today_weak"] or r.get("model_declined", False))
        for score in scores:
            t = threshold_for(score, others, args.max_answerable_decline)
            a, u = rates(dev[held], declines(score, t))
            report["folds"].setdefault(held, {})[score] = {
                "threshold": t, "answerable_declined": a, "unanswerable_declined": u,
                "today": {"answerable_declined": today[0], "unanswerable_declined": today[1]}}
            print(f"{held:20} {score:11} {t:9.3f} {a:10.3f} {u:12.3f} | today: {today[0]:10.3f} "
                  f"{today[1]:12.3f}")
    report["all"] = {}
    for score in scores:
        t = threshold_for(score, dev, args.max_answerable_decline)
        declined = sum(map(declines(score, t), heldout))
        today = sum(r["today_weak"] for r in heldout)
        pooled = [r for rows in dev.values() for r in rows]
        report["all"][score] = {"threshold": t, "heldout_unanswerable_declined": declined,
                                "heldout_total": len(heldout), "today_heldout_declined": today,
                                "pr_curve": pr_curve(score, pooled)}
        print(f"\n{score}: threshold chosen on all dev sets {t:.3f}; held-out unanswerable declined "
              f"{declined}/{len(heldout)} (today's rule: {today}/{len(heldout)})")
        for p in report["all"][score]["pr_curve"]:
            print(f"  decline below {p['threshold']:8.3f}: precision {p['precision']:.2f} "
                  f"recall {p['recall']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
