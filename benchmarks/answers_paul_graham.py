"""Answer quality and speed on the Paul Graham QA set with the default local model.

Indexes the 212 essays (reused when the index directory already holds them), asks the 55
questions and 10 questions the essays cannot answer, and prints:
- the share of answers whose citations all name retrieved contexts (must be 100%),
- the share citing at least one context that contains the reference quote
  (whitespace-normalised containment, or >= 60% of the quote's tokens in the context),
- time to first token p50/p95 and generation tokens/s,
- how many unanswerable questions were declined, and how many answerable ones were.
With `--stock`, the same questions go through stock llama-index (`RetrieverQueryEngine` with its
default compact synthesizer, streaming, same retriever and same model) for the speed ratio.

Run it under the shared lock: `flock /tmp/rag-heavy.lock .venv/bin/python
benchmarks/answers_paul_graham.py --index /tmp/pg_index`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "qa" / "paul_graham"
UNANSWERABLE = Path(__file__).with_name("unanswerable_paul_graham.json")
# Written after the decline rules were tuned on UNANSWERABLE, and never used to tune them.
HELD_OUT = Path(__file__).with_name("unanswerable_heldout_paul_graham.json")
TOKEN = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def contains_quote(context: str, quote: str) -> bool:
    """Whitespace-normalised containment, or >= 60% of the quote's tokens in the context."""
    if normalise(quote) in normalise(context):
        return True
    quote_tokens = TOKEN.findall(quote.lower())
    if not quote_tokens:
        return False
    context_tokens = set(TOKEN.findall(context.lower()))
    return sum(t in context_tokens for t in quote_tokens) / len(quote_tokens) >= 0.6


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def open_index(index_dir: Path):
    from rag.api import RAG

    rag = RAG.open(index_dir)
    if rag.index.catalog.count() == 0:
        started = time.perf_counter()
        results = rag.ingest([DATA / "essays"])
        print(f"indexed {len(results)} essays, {sum(r.chunks for r in results)} chunks in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    return rag


def run_ours(rag, cases, unanswerable, details):
    ttft, rates, valid, quote_hits, answerable_declined = [], [], 0, 0, 0
    for case in cases:
        stream = rag.stream(case["question"])
        for _ in stream:
            pass
        answer = stream.answer
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
        context_ids = {c.chunk_id for c in answer.contexts}
        ok = numbers <= {c.n for c in answer.contexts} and \
            all(c.chunk_id in context_ids for c in answer.citations) and \
            numbers == {c.n for c in answer.citations}
        valid += ok
        hit = any(contains_quote(c.text, q) for c in answer.citations
                  for q in case["reference_contexts"])
        quote_hits += hit
        answerable_declined += answer.declined
        if not stream.gated and stream.decode_tokens_per_s:
            ttft.append(stream.first_token_s)
            rates.append(stream.decode_tokens_per_s)
        details.append({"id": case["id"], "question": case["question"], "answer": answer.text,
                        "valid": ok, "quote_cited": hit, "declined": answer.declined,
                        "gated": stream.gated, "coverage": stream.evidence.coverage,
                        "dense_top": stream.evidence.dense_top, "support": stream.support,
                        "first_token_s": stream.first_token_s, "tokens": stream.tokens})
        print(json.dumps(details[-1]), file=sys.stderr, flush=True)  # progress
    declined = {}
    for group, questions in unanswerable.items():
        counts = declined[group] = {"asked": len(questions), "declined": 0, "gate": 0, "after": 0}
        for question in questions:
            stream = rag.stream(question)
            for _ in stream:
                pass
            answer = stream.answer
            if answer.declined:
                counts["declined"] += 1
                counts["gate" if stream.gated else "after"] += 1
            details.append({"id": f"unanswerable-{group}", "question": question,
                            "answer": answer.text, "declined": answer.declined,
                            "gated": stream.gated, "coverage": stream.evidence.coverage,
                            "dense_top": stream.evidence.dense_top,
                            "missing_names": stream.evidence.missing_names,
                            "support": stream.support})
            print(json.dumps(details[-1]), file=sys.stderr, flush=True)
    n = len(cases)
    return {
        "questions": n,
        "citations_valid_pct": 100 * valid / n,
        "cites_reference_quote_pct": 100 * quote_hits / n,
        "ttft_p50_s": percentile(ttft, 0.5), "ttft_p95_s": percentile(ttft, 0.95),
        "tokens_per_s": statistics.mean(rates) if rates else float("nan"),
        "answerable_declined": answerable_declined,
        "unanswerable": declined,
    }


def run_stock(rag, cases, unanswerable):
    """Stock llama-index answering over the same retriever and model, streamed."""
    from llama_index.core import Settings as LISettings
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers import get_response_synthesizer

    backend = rag.llm
    # llama-index's default tokenizer (tiktoken) would download its vocabulary; use the model's.
    LISettings.tokenizer = lambda text: list(range(backend.count_tokens(text)))
    llm = rag.as_llm()
    engine = RetrieverQueryEngine(
        rag.as_retriever(),
        response_synthesizer=get_response_synthesizer(llm=llm, streaming=True),
    )
    ttft, rates, retrieved_quote, refusals = [], [], 0, 0
    questions = [q for group in unanswerable.values() for q in group]
    for case in list(cases) + [{"question": q, "reference_contexts": None} for q in questions]:
        started = time.perf_counter()
        response = engine.query(case["question"])
        first, pieces, text = None, 0, ""
        for delta in response.response_gen:
            if first is None:
                first = time.perf_counter() - started
            pieces += 1
            text += delta
        elapsed = time.perf_counter() - started - (first or 0)
        if case["reference_contexts"] is None:
            refusals += bool(re.search(r"\b(not|no|cannot|doesn't|does not)\b.*\b(context|information|mention|provided)",
                                       text, re.I))
            continue
        if first is not None and pieces > 1:
            ttft.append(first)
            rates.append((pieces - 1) / elapsed)
        retrieved_quote += any(contains_quote(n.node.get_content(), q) for n in response.source_nodes
                               for q in case["reference_contexts"])
    return {"ttft_p50_s": percentile(ttft, 0.5), "ttft_p95_s": percentile(ttft, 0.95),
            "tokens_per_s": statistics.mean(rates) if rates else float("nan"),
            "retrieved_reference_quote_pct": 100 * retrieved_quote / len(cases),
            "unanswerable_refused_by_wording": refusals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/pg_index"))
    parser.add_argument("--limit", type=int, default=0, help="first N questions only")
    parser.add_argument("--stock", type=int, default=0, metavar="N",
                        help="also run stock llama-index on the first N questions")
    parser.add_argument("--details", type=Path, help="write per-question JSONL here")
    parser.add_argument("--unanswerable-limit", type=int, default=0, metavar="N",
                        help="first N questions of each unanswerable set only")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA}: not found (the shared QA data is needed)", file=sys.stderr)
        return 2
    cases = [json.loads(line) for line in (DATA / "normalized.jsonl").read_text().splitlines()
             if line.strip()]
    if args.limit:
        cases = cases[: args.limit]
    unanswerable = {"tuned": json.loads(UNANSWERABLE.read_text()),
                    "held_out": json.loads(HELD_OUT.read_text())}
    if args.unanswerable_limit:
        unanswerable = {k: v[: args.unanswerable_limit] for k, v in unanswerable.items()}
    rag = open_index(args.index)
    rag.retrieve("warm up")
    rag.llm.count_tokens("warm up")
    details: list[dict] = []
    ours = run_ours(rag, cases, unanswerable, details)
    print(f"model: {rag.llm.name}; index: {args.index} ({rag.index.catalog.count()} chunks)")
    print(f"citations all naming retrieved contexts: {ours['citations_valid_pct']:.1f}% "
          f"of {ours['questions']}")
    print(f"citing a context that holds the reference quote: "
          f"{ours['cites_reference_quote_pct']:.1f}%")
    print(f"time to first token: p50 {ours['ttft_p50_s']:.2f} s, p95 {ours['ttft_p95_s']:.2f} s; "
          f"generation {ours['tokens_per_s']:.1f} tokens/s")
    for group, c in ours["unanswerable"].items():
        print(f"unanswerable ({group}) declined: {c['declined']}/{c['asked']} "
              f"({c['gate']} before generation, {c['after']} after)")
    print(f"answerable declined: {ours['answerable_declined']}/{ours['questions']}")
    result = {"ours": ours}
    if args.stock:
        stock = run_stock(rag, cases[: args.stock], {"held_out": unanswerable["held_out"]})
        result["stock_llama_index"] = stock
        print(f"stock llama-index: first token p50 {stock['ttft_p50_s']:.2f} s, "
              f"p95 {stock['ttft_p95_s']:.2f} s, {stock['tokens_per_s']:.1f} tokens/s, "
              f"unanswerable refused {stock['unanswerable_refused_by_wording']}/"
              f"{len(unanswerable['held_out'])} (held-out set)")
        print(f"ratios ours/stock: first token p50 "
              f"{ours['ttft_p50_s'] / stock['ttft_p50_s']:.2f}x, tokens/s "
              f"{ours['tokens_per_s'] / stock['tokens_per_s']:.2f}x")
    if args.details:
        args.details.write_text("\n".join(json.dumps(d) for d in details) + "\n")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    rag.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
