"""The decline-before-generation rule, chosen by leave-one-dataset-out over the dev corpora and
reported on the corpus left out, with a precision/recall curve (issue 16's "declining that is
calibrated").

Each corpus (a `--set NAME=INDEX`) brings answerable questions in up to two sets: its long dev set
(../shared/data/qa/NAME/normalized.jsonl) and its short-answer set
(eval/questions/short_answers_NAME.jsonl, and its later batches short_answers_b_NAME.jsonl to
short_answers_e_NAME.jsonl, each its own set; `--short-batches` picks which); and unanswerable ones: the dev set's own
(`answerable: false`, like ARAGOG's GLM-130B questions) plus eval/questions/unanswerable_dev_NAME.jsonl.
eval/questions/unanswerable_heldout_NAME.jsonl is never used in a choice: the rule chosen on all
corpora is applied to it once, at the end. Every question is retrieved against the corpus's index
with the default settings; its features come from retrieval alone (no LLM):
- `dense_top` and `coverage`: the best cosine and the share of question terms the contexts hold;
- `missing_names`: a name of the question that no context (text or file name) holds;
- `rerank_top`: the packaged cross-encoder's best logit over the served contexts (pairs cut to
  256 tokens);
- `sentence_top`: its best logit over the served contexts' single sentences
  (`rag.context_budget.distinct_sentences`): a 256-token chunk dilutes the one sentence that
  answers a question phrased far from it.

Rule families, each a pre-generation decline (`rules` below): today's `gate(t)`; `rerank(r)`;
`names+rerank(r)`; `gate&rerank(t, r)` (today's gate, but a context the cross-encoder scores at r
or more lets the question through); `names|cosine&rerank(t, r)`; `gate&sentence(t, s)` and
`gate&rerank&sentence(t, r, s)` (a sentence scoring s or more also lets it through;
`decline_gate = evidence+rerank+sentences`). Three-threshold rules try fewer values of each
(`thinned`) so that every rule tries about as many combinations. With `--answers NAME=REPORT`
(eval report.json files), a question the model or the support check declined when it was asked
counts as declined under every rule: declines are end to end, as a user sees them. Ungated reports
(`rag eval ... --set decline_gate=off`) say what the model does with every question.

A fold (corpus X left out) keeps the (rule, thresholds) whose end-to-end answerable decline rate is
at most `--max-answerable-decline` (5%) on EACH answerable set of the other corpora, picks the one
declining the most of their unanswerable questions (ties: fewer answerable declined, then the rule
listed first), and reports X's figures. The rule chosen on all corpora ships only if, summed over
the folds, its left-out errors (answerable declined + unanswerable answered) are no more than
today's gate's. Both rules were written before any run (README "Choosing quality settings").

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/tune_decline.py \
        --set paul_graham=IDX_PG --set blockchain_solana=IDX_SOLANA --set aragog_arxiv=IDX_ARAGOG \
        --answers paul_graham=REPORT.json ... [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa"
QUESTIONS = REPO / "eval" / "questions"

from eval.datasets import load_dataset  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.context_budget import distinct_sentences  # noqa: E402
from rag.grounding import retrieval_evidence  # noqa: E402

COVERAGE = 0.4  # decline_min_coverage, kept as it is
RERANK_TOKENS = 256  # pair length: reads a default-sized chunk whole (README "rerank the top 10")
NONE = -1e9  # the score of a question with nothing retrieved: every threshold declines it
Row = dict
Rule = Callable[[Row], bool]


def cosine_weak(r: Row, t: float):
    """Today's gate without its name check: a low cosine, or low coverage and a modest one."""
    return (r["dense_top"] < t) | ((r["coverage"] < COVERAGE) & (r["dense_top"] < t + 0.15))


# name -> (thresholds it takes, rule builder); listed simplest first (the tie-break). Rules use
# `|` and `&` so that one definition decides a row (a dict of values) and all rows at once (a
# dict of numpy columns, `choose`).
RULES: dict[str, tuple[tuple[str, ...], Callable[..., Rule]]] = {
    "gate": (("dense",), lambda t: lambda r: r["missing_names"] | cosine_weak(r, t)),
    "rerank": (("rerank",), lambda q: lambda r: r["rerank_top"] < q),
    "names+rerank": (("rerank",), lambda q: lambda r: r["missing_names"] | (r["rerank_top"] < q)),
    "gate&rerank": (("dense", "rerank"), lambda t, q: lambda r: (
        (r["missing_names"] | cosine_weak(r, t)) & (r["rerank_top"] < q))),
    "names|cosine&rerank": (("dense", "rerank"), lambda t, q: lambda r: (
        r["missing_names"] | (cosine_weak(r, t) & (r["rerank_top"] < q)))),
    # the cross-encoder also reads the served contexts' single sentences (rule 6, 2026-12-03)
    "gate&sentence": (("dense", "sentence"), lambda t, u: lambda r: (
        (r["missing_names"] | cosine_weak(r, t)) & (r["sentence_top"] < u))),
    "gate&rerank&sentence": (("dense", "rerank", "sentence"), lambda t, q, u: lambda r: (
        (r["missing_names"] | cosine_weak(r, t)) & (r["rerank_top"] < q)
        & (r["sentence_top"] < u))),
}


