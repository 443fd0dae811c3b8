"""Retrieval settings chosen by leave-one-dataset-out (LODO) over the dev sets, reported on the
set left out (issue 16's method).

Fusion settings chosen on two QA sets did not carry over to held-out sets, so no setting here is
picked on the set it is reported on: for each dev set X, every candidate setting is scored on
the other dev sets, the best by their mean objective is chosen, and X's figure is that setting's
figure on X. The shipped default is the setting chosen on all dev sets together; the report says
whether the per-fold choices agreed with it.

How: each dev set's prepared index (built by `rag ingest`, the evaluation suite's indexes) is
opened read-only; for every question the BM25 and dense candidate lists (up to `--max-depth`,
with scores) are fetched once and cached as JSON; fusion settings are then replayed offline with
the project's own `retrievers.fusion.fuse` over cut candidate lists, exactly what
`HybridRetriever` does at that `candidate_k`. Metrics are the evaluation suite's
(`eval.retrieval_metrics`: recall@5, recall@10, mrr@10 against the reference contexts).

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/tune_retrieval.py \
        --set paul_graham=/work/evalstate/idx_pg --set blockchain_solana=/work/evalstate/idx_solana \
        --set aragog_arxiv=/work/evalstate/idx_aragog [--json OUT]

ARAGOG gives no reference contexts; with `--answer-as-reference aragog_arxiv` a chunk that holds
most (60%) of the reference answer's words is its relevant chunk: a weaker, answer-bearing label,
marked as such in the report. `--questions NAME=FILE` takes a set's questions from FILE instead
(e.g. the multi-hop dev sets in eval/questions, over the index of their corpus).

`--named` adds a dense weight of its own for questions that name something (`names.name_words`:
a capitalised word not opening a sentence, a word with digits), i.e. `named_dense_factor`: z-score
fusion at 50 candidates, plain dense weight x named weight over a small grid. This run chose
dense 1.2, named 0.6 (factor 0.5) on 2026-12-02; it is opt-in, as the answers did not follow
(README "Choosing quality settings"):

    .venv/bin/python benchmarks/tune_retrieval.py --named --no-fixed-grid \
        --set paul_graham=IDX_PG --set blockchain_solana=IDX_SOLANA --set aragog_arxiv=IDX_ARAGOG \
        --answer-as-reference aragog_arxiv \
        --set multihop_pg=IDX_PG --questions multihop_pg=eval/questions/multihop_dev_paul_graham.jsonl \
        --set multihop_aragog=IDX_ARAGOG \
        --questions multihop_aragog=eval/questions/multihop_dev_aragog_arxiv.jsonl

`--named-factors 0.43,0.6,0.8` adds each plain dense weight (0.8-2.0) times each factor instead
of the absolute named grid; over indexes built with `--set embed_source_titles=true` it chose
dense 1.0 x 0.43 on 2026-12-03 (README "File names in the embedded text"; opt-in).

Objective: recall@5 + 0.5 * mrr@10 (the top five are what an answer is written from; MRR
breaks ties toward putting the evidence first). Unanswerable cases have no references and are
not scored.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa"

from eval.datasets import load_dataset  # noqa: E402
from eval.retrieval_metrics import is_hit, mrr_at, recall_at  # noqa: E402
from retrievers.fusion import fuse, weights_for, zscores  # noqa: E402

FUSIONS = ("zscore", "weighted", "rrf")
DENSE_WEIGHTS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0)
DEPTHS = (10, 20, 30, 50, 100)
RERANK_DEPTHS = (10, 20, 30)
RERANK_ALPHAS = (1.0, 0.75, 0.5, 0.25)
# --named: (plain dense weight, dense weight for a question naming something), z-score, 50 deep.
NAMED_PLAIN = (1.0, 1.2, 1.4, 1.7, 2.0)
NAMED_WEIGHTS = (0.4, 0.6, 0.8, 1.0, 1.2)
# --named-factors: plain dense weights, each with every given factor (2026-12-03, titled vectors).
FACTOR_PLAIN = (0.8, 1.0, 1.2, 1.4, 1.7, 2.0)
# Today's defaults (rag/config.py): (fusion, dense_weight, candidate_k, rerank top n, blend[,
# dense weight of a named question = dense_weight * named_dense_factor, where that differs]).
CURRENT = ("zscore", 1.4, 50, 0, 0.0)


def unpack(setting: tuple) -> tuple:
    """(fusion, weight, depth, rerank n, blend, named weight) of any setting tuple; a setting
    without a named weight uses its one weight for every question."""
    fusion, weight, depth, n, alpha, named = (*setting, 0, 0.0, None)[:6] if len(setting) == 3 \
        else (*setting, None)[:6]
    return fusion, weight, depth, n, alpha, weight if named is None else named


def objective(figures: dict[str, float]) -> float:
    return figures["recall@5"] + 0.5 * figures["mrr@10"]


def candidates(name: str, index_dir: Path, cache: Path, max_depth: int,
               answer_as_reference: bool = False, questions: Path | None = None,
               index_settings: dict[str, str] | None = None) -> dict:
    """{"cases": [{"id", "refs", "bm25": [[id, score]...], "dense": [...]}], "texts": {id: text},
    "questions": [...]}: fetched once per index and question set, then read from `cache`."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from rag.api import RAG

    dataset = load_dataset(questions or QA / name / "normalized.jsonl")
    # A copy: the evaluation suite's index may be open elsewhere (Milvus Lite allows one process).
    work = Path(tempfile.mkdtemp(prefix=f"tune-{name}-"))
    shutil.copytree(index_dir, work / "index")
    rag = RAG.open(work / "index", **(index_settings or {}))
    retriever = rag.retriever
    out, texts, sources, questions = [], {}, {}, []
    started = time.perf_counter()
    for case in dataset.cases:
        refs = case.reference_contexts
        if not refs and answer_as_reference and case.answerable and case.reference_answer:
            refs = [case.reference_answer]
        if not refs:
            continue
        lists = {n: search(case.question, max_depth, None) for n, search in retriever.retrievers.items()}
        ids = {cid for ranked in lists.values() for cid, _ in ranked}
        chunks = rag.index.chunks(sorted(ids - texts.keys()))
        texts.update({cid: chunk.text for cid, chunk in chunks.items()})
        sources.update({cid: chunk.source for cid, chunk in chunks.items()})
        questions.append(case.question)
        out.append({"id": case.id, "refs": refs,
                    **{n: [[cid, float(s)] for cid, s in ranked] for n, ranked in lists.items()}})
    rag.close()
    shutil.rmtree(work, ignore_errors=True)
    data = {"cases": out, "texts": texts, "sources": sources, "questions": questions,
            "seconds": round(time.perf_counter() - started, 1)}
    cache.write_text(json.dumps(data))
    return data


