"""Load on the UI's headless API: N concurrent `gradio_client` clients asking retrieval-only
questions (`/retrieve`) for a fixed time, first on an idle index, then while an ingest of
../shared/data/documents writes into the same collection.

Reports per phase: requests, errors, p50/p95/max latency and throughput; then how much p95 grew
during the ingest. Loopback only (the server binds 127.0.0.1); bounded by --seconds per phase
and --ingest-timeout. The clients run in separate processes (4 by default) so their own Python
work does not share the server's GIL.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/ui_load.py --json /tmp/ui_load.json
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "rag" / "sample"
DOCUMENTS = REPO.parent / "shared" / "data" / "documents"
QUERIES = ["how long should green tea steep", "warranty of the lamp", "ask not what your country",
           "brewing temperature of water", "the lamp battery and its light", "table of contents",
           "password protected file", "quarterly revenue", "layout parser model", "invoice total"]
MODES = ["hybrid", "bm25", "dense"]
COLLECTION = "load"


def client_worker(url: str, threads: int, seconds: float, offset: int, out: mp.Queue) -> None:
    """One process of `threads` clients, each with its own `gradio_client.Client`."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_at = time.monotonic()

    def run(k: int) -> None:
        client = Client(url, verbose=False, download_files=False)
        n = k
        while time.monotonic() - start_at < seconds:
            query, mode = QUERIES[n % len(QUERIES)], MODES[n % len(MODES)]
            n += 1
            t0 = time.perf_counter()
            try:
                doc = client.predict(query, COLLECTION, mode, 5, api_name="/retrieve")
                ok = isinstance(doc, dict) and "results" in doc
                problem = None if ok else f"unexpected reply {str(doc)[:100]}"
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                problem = f"{type(exc).__name__}: {str(exc)[:150]}"
            elapsed = time.perf_counter() - t0
            with lock:
                if problem:
                    errors.append(problem)
                else:
                    latencies.append(elapsed)

    pool = [threading.Thread(target=run, args=(offset + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, errors))


def phase(url: str, clients: int, seconds: float, processes: int) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs = [ctx.Process(target=client_worker, args=(url, n, seconds, sum(per[:i]), out))
             for i, n in enumerate(per) if n]
    started = time.monotonic()
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors: list[str] = []
    for _ in procs:
        lat, err = out.get(timeout=seconds + 300)
        latencies += lat
        errors += err
    for p in procs:
        p.join(timeout=60)
    wall = time.monotonic() - started
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else float("nan")

    return {"clients": clients, "seconds": seconds, "requests": len(lat), "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "mean_ms": round(statistics.mean(lat) * 1000, 1) if lat else None,
            "throughput_rps": round(len(lat) / wall, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--corpus", type=Path, default=DOCUMENTS)
    parser.add_argument("--ingest-timeout", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from rag.api import RAG
    from rag.models.embedder import Embedder
    from ui.app import build_app, launch

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ui_load_"))
    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    embedder = Embedder("packaged")
    embedder.model  # loaded once, shared
    # Retrieval only: no LLM is loaded (llm=None builds it lazily, and /retrieve never asks).
    app = build_app(functools.partial(RAG.open, embedder=embedder), root)
    service = app.rag_service
    seed = [(p.name, p) for p in sorted(SAMPLE.iterdir()) if p.suffix in (".md", ".txt")]
    service.ingest_json(seed, COLLECTION)
    import socket

    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launch(app, host="127.0.0.1", port=port, block=False)
    url = f"http://127.0.0.1:{port}/"
    report: dict = {"url": url, "corpus": str(args.corpus)}
    try:
        print(f"idle: {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        report["idle"] = phase(url, args.clients, args.seconds, args.processes)
        print(json.dumps(report["idle"]), flush=True)

        rag = service.rag(COLLECTION)
        ingest: dict = {}

        def run_ingest() -> None:
            t0 = time.monotonic()
            try:
                with service.write_lock(COLLECTION):
                    results = rag.ingest([args.corpus])
                ingest["files"] = len(results)
                ingest["statuses"] = {s: sum(r.status == s for r in results)
                                      for s in {r.status for r in results}}
            except Exception as exc:  # noqa: BLE001 - reported
                ingest["error"] = f"{type(exc).__name__}: {exc}"
            ingest["seconds"] = round(time.monotonic() - t0, 1)

        writer = threading.Thread(target=run_ingest, name="load-ingest")
        writer.start()
        print(f"during ingest of {args.corpus}: {args.clients} clients for {args.seconds:.0f} s ...",
              flush=True)
        report["during_ingest"] = phase(url, args.clients, args.seconds, args.processes)
        report["during_ingest"]["ingest_still_running_at_end"] = writer.is_alive()
        print(json.dumps(report["during_ingest"]), flush=True)
        writer.join(timeout=args.ingest_timeout)
        report["ingest"] = ingest if not writer.is_alive() else {"timed_out": True}
        idle, busy = report["idle"]["p95_ms"], report["during_ingest"]["p95_ms"]
        report["p95_growth"] = round(busy / idle, 2) if idle else None
        report["stats_after"] = {k: v for k, v in service.stats_json(COLLECTION).items()
                                 if k in ("sources", "chunks")}
    finally:
        app.close()
        service.collections.close()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["idle"]["errors"] == 0 and report["during_ingest"]["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
