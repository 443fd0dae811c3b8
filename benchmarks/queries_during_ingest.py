"""Query latency in one process while an ingest runs beside it (embedded Milvus Lite).

Why: with the embedded default only one process opens the index, so the UI, `rag watch` or an
assistant's process answers questions while it ingests. Measures `retrieve` (hybrid, no
reranker) idle, then every 50 ms during an ingest of N text files of M MB each (Paul Graham
essays, shuffled), and how long Milvus Lite's own lock was held (its flushes and background
merges). The ingest uses the stand-in embedder of `huge_inputs.py` (hashes as vectors after the
first batch, said in the output), so the figures are about the index, not the model.

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/queries_during_ingest.py --files 20 --mb 1
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTIONS = ("What did the author work on before college?", "Why do startups fail?",
             "How did Viaweb start?", "What is a good startup idea?")


def build_files(folder: Path, essays_dir: Path, files: int, mb: float, seed: int = 0) -> None:
    essays = [p.read_text(errors="replace") for p in sorted(essays_dir.glob("*.txt"))]
    rng = random.Random(seed)
    for i in range(files):
        parts: list[str] = []
        size = 0
        while size < mb * 1e6:
            parts.append(f"\n\nFile {i} part {len(parts)}.\n\n{rng.choice(essays)}")
            size += len(parts[-1])
        (folder / f"f{i:03d}.txt").write_text("".join(parts))


def main() -> int:
    from benchmarks.huge_inputs import ESSAYS, StandInEmbedder
    from rag.api import RAG
    from rag.models.embedder import Embedder
    from retrievers.lite_search import engine_collection

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="text files ingested (default 20)")
    parser.add_argument("--mb", type=float, default=1.0, help="MB per file (default 1)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-queries-during-ingest-"))
    try:
        (work / "docs").mkdir()
        build_files(work / "docs", ESSAYS, args.files, args.mb)
        (work / "seed").mkdir()
        for path in sorted(ESSAYS.glob("*.txt"))[:20]:
            shutil.copy(path, work / "seed" / path.name)
        rag = RAG.open(work / "index", embedder=StandInEmbedder(Embedder("packaged")),
                       reranker=None)
        rag.ingest([work / "seed"])
        idle = []
        for i in range(44):
            started = time.perf_counter()
            rag.retrieve(QUESTIONS[i % 4])
            idle.append(time.perf_counter() - started)
        idle = idle[4:]  # the first calls load the query model
        stop = threading.Event()
        during: list[float] = []
        held: list[float] = []

        def ask() -> None:
            i = 0
            while not stop.is_set():
                started = time.perf_counter()
                rag.retrieve(QUESTIONS[i % 4])
                during.append(time.perf_counter() - started)
                i += 1
                time.sleep(0.05)

        def watch_lock() -> None:
            collection = engine_collection(str(work / "index" / "milvus.db"), "rag_chunks")
            while not stop.is_set() and collection is not None:
                started = time.perf_counter()
                with collection._maintenance_lock:
                    pass
                held.append(time.perf_counter() - started)
                time.sleep(0.02)

        threads = [threading.Thread(target=ask), threading.Thread(target=watch_lock)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        results = rag.ingest([work / "docs"])
        ingest_s = time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join()
        rag.close()
        def ms(values: list[float], q: float) -> float:
            return round(float(np.percentile(np.asarray(values) * 1000, q)), 1)

        report = {
            "embedder": "stand-in (hashes after the first batch)",
            "files": len(results), "chunks": sum(r.chunks or 0 for r in results),
            "ingest_s": round(ingest_s, 1),
            "idle_p50_ms": ms(idle, 50), "idle_p95_ms": ms(idle, 95),
            "during_queries": len(during), "during_p50_ms": ms(during, 50),
            "during_p95_ms": ms(during, 95), "during_p99_ms": ms(during, 99),
            "during_max_ms": ms(during, 100),
            "lite_lock_wait_max_ms": ms(held, 100) if held else None,
            "lite_lock_waits_over_100ms": int(sum(w > 0.1 for w in held)),
        }
        print(json.dumps(report, indent=1))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