def end_to_end(rule: Rule) -> Rule:
    return lambda r: r["model_declined"] | rule(r)


def model_declined(report: Path) -> set[str]:
    """Ids of the cases the model or the support check declined in an eval report."""
    cases = json.loads(report.read_text())["cases"]
    return {c["id"] for c in cases if c.get("declined") and (
        c["decline_reason"].startswith(("model:", "support:")) if c.get("decline_reason")
        else (c.get("timings_ms") or {}).get("generate", 0) > 100)}


# short_answers_NAME, short_answers_b_NAME, ... (batch f is reserved to judge rule 6: never here)
SHORT_BATCHES = ("", "b", "c", "d", "e")


def question_sets(name: str, batches: tuple[str, ...] = SHORT_BATCHES) -> list[tuple[str, str, object]]:
    """(kind, set, case): kind dev|heldout; set long|short|short_b|short_c|unanswerable."""
    out = []
    for case in load_dataset(QA / name / "normalized.jsonl").cases:
        out.append(("dev", "long" if case.answerable else "unanswerable", case))
    for batch in batches:
        group = f"short_{batch}" if batch else "short"
        short = QUESTIONS / f"short_answers_{batch + '_' if batch else ''}{name}.jsonl"
        if short.is_file():
            out += [("dev", group, c) for c in load_dataset(short).cases]
    for kind in ("dev", "heldout"):
        extra = QUESTIONS / f"unanswerable_{kind}_{name}.jsonl"
        if extra.is_file():
            out += [(kind, "unanswerable", c) for c in load_dataset(extra).cases]
    return out


