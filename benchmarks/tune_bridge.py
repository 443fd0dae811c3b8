"""The bridge round (`bridge_seeds`, `bridge_slots`, `bridge_new_source`, `bridge_rerank_gate`;
retrievers/bridge.py) under today's defaults, chosen by leave-one-dataset-out over nine dev sets
(issue 16; README "Choosing quality settings", rules 19 and 27).

Sets: benchmarks/tune_phrases.py's eight (the five of tune_rerank.py: Paul Graham, Solana, ARAGOG
with its answers as references, multi-hop Paul Graham and ARAGOG; and each corpus's short-answer
files pooled) and multi-hop MuSiQue (eval/corpora/README.md; its index DIR/idx_musique). For
each question today's served top 5 (fusion, then the packaged cross-encoder) is computed once
with `RAG.retrieve`; then each setting's `bridge_round` runs on it with the retriever's own
second-round search (`HybridRetriever._candidates`, as `HybridRetriever.retrieve` calls it),
ungated and gated by the cross-encoder. The metric is served Recall@5 (eval's `is_hit`), the
choice the best mean over the other eight sets (ties: off, then fewer seeds, fewer slots, no
new-source rule). Per-set results are cached as JSON in --out; delete them to measure again.

2026-12-05 (AMD EPYC, 2 cores, 26 min): left-out sums 6.485 ungated and 6.525 gated against
today's 6.550, so the bridge stays off (README, rule 19). Again with MuSiQue as a ninth set (36
min): gated, the left-out sum 7.250 against 7.235, but multi-hop ARAGOG left out 0.506 against
0.528, so it stays off (rule 27).

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/tune_bridge.py --indexes DIR \
        --out /tmp/tune_bridge   # reads DIR/idx_<corpus>
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
import tune_phrases  # noqa: E402  (its eight dev sets)
from eval.datasets import load_dataset  # noqa: E402
from eval.retrieval_metrics import is_hit, recall_at  # noqa: E402
from rag.api import RAG  # noqa: E402
from retrievers.bridge import bridge_round  # noqa: E402
from retrievers.hybrid import HYBRID  # noqa: E402

QA = REPO.parent / "shared" / "data" / "qa"
SETS = {  # name: (corpus, questions file or "short:<corpus>" or None, answers as references)
    **tune_phrases.SETS,
    "multihop_musique": ("musique", tune_phrases.Q / "multihop_dev_musique.jsonl", False),
}
TODAY = "off"
GRID = [(s, l, n) for s in (1, 2, 3) for l in (1, 2) for n in (False, True)]
TOP_K = 5


def name_of(seeds: int, slots: int, new_source: bool, gate: bool) -> str:
    return f"{'gated' if gate else 'plain'} {seeds}-{slots}{' new' if new_source else ''}"


def question_files(corpus: str, questions) -> list[Path]:
    if questions is None:
        return [QA / corpus / "normalized.jsonl"]
    if isinstance(questions, str):  # "short:<corpus>": every short-answer batch
        return sorted(tune_phrases.Q.glob(f"short_answers*_{corpus}.jsonl"))
    return [questions]


def cases_of(name: str) -> list:
    """The set's questions that have references to score served hits against (ARAGOG's
    answers stand in for the contexts its rows lack, as benchmarks/tune_retrieval.py scores it)."""
    corpus, questions, answers_as_references = SETS[name]
    cases = [c for f in question_files(corpus, questions) for c in load_dataset(f).cases]
    for c in cases:
        if answers_as_references and not c.reference_contexts and c.answerable and c.reference_answer:
            c.reference_contexts = [c.reference_answer]
    return [c for c in cases if c.reference_contexts]


def served_recall(case, hits) -> float:
    matrix = [[is_hit(h.chunk.text, r) for r in case.reference_contexts] for h in hits]
    return recall_at(matrix, len(matrix), len(case.reference_contexts))


def measure(name: str, index_dir: Path) -> list[dict]:
    """Per question: served Recall@5 today and under every setting, and each one's extra ms."""
    rag = RAG.open(index_dir)
    retriever = rag.retriever
    if retriever.reranker is None:
        raise SystemExit("the packaged cross-encoder is not installed: today's defaults need it")
    depth = max(retriever.candidate_k, TOP_K, retriever.rerank_top_n)
    search = lambda q: retriever._candidates(q, HYBRID, depth, 2 * TOP_K, None, False)[0]  # noqa: E731
    cases = cases_of(name)
    rag.retrieve(cases[0].question, top_k=1)  # load the models before timing
    rows = []
    for case in cases:
        started = time.perf_counter()
        served = rag.retrieve(case.question, top_k=TOP_K)
        row = {"id": case.id, "retrieve_ms": (time.perf_counter() - started) * 1000,
               "recall": {TODAY: served_recall(case, served)}, "ms": {TODAY: 0.0}}
        rerank = lambda hits, q=case.question: retriever.reranker.rerank(q, hits)  # noqa: E731
        for seeds, slots, new_source in GRID:
            for gate in (False, True):
                started = time.perf_counter()
                got = bridge_round(case.question, served, search, seeds, slots, new_source,
                                   rerank if gate else None)
                key = name_of(seeds, slots, new_source, gate)
                row["ms"][key] = (time.perf_counter() - started) * 1000
                row["recall"][key] = served_recall(case, got)
        rows.append(row)
    return rows