def score_lists(ranked_ids: list[list[str]], data: dict, memo: dict) -> dict[str, float]:
    r5 = r10 = mrr = 0.0
    for ids, case in zip(ranked_ids, data["cases"]):
        refs = case["refs"]
        matrix = []
        for cid in ids[:10]:
            key = (case["id"], cid)
            if key not in memo:
                memo[key] = [is_hit(data["texts"][cid], ref) for ref in refs]
            matrix.append(memo[key])
        r5 += recall_at(matrix, 5, len(refs))
        r10 += recall_at(matrix, 10, len(refs))
        mrr += mrr_at(matrix, 10)
    n = len(data["cases"]) or 1
    return {"recall@5": r5 / n, "recall@10": r10 / n, "mrr@10": mrr / n}


def fused_ids(case: dict, fusion: str, weight: float, depth: int) -> list[tuple[str, float]]:
    rankings = {"bm25": [tuple(x) for x in case["bm25"][:depth]],
                "dense": [tuple(x) for x in case["dense"][:depth]]}
    return [(f.chunk_id, f.score) for f in fuse(fusion, rankings, {"bm25": 1.0, "dense": weight})]


def weight_for(question: str, weight: float, named: float) -> float:
    """The dense weight `HybridRetriever` gives this question (the same `fusion.weights_for`)."""
    return weights_for(question, {"dense": weight}, {"dense": named})["dense"]


def reranked(fused: list[tuple[str, float]], n: int, alpha: float, rerank_score) -> list[str]:
    """The fused top-n reordered by alpha * z(cross-encoder) + (1 - alpha) * z(fused); the rest
    keep their fused order below them."""
    head = fused[:n]
    ce = zscores([rerank_score(cid) for cid, _ in head])
    fz = zscores([score for _, score in head])
    order = sorted(range(len(head)), key=lambda i: -(alpha * ce[i] + (1 - alpha) * fz[i]))
    return [head[i][0] for i in order] + [cid for cid, _ in fused[n:]]


