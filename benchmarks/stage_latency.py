"""Where the time goes: per-stage timings of ingests and questions, and whether they add up.

Ingests a corpus (default: 8 Paul Graham essays, read-ahead off so the stages run one after
another), asks `--questions` questions from the QA set, each timed from outside with
`time.perf_counter`, then prints `rag stats --latency` and checks, per operation, that the
named stages add up to the measured total within 10%.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/stage_latency.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa" / "paul_graham"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--essays", type=int, default=8)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128, help="llm_max_tokens")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.api import RAG
    from rag.cli import main as rag_main
    from rag.telemetry import FIRST_TOKEN_STAGE

    cases = [json.loads(line) for line in (QA / "normalized.jsonl").read_text().splitlines() if line.strip()]
    wanted = {Path(d).name for c in cases[: args.questions] for d in c.get("source_docs", [])}
    essays = sorted(p for p in (QA / "essays").iterdir() if p.name in wanted)
    essays += sorted(p for p in (QA / "essays").iterdir() if p not in essays)[: max(0, args.essays - len(essays))]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        rag = RAG.open(index, ingest_read_ahead=0, llm_max_tokens=args.max_tokens)
        rag.index, rag.retriever  # loaded before any clock starts
        getattr(rag.llm, "llama", None)  # the local model loads on first use: load it now
        started = time.perf_counter()
        rag.ingest(essays)
        ingest_wall = (time.perf_counter() - started) * 1000
        (record,) = rag.oplog.operations(kind="ingest")
        gap = abs(record.additive_ms - record.total_ms) / record.total_ms
        worst = max(worst, gap)
        print(f"ingest of {len(essays)} essays: measured {ingest_wall:.0f} ms, root span "
              f"{record.total_ms:.0f} ms, named stages {record.additive_ms:.0f} ms "
              f"({gap * 100:.1f}% off)")
        print(f"{'question':<48}{'measured':>10}{'stages':>10}{'off':>7}{'1st tok':>9}")
        for case in cases[: args.questions]:
            started = time.perf_counter()
            answer = rag.ask(case["question"])
            wall = (time.perf_counter() - started) * 1000
            named = sum(v for k, v in answer.stages.items() if k not in ("other", FIRST_TOKEN_STAGE))
            gap = abs(named - wall) / wall
            worst = max(worst, gap)
            print(f"{case['question'][:46]:<48}{wall:>10.0f}{named:>10.0f}{gap * 100:>6.1f}%"
                  f"{answer.stages.get(FIRST_TOKEN_STAGE, 0):>9.0f}")
        rag.close()
        print("\ncommand: rag stats --latency --index INDEX")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rag_main(["stats", "--latency", "--index", str(index)])
        print(out.getvalue())
    ok = worst <= 0.10
    print(f"worst |named stages - measured total| / total: {worst * 100:.1f}% -> "
          f"{'within' if ok else 'OVER'} 10%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
