"""Garbage-collector pauses in a long-lived process: do full collections land on questions?

Why: a full collection of a process holding the models, llama-index and gradio takes 0.1-0.3 s
(~1M objects), so a server answering questions could stall wherever one falls. This opens an
index as the UI or `rag serve` would, imports gradio, then times `retrieve` (or `ask`) calls
with a `gc.callbacks` hook recording every collection's generation and duration; `--freeze`
moves the loaded objects to the permanent generation first (`gc.freeze()`), the usual remedy.

Run (heavy: the models load; not part of `rag bench`):
    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/gc_pauses.py --index IDX [--ask] [--freeze]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUESTIONS = REPO.parent / "shared" / "data" / "qa" / "aragog_arxiv" / "normalized.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--questions", default=str(QUESTIONS), help="JSONL with a question field")
    parser.add_argument("--ask", action="store_true", help="answers (40 calls) instead of retrieval (300)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after loading")
    args = parser.parse_args()

    import gradio  # noqa: F401  (what the UI's process holds too)

    from rag.api import RAG

    questions = [json.loads(line)["question"] for line in open(args.questions) if line.strip()]
    calls = 40 if args.ask else 300
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    with RAG.open(args.index) as rag:
        call = rag.ask if args.ask else rag.retrieve
        call(questions[0])  # models loaded (the answer model too, with --ask)
        gc.collect()
        if args.freeze:
            gc.freeze()
        tracked = len(gc.get_objects())
        gc.callbacks.append(record)
        latencies = []
        for question in itertools.islice(itertools.cycle(questions), calls):
            start = time.perf_counter()
            call(question)
            latencies.append(time.perf_counter() - start)
        gc.callbacks.remove(record)

    def ms(seconds: float) -> float:
        return round(1000 * seconds, 1)

    full = [d for generation, d in pauses if generation == 2]
    print(f"{'ask' if args.ask else 'retrieve'} x{calls}, freeze={args.freeze}, "
          f"{tracked} objects tracked, {gc.get_freeze_count()} frozen")
    p50, p95, p99 = (ms(float(np.percentile(latencies, q))) for q in (50, 95, 99))
    print(f"latency ms p50 {p50} p95 {p95} p99 {p99} max {ms(max(latencies))}")
    print(f"collections {len(pauses)} ({ms(sum(d for _, d in pauses))} ms); "
          f"full {len(full)} ({ms(sum(full))} ms, longest {ms(max(full, default=0.0))} ms)")


if __name__ == "__main__":
    main()