def evaluate(setting: tuple, data: dict, memo: dict, rerank_scores: dict | None = None
             ) -> dict[str, float]:
    fusion, weight, depth, n, alpha, named = unpack(setting)
    ranked = []
    for case, question in zip(data["cases"], data["questions"]):
        if fusion == "bm25" or fusion == "dense":
            ranked.append([cid for cid, _ in case[fusion][:10]])
            continue
        fused = fused_ids(case, fusion, weight_for(question, weight, named), depth)
        if n:
            scores = rerank_scores[case["id"]]
            ranked.append(reranked(fused, n, alpha, scores.__getitem__)[:10])
        else:
            ranked.append([cid for cid, _ in fused[:10]])
    return score_lists(ranked, data, memo)


def grid() -> list[tuple]:
    return [(f, w, d, 0, 0.0) for f, w, d in itertools.product(FUSIONS, DENSE_WEIGHTS, DEPTHS)]


def named_grid() -> list[tuple]:
    return [("zscore", w, 50, 0, 0.0, m) for w, m in itertools.product(NAMED_PLAIN, NAMED_WEIGHTS)
            if m != w]


def named_factor_grid(factors: list[float]) -> list[tuple]:
    """`--named-factors`: dense weight w for every question, w * f for a question naming something
    (i.e. `named_dense_factor` f), z-score at 50 candidates."""
    return [("zscore", w, 50, 0, 0.0, round(w * f, 4)) for w, f in itertools.product(FACTOR_PLAIN, factors)]


def rerank_grid() -> list[tuple]:
    return [(f, w, d, n, a) for f, w, d, n, a in itertools.product(
        ("zscore", "rrf"), (0.8, 1.0, 1.4), (20, 50), RERANK_DEPTHS, RERANK_ALPHAS)]


def rerank_cache(name: str, data: dict, settings: list[tuple], cache: Path, reranker) -> dict:
    """Cross-encoder scores of every (question, chunk) pair some setting's fused top-n holds,
    computed once and kept in `cache` (JSON)."""
    scores: dict[str, dict[str, float]] = json.loads(cache.read_text()) if cache.is_file() else {}
    questions = {c["id"]: q for c, q in zip(data["cases"], data.get("questions", []))}
    timings = []
    for case in data["cases"]:
        need = set()
        for fusion, weight, depth, n, _ in settings:
            need.update(cid for cid, _ in fused_ids(case, fusion, weight, depth)[:n])
        have = scores.setdefault(case["id"], {})
        missing = sorted(need - have.keys())
        if missing:
            started = time.perf_counter()
            values = reranker.scores(questions[case["id"]], [data["texts"][cid] for cid in missing])
            timings.append((time.perf_counter() - started) / len(missing))
            have.update(zip(missing, values))
    cache.write_text(json.dumps(scores))
    if timings:
        print(f"{name}: cross-encoder {statistics.median(timings) * 1000:.1f} ms per pair (median)")
    return scores


