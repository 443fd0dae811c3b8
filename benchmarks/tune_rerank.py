"""The cross-encoder over the fused top 10 with the fusion weights under it, chosen by
leave-one-dataset-out over five dev sets (issue 16; README "The cross-encoder by default").

Grid: plain or titled vectors (indexes built with and without `--set embed_source_titles=true`)
x z-score dense weight 0.8-1.4 x named factor 1.0 / 0.43 / 0.6 x no rerank or the packaged
cross-encoder over the top 10 (blend 0.5 / 0.75 / 1.0, pairs cut to 256 tokens, the passage alone
or after its file's name, i.e. `rerank_source_titles`). Candidate lists and cross-encoder scores are
fetched once and cached as JSON; each set's figure is the setting the other four chose
(objective Recall@5 + 0.5 MRR@10, as benchmarks/tune_retrieval.py). ARAGOG is scored with its
reference answers as references. ~15 min on 2 cores with a cold cache:

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/tune_rerank.py --indexes /work/evalstate \
        --out /tmp/tune_rerank   # reads DIR/idx_<corpus> and DIR/idxt_<corpus>
"""
import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
import tune_retrieval as T  # noqa: E402
from retrievers.records import titled_text  # noqa: E402

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--indexes", type=Path, required=True, help="folder with idx_<corpus> and idxt_<corpus>")
ARGS.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tune_rerank")
OPTS = ARGS.parse_args() if __name__ == "__main__" else ARGS.parse_args(["--indexes", "."])
OUT = OPTS.out; CACHE = OUT / "cache"
Q = REPO / "eval" / "questions"
SETS = {  # name: (corpus, questions file or None, answer_as_reference)
    "paul_graham": ("paul_graham", None, False),
    "blockchain_solana": ("blockchain_solana", None, False),
    "aragog_arxiv": ("aragog_arxiv", None, True),
    "multihop_pg": ("paul_graham", Q / "multihop_dev_paul_graham.jsonl", False),
    "multihop_aragog": ("aragog_arxiv", Q / "multihop_dev_aragog_arxiv.jsonl", False),
}
STOCK = {"paul_graham": 0.909, "blockchain_solana": 0.897, "aragog_arxiv": 0.357,
         "multihop_pg": 0.808, "multihop_aragog": 0.389}

def candidates(name, vec):
    """tune_retrieval's candidate lists (with each chunk's source) from the plain or titled index."""
    corpus, qfile, aar = SETS[name]
    index_dir = OPTS.indexes / f"{'idxt' if vec == 'titled' else 'idx'}_{corpus}"
    return T.candidates(name, index_dir, CACHE / f"{name}.{vec}.json", 50, aar, qfile)

FUSED = [("zscore", w, 50, 0, 0.0, round(w * f, 4)) for w, f in itertools.product((0.8, 1.0, 1.2, 1.4), (1.0, 0.43, 0.6))]

def fused(case, q, s):
    return T.fused_ids(case, "zscore", T.weight_for(q, s[1], s[5]), 50)

def ce_scores(name, vec, data, reranker):
    cache = CACHE / f"{name}.{vec}.ce.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    t = []
    for case, q in zip(data["cases"], data["questions"]):
        need = set()
        for s in FUSED:
            need.update(c for c, _ in fused(case, q, s)[:10])
        for form in ("plain", "title"):
            have = scores.setdefault(f"{form}|{case['id']}", {})
            miss = sorted(need - have.keys())
            if not miss:
                continue
            texts = [titled_text(data["texts"][c], data["sources"][c], form == "title") for c in miss]
            st = time.perf_counter(); vals = reranker.scores(q, texts); t.append((time.perf_counter() - st) / len(miss))
            have.update(zip(miss, vals))
    cache.write_text(json.dumps(scores))
    if t: print(f"{name} {vec}: ce {statistics.median(t)*1000:.1f} ms/pair", flush=True)
    return scores

def evaluate(data, setting, ce, memo):
    vec, s, n, blend, form = setting
    ranked = []
    for case, q in zip(data["cases"], data["questions"]):
        f = fused(case, q, s)
        if n:
            sc = ce[f"{form}|{case['id']}"]
            ranked.append(T.reranked(f, n, blend, sc.__getitem__)[:10])
        else:
            ranked.append([c for c, _ in f[:10]])
    return T.score_lists(ranked, data, memo)

def main():
    from rag.models.reranker import packaged_reranker_dir
    from retrievers.rerank import OnnxCrossEncoderReranker
    rr = OnnxCrossEncoderReranker(packaged_reranker_dir(), max_length=256)
    settings = [(v, s, 0, 0.0, "plain") for v in ("plain", "titled") for s in FUSED] + \
               [(v, s, 10, b, form) for v in ("plain", "titled") for s in FUSED for b in (0.5, 0.75, 1.0) for form in ("plain", "title")]
    figs, single = {}, {}
    for name in SETS:
        for vec in ("plain", "titled"):
            data = candidates(name, vec)
            ce = ce_scores(name, vec, data, rr)
            memo = {}
            for st in settings:
                if st[0] != vec: continue
                figs[(name, st)] = evaluate(data, st, ce, memo)
            for r in ("bm25", "dense"):
                ranked = [[c for c, _ in case[r][:10]] for case in data["cases"]]
                single[(name, vec, r)] = T.score_lists(ranked, data, memo)["recall@5"]
    obj = T.objective
    report = {}
    for left in SETS:
        others = [n for n in SETS if n != left]
        best = max(settings, key=lambda st: statistics.mean(obj(figs[(n, st)]) for n in others))
        f = figs[(left, best)]
        bs = max(single[(left, best[0], r)] for r in ("bm25", "dense"))
        today = figs[(left, ("plain", FUSED[9], 0, 0.0, "plain"))]  # 1.4 x 1.0
        report[left] = {"chosen": str(best), "r5": f["recall@5"], "r10": f["recall@10"], "mrr": f["mrr@10"],
                        "best_single": bs, "bar": max(bs + 0.02, STOCK[left]), "today_r5": today["recall@5"]}
        print(f"{left:18s} chosen {best}  R@5 {f['recall@5']:.3f} (today {today['recall@5']:.3f}) R@10 {f['recall@10']:.3f} "
              f"MRR {f['mrr@10']:.3f} | best single {bs:.3f} +0.02 / stock {STOCK[left]} -> bar {max(bs+0.02, STOCK[left]):.3f}", flush=True)
    best_all = max(settings, key=lambda st: statistics.mean(obj(figs[(n, st)]) for n in SETS))
    print("chosen on all five:", best_all, {n: round(figs[(n, best_all)]["recall@5"], 3) for n in SETS})
    # top 8 settings on all five, for context
    for st in sorted(settings, key=lambda st: -statistics.mean(obj(figs[(n, st)]) for n in SETS))[:8]:
        print("  ", st, {n: round(figs[(n, st)]["recall@5"], 3) for n in SETS})
    json.dump({"report": report, "all": str(best_all),
               "figs": {f"{n}|{st}": v for (n, st), v in figs.items()},
               "single": {f"{k}": v for k, v in single.items()}}, open(OUT / "tune_rerank.json", "w"), indent=1)

if __name__ == "__main__":
    CACHE.mkdir(parents=True, exist_ok=True)
    main()