def order(key: str) -> tuple:
    """Tie-break: off first, then fewer seeds, fewer slots, no new-source rule."""
    if key == TODAY:
        return (0,)
    kind, rest = key.split(" ", 1)
    seeds, slots = rest.split(" ")[0].split("-")
    return (1, int(seeds), int(slots), rest.endswith("new"), kind)


def choose(means: dict, sets: list[str], keys: list[str]) -> str:
    return min(keys, key=lambda k: (-round(statistics.mean(means[(n, k)] for n in sets), 9), order(k)))


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--indexes", type=Path, required=True, help="folder with idx_<corpus>")
    args.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tune_bridge")
    opts = args.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, (corpus, _, _) in SETS.items():
        cache = opts.out / f"{name}.json"
        if not cache.is_file():
            started = time.time()
            cache.write_text(json.dumps(measure(name, opts.indexes / f"idx_{corpus}")))
            print(f"{name}: measured in {time.time() - started:.0f} s", flush=True)
        rows[name] = json.loads(cache.read_text())
    keys = list(next(iter(rows.values()))[0]["recall"])
    means = {(n, k): statistics.mean(r["recall"][k] for r in rs) for n, rs in rows.items() for k in keys}
    for gate in ("plain", "gated"):
        pool = [TODAY] + [k for k in keys if k.startswith(gate)]
        print(f"\n{gate}: left out | chosen on the other {len(rows) - 1} | served Recall@5 left out / today")
        left_sum = today_sum = 0.0
        for left in rows:
            chosen = choose(means, [n for n in rows if n != left], pool)
            left_sum += means[(left, chosen)]
            today_sum += means[(left, TODAY)]
            print(f"  {left:24s} {chosen:16s} {means[(left, chosen)]:.3f} / {means[(left, TODAY)]:.3f}")
        print(f"  sum {left_sum:.3f} / {today_sum:.3f}; chosen on all {len(rows)}: {choose(means, list(rows), pool)}")
    extra = {k: statistics.median(r["ms"][k] for r in rows["paul_graham"]) for k in keys}
    retrieve = statistics.median(r["retrieve_ms"] for r in rows["paul_graham"])
    print(f"\nPaul Graham: retrieve p50 {retrieve:.0f} ms; bridge round p50 ms: "
          + ", ".join(f"{k} {v:.1f}" for k, v in extra.items() if k != TODAY))
    (opts.out / "report.json").write_text(json.dumps(
        {"means": {f"{n}|{k}": v for (n, k), v in means.items()}}, indent=1))


if __name__ == "__main__":
    main()