def features(name: str, index_dir: Path, cache: Path, settings: dict[str, str] | None = None,
             batches: tuple[str, ...] = SHORT_BATCHES) -> list[Row]:
    """One row per question (see the module docstring), retrieved with the index's settings and
    `settings` over them (`--setting`); cached as JSON."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from rag.api import RAG
    from rag.parts import default_reranker

    work = Path(tempfile.mkdtemp(prefix=f"decline-{name}-"))
    shutil.copytree(index_dir, work / "index")
    rag = RAG.open(work / "index", **(settings or {}))
    reranker = default_reranker(replace(rag.settings, rerank_model="packaged",
                                        rerank_max_tokens=RERANK_TOKENS))
    rows = []
    started = time.perf_counter()
    for kind, group, case in question_sets(name, batches):
        hits = rag.retrieve(case.question)
        texts = [h.chunk.text for h in hits]
        evidence = retrieval_evidence(case.question, texts,
                                      [h.scores["dense"] for h in hits if "dense" in h.scores],
                                      sources=[h.chunk.source for h in hits],
                                      documents=(lambda: rag.index.catalog.document_terms(
                                          [h.chunk.chunk_id for h in hits]))
                                      if rag.settings.decline_names_in_documents else None)
        sentences = distinct_sentences(texts)
        rows.append({"id": case.id, "kind": kind, "set": group, "answerable": case.answerable,
                     "dense_top": evidence.dense_top if evidence.dense_top is not None else -1.0,
                     "coverage": evidence.coverage, "missing_names": bool(evidence.missing_names),
                     "rerank_top": max(reranker.scores(case.question, texts), default=NONE),
                     "sentence_top": max(reranker.scores(case.question, sentences), default=NONE),
                     "sentences": len(sentences)})
    rag.close()
    shutil.rmtree(work, ignore_errors=True)
    print(f"{name}: {len(rows)} questions in {time.perf_counter() - started:.0f} s", flush=True)
    cache.write_text(json.dumps(rows))
    return rows


def candidates(values: list[float]) -> list[float]:
    """Thresholds midway between neighbouring observed scores (and below/above them all): every
    threshold in between makes the same decisions, the midpoint leaves the most margin."""
    v = sorted(set(values))
    return [v[0] - 1e-6] + [(a + b) / 2 for a, b in zip(v, v[1:])] + [v[-1] + 1e-6]


SCORES = ("dense", "rerank", "sentence")  # the thresholds' names, and their row fields below
FIELD = {"dense": "dense_top", "rerank": "rerank_top", "sentence": "sentence_top"}


def grids(rows: list[Row], most: int = 150) -> dict[str, list[float]]:
    """Candidate thresholds per score, thinned evenly to `most`."""
    out = {}
    for name in SCORES:
        values = candidates([r[FIELD[name]] for r in rows])
        step = max(1, len(values) // most)
        out[name] = values[::step] + ([values[-1]] if (len(values) - 1) % step else [])
    return out


def thinned(grid: dict[str, list[float]], params: tuple[str, ...], pairs: int = 150 ** 2
            ) -> list[list[float]]:
    """Each parameter's grid, thinned evenly so that a rule tries at most about `pairs`
    combinations (a three-threshold rule gets ~28 values per threshold, not 150)."""
    per = max(2, int(round(pairs ** (1 / len(params)))))
    out = []
    for p in params:
        values = grid[p]
        step = max(1, -(-len(values) // per))
        out.append(values[::step] + ([values[-1]] if (len(values) - 1) % step else []))
    return out


def answerable_sets(rows: list[Row]) -> dict[str, list[Row]]:
    sets: dict[str, list[Row]] = {}
    for r in rows:
        if r["answerable"]:
            sets.setdefault(r["set"], []).append(r)
    return sets


def columns(rows: list[Row]) -> dict[str, np.ndarray]:
    """The rows as numpy columns, so a rule decides every row in one call."""
    return {k: np.array([r[k] for r in rows]) for k in
            ("dense_top", "coverage", "missing_names", "rerank_top", "sentence_top",
             "model_declined", "answerable")}


def choose(corpora: dict[str, list[Row]], max_answerable: float, grid: dict[str, list[float]]):
    """The (family, thresholds) the fold rule picks on `corpora` (see the module docstring)."""
    rows = [r for rs in corpora.values() for r in rs]
    cols = columns(rows)
    answerable = cols["answerable"].astype(bool)
    groups = {}  # each answerable set of each corpus: its row positions
    for i, r in enumerate(rows):
        if r["answerable"]:
            groups.setdefault((r["corpus"], r["set"]), []).append(i)
    limits = [(np.array(ix), max_answerable * len(ix)) for ix in groups.values()]
    best = None
    for order, (family, (params, build)) in enumerate(RULES.items()):
        for values in itertools.product(*thinned(grid, params)):
            declined = end_to_end(build(*values))(cols)
            if any(declined[ix].sum() > limit + 1e-9 for ix, limit in limits):
                continue
            una = int(declined[~answerable].sum())
            ans = int(declined[answerable].sum())
            key = (una, -ans, -order)
            if best is None or key > best[0]:
                best = (key, family, tuple(float(v) for v in values))
    return best[1], best[2]


def choose_sentence_bar(corpora: dict[str, list[Row]], grid: dict[str, list[float]],
                        dense: float, rerank: float) -> tuple[str, tuple[float, ...]]:
    """`--choose-sentence-bar`: today's gate (`dense`, `rerank`) kept, only the sentence bar
    chosen, as the one with the fewest errors on `corpora` (answerable declined + unanswerable
    answered, end to end); ties go to the highest bar, which lets the fewest questions through.
    Unlike `choose`, a rescued answerable question counts even below the 5% cap."""
    cols = columns([r for rows in corpora.values() for r in rows])
    answerable = cols["answerable"].astype(bool)
    build = RULES["gate&rerank&sentence"][1]
    best = None
    for bar in grid["sentence"]:
        declined = end_to_end(build(dense, rerank, bar))(cols)
        errors = int(declined[answerable].sum() + (~declined[~answerable]).sum())
        if best is None or (errors, -bar) <= best[0]:
            best = ((errors, -bar), bar)
    return "gate&rerank&sentence", (dense, rerank, float(best[1]))


def errors(rows: list[Row], rule: Rule) -> int:
    """Answerable questions declined plus unanswerable ones answered."""
    return sum(bool(rule(r)) != (not r["answerable"]) for r in rows)


def figures(rows: list[Row], rule: Rule) -> dict:
    out = {f"answerable_declined_{group}": f"{sum(map(rule, g))}/{len(g)}"
           for group, g in answerable_sets(rows).items()}
    una = [r for r in rows if not r["answerable"]]
    out["unanswerable_declined"] = f"{sum(map(rule, una))}/{len(una)}"
    out["errors"] = errors(rows, rule)
    return out


def pr_curve(family: str, fixed: tuple, rows: list[Row], points: int = 10) -> list[dict]:
    """Declining as detection of unanswerable questions, sweeping the rule's last threshold."""
    params, build = RULES[family]
    sweep = grids(rows)[params[-1]]
    positives = sum(not r["answerable"] for r in rows)
    out = []
    for t in sweep[:: max(1, len(sweep) // points)]:
        rule = end_to_end(build(*fixed[:-1], t))
        declined = [r for r in rows if rule(r)]
        true = sum(not r["answerable"] for r in declined)
        out.append({"threshold": round(t, 4), "declined": len(declined),
                    "precision": true / len(declined) if declined else 1.0,
                    "recall": true / positives if positives else float("nan")})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=INDEX_DIR")
    parser.add_argument("--max-answerable-decline", type=float, default=0.05)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tune_decline")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--answers", action="append", default=[], metavar="NAME=REPORT_JSON",
                        help="count this eval report's model/support declines (end to end)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="retrieve with this setting, e.g. named_dense_factor=0.43 (use a "
                             "--cache of its own)")
    parser.add_argument("--short-batches", default="a,b,c,d,e",
                        help="which short-answer batches are dev sets (a = the first, "
                             "short_answers_NAME.jsonl); one --cache per choice")
    parser.add_argument("--choose-sentence-bar", action="store_true",
                        help="keep today's gate and choose only decline_rescue_sentence, by the "
                             "fewest errors (rule 7, README 'Choosing quality settings')")
    args = parser.parse_args()
    batches = tuple("" if b == "a" else b for b in args.short_batches.split(",") if b)
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = dict(item.split("=", 1) for item in args.set)
    overrides = dict(item.split("=", 1) for item in args.setting)
    data = {n: features(n, Path(d), args.cache / f"{n}.v3.json", overrides, batches)
            for n, d in sets.items()}
    for name, rows in data.items():
        for row in rows:
            row.update(corpus=name, model_declined=False)
    for item in args.answers:
        name, report = item.split("=", 1)
        asked_and_declined = model_declined(Path(report))
        for row in data[name]:
            row["model_declined"] = row.get("model_declined", False) or row["id"] in asked_and_declined
    dev = {n: [r for r in rows if r["kind"] == "dev"] for n, rows in data.items()}
    heldout = [r for rows in data.values() for r in rows if r["kind"] == "heldout"]
    pooled = [r for rows in dev.values() for r in rows]
    grid = grids(pooled)
    now = Settings()  # today's shipped rule, the one a new choice must beat
    today = end_to_end(RULES["gate&rerank"][1](now.decline_min_dense, now.decline_rescue_rerank))
    report: dict = {"folds": {}, "max_answerable_decline": args.max_answerable_decline}

    def chooser(corpora: dict[str, list[Row]]) -> tuple[str, tuple[float, ...]]:
        if args.choose_sentence_bar:
            return choose_sentence_bar(corpora, grid, now.decline_min_dense,
                                       now.decline_rescue_rerank)
        return choose(corpora, args.max_answerable_decline, grid)

    for held in dev:
        others = {n: rows for n, rows in dev.items() if n != held}
        family, values = chooser(others)
        rule = end_to_end(RULES[family][1](*values))
        report["folds"][held] = {"rule": family, "thresholds": values,
                                 "left_out": figures(dev[held], rule),
                                 "today": figures(dev[held], today)}
        print(f"{held:18} chose {family}{tuple(round(v, 3) for v in values)}: "
              f"{report['folds'][held]['left_out']} | today {report['folds'][held]['today']}")
    left_out = sum(f["left_out"]["errors"] for f in report["folds"].values())
    kept = sum(f["today"]["errors"] for f in report["folds"].values())
    report["left_out_errors"] = {"chosen": left_out, "today": kept}
    print(f"left-out errors summed over the folds: {left_out} (today's gate: {kept})")
    family, values = chooser(dev)
    rule = end_to_end(RULES[family][1](*values))
    report["all"] = {"rule": family, "thresholds": values,
                     "dev": {n: figures(rows, rule) for n, rows in dev.items()},
                     "heldout_unanswerable_declined": f"{sum(map(rule, heldout))}/{len(heldout)}",
                     "today_heldout_unanswerable_declined": f"{sum(map(today, heldout))}/{len(heldout)}",
                     "pr_curve": pr_curve(family, values, pooled)}
    print(f"\nchosen on all corpora: {family}{tuple(round(v, 3) for v in values)}; held-out "
          f"unanswerable declined {report['all']['heldout_unanswerable_declined']} (today's gate: "
          f"{report['all']['today_heldout_unanswerable_declined']})")
    for p in report["all"]["pr_curve"]:
        print(f"  threshold {p['threshold']:8.3f}: declined {p['declined']:3d} precision "
              f"{p['precision']:.2f} recall {p['recall']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