def describe(setting: tuple) -> str:
    fusion, weight, depth, n, alpha, named = unpack(setting)
    if fusion in ("bm25", "dense"):
        return fusion
    text = f"{fusion} dense_weight={weight} candidate_k={depth}"
    if named != weight:
        text += f" named={named:g} (factor {named / weight:.3g})"
    return text + (f" rerank top {n} blend {alpha}" if n else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=INDEX_DIR",
                        help="a dev set (folder name under shared/data/qa) and its prepared index")
    parser.add_argument("--max-depth", type=int, default=max(DEPTHS))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tune_retrieval")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--rerank", metavar="MODEL", default="",
                        help="also try reranking the fused top-n with this rerank_model "
                             "(e.g. packaged), blended with the fused score")
    parser.add_argument("--answer-as-reference", action="append", default=[], metavar="NAME",
                        help="for a set without reference contexts (ARAGOG): a chunk holding most "
                             "of the reference answer's words counts as a hit (answer-bearing "
                             "chunks, a weaker label; said so in the report)")
    parser.add_argument("--questions", action="append", default=[], metavar="NAME=FILE",
                        help="take set NAME's questions from FILE (default: its normalized.jsonl)")
    parser.add_argument("--named", action="store_true",
                        help="also try a dense weight of its own for questions naming something")
    parser.add_argument("--named-factors", metavar="F,F,...", default="",
                        help="also try each plain dense weight with these named_dense_factor "
                             "values (e.g. 0.43,0.6,0.8)")
    parser.add_argument("--no-fixed-grid", action="store_true",
                        help="leave out the fixed-weight grid (fusions x weights x depths) except "
                             "z-score at 50 candidates")
    parser.add_argument("--index-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="open every index with this setting when fetching candidates, e.g. "
                             "bm25_source_terms=true (use a --cache of its own)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    index_settings = dict(item.split("=", 1) for item in args.index_setting)
    sets = dict(item.split("=", 1) for item in args.set)
    questions = {name: Path(f) for name, f in (item.split("=", 1) for item in args.questions)}
    data = {name: candidates(name, Path(d), args.cache / f"{name}.json", args.max_depth,
                             name in args.answer_as_reference, questions.get(name), index_settings)
            for name, d in sets.items()}
    memos = {name: {} for name in data}
    settings = grid()
    if args.no_fixed_grid:
        settings = [s for s in settings if s[0] == "zscore" and s[2] == 50]
    if args.named:
        settings += named_grid()
    if args.named_factors:
        settings += [s for s in named_factor_grid([float(f) for f in args.named_factors.split(",")])
                     if s not in settings]
    if CURRENT not in settings:
        settings.append(CURRENT)
    rerank_scores = {}
    if args.rerank:
        from rag.config import Settings
        from rag.parts import default_reranker

        reranker = default_reranker(Settings(rerank_model=args.rerank))
        settings += rerank_grid()
        rerank_scores = {name: rerank_cache(name, d, rerank_grid(), args.cache / f"{name}.rerank.json",
                                            reranker) for name, d in data.items()}
    table = {name: {s: evaluate(s, d, memos[name], rerank_scores.get(name)) for s in settings}
             for name, d in data.items()}
    singles = {name: {s: evaluate((s, 0, 0, 0, 0.0), d, memos[name]) for s in ("bm25", "dense")}
               for name, d in data.items()}
    current = CURRENT

    def best_on(names: list[str]) -> tuple:
        # Ties: one weight for all questions, then the weight nearest 1, then fewer candidates.
        return max(settings, key=lambda s: (statistics.mean(objective(table[n][s]) for n in names),
                                            unpack(s)[5] == s[1], -abs(s[1] - 1.0), -s[2]))

    report = {"folds": {}, "sets": list(data), "answer_as_reference": args.answer_as_reference}
    print(f"{'held-out set':20} {'chosen on the others':44} {'R@5':>6} {'R@10':>6} {'MRR':>6}"
          f" | {'bm25 R@5':>8} {'dense R@5':>9} {'today R@5':>9}")
    for held in data:
        others = [n for n in data if n != held]
        chosen = best_on(others)
        fig = table[held][chosen]
        best_single = max(singles[held]["bm25"]["recall@5"], singles[held]["dense"]["recall@5"])
        report["folds"][held] = {"chosen_on": others, "setting": describe(chosen), "figures": fig,
                                 "bm25": singles[held]["bm25"], "dense": singles[held]["dense"],
                                 "today": table[held][current],
                                 "meets_single_plus_0.02": fig["recall@5"] >= best_single + 0.02}
        print(f"{held:20} {describe(chosen):44} {fig['recall@5']:6.3f} {fig['recall@10']:6.3f} "
              f"{fig['mrr@10']:6.3f} | {singles[held]['bm25']['recall@5']:8.3f} "
              f"{singles[held]['dense']['recall@5']:9.3f} {table[held][current]['recall@5']:9.3f}")
    overall = best_on(list(data))
    report["chosen_on_all"] = describe(overall)
    report["all_figures"] = {n: table[n][overall] for n in data}
    report["candidate_seconds"] = {n: d.get("seconds") for n, d in data.items()}
    print(f"\nchosen on all sets (the default to ship): {describe(overall)}")
    for n in data:
        f = table[n][overall]
        print(f"  {n:20} R@5 {f['recall@5']:.3f} R@10 {f['recall@10']:.3f} MRR@10 {f['mrr@10']:.3f}"
              "  (in-sample: for reference only)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
