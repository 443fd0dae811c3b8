"""Switching an index's embedding model with `rag reindex` while it answers: the Paul Graham index.

On a copy of an index built with the packaged MiniLM (`rag ingest
../shared/data/qa/paul_graham/essays --index /tmp/pg_idx`, 3288 chunks), it measures:
  1. MiniLM -> static model (model2vec distilled from MiniLM, 256-d) in-process, with
     --threads query threads asking hybrid and dense queries the whole time: re-index time,
     queries answered during it, errors, empty answers, p50/p95 query latency during it and idle;
  2. rollback to MiniLM (only what changed since is embedded: nothing here);
  3. MiniLM -> a 128-d static model (the first 128 PCA dimensions of the 256-d one: another
     real model, so a new collection), run as
     `rag reindex` in a child process that is killed with SIGKILL a third of the way through;
     then `rag retrieve` on the old index, and the next `rag reindex`, which resumes;
  4. static 128-d -> MiniLM from scratch (MiniLM's previous collection dropped first, so every
     chunk is embedded with MiniLM again): the re-index time when the new model is the slow one.
Prints each figure; --json FILE writes them.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/reindex.py --index /tmp/pg_idx
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.progress import kill_at_progress  # noqa: E402

QUERIES = ["how do you start a startup", "what makes a good essay", "why lisp is powerful",
           "raising money from investors", "hackers and painters", "how to do great work",
           "what did the author work on before college", "the age of the essay"]


def query_load(rag, threads: int):
    """Start `threads` query loops; returns (stop(), results dict)."""
    stop = threading.Event()
    out = {"latencies": [], "errors": [], "empty": 0}
    lock = threading.Lock()

    def loop(k: int) -> None:
        n = k
        while not stop.is_set():
            query, mode = QUERIES[n % len(QUERIES)], ["hybrid", "dense"][n % 2]
            n += 1
            t0 = time.perf_counter()
            try:
                hits = rag.retrieve(query, mode=mode)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                with lock:
                    out["errors"].append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            with lock:
                out["latencies"].append(time.perf_counter() - t0)
                out["empty"] += not hits

    workers = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()

    def finish() -> dict:
        stop.set()
        for w in workers:
            w.join(timeout=120)
        lat = sorted(out["latencies"])
        return {"queries": len(lat) + len(out["errors"]), "errors": len(out["errors"]),
                "first_errors": out["errors"][:3], "empty": out["empty"],
                "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
                "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None}

    return finish


def rag_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="a MiniLM index (copied, never changed)")
    parser.add_argument("--threads", type=int, default=2, help="query threads during the re-index")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    from rag.api import RAG
    from rag.models.static import distilled_static_model, narrowed_static_model
    from retrievers.collections import CollectionFamily

    figures: dict = {}
    static256 = distilled_static_model("packaged", 256)
    work = Path(tempfile.mkdtemp(prefix="reindex_bench_"))
    # Its first 128 PCA dimensions: a 128-d static model (PCA components are nested), another
    # real model without a second distillation.
    static128 = narrowed_static_model(static256, 128, work / "static-128d")
    index = work / "index"
    shutil.copytree(args.index, index)
    try:
        rag = RAG.open(index, ocr="never")
        figures["chunks"] = rag.stats()["chunks"]
        rag.retrieve("warm up")
        finish = query_load(rag, args.threads)
        time.sleep(args.idle_seconds)
        figures["idle"] = finish()
        print(f"idle, {args.threads} threads, {args.idle_seconds:.0f} s: {figures['idle']}")

        # 1. MiniLM -> static 256-d, queries running.
        finish = query_load(rag, args.threads)
        report = rag.reindex(str(static256))
        figures["to_static"] = {**report.to_json(), "during": finish()}
        r = figures["to_static"]
        print(f"1. MiniLM -> static-256d: switched={r['switched']} in {r['seconds']} s "
              f"({r['embedded']} chunks embedded); smoke {r['smoke']['found']}/{r['smoke']['probes']}"
              f" (MiniLM {r['serving_smoke']['found']}/{r['serving_smoke']['probes']}); during it: "
              f"{r['during']}")

        # 2. Rollback to MiniLM.
        finish = query_load(rag, args.threads)
        report = rag.reindex(rollback=True)
        figures["rollback"] = {**report.to_json(), "during": finish()}
        r = figures["rollback"]
        print(f"2. rollback -> {r['collection']}: switched={r['switched']} in {r['seconds']} s, "
              f"{r['embedded']} embedded; during it: {r['during']}")
        rag.close()
        # Milvus Lite stays locked to this process once opened here; a copy is not locked, so
        # the child processes below work on one.
        index = shutil.copytree(index, work / "index-2")

        # 3. kill -9 a third of the way through MiniLM -> static-128d, then resume.
        proc = subprocess.Popen(
            rag_cmd("reindex", "--index", str(index), "--embedding-model", str(static128),
                    "--set", "reindex_batch_chunks=32"),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        done, total, _ = kill_at_progress(proc, 1 / 3, deadline_s=3600)
        t0 = time.perf_counter()
        answered = subprocess.run(rag_cmd("retrieve", QUERIES[0], "--index", str(index), "--json"),
                                  cwd=REPO, capture_output=True, text=True)
        hits = json.loads(answered.stdout)["results"] if answered.returncode == 0 else []
        t1 = time.perf_counter()
        resumed = subprocess.run(rag_cmd("reindex", "--index", str(index), "--embedding-model",
                                         str(static128), "--json"),
                                 cwd=REPO, capture_output=True, text=True)
        try:  # the report is printed whether the switch passed (exit 0) or was refused (exit 1)
            report = {**json.loads(resumed.stdout), "exit": resumed.returncode}
        except ValueError:
            report = {"exit": resumed.returncode, "error": resumed.stderr[-500:]}
        figures["kill9"] = {"killed_at": done, "total": total, "old_index_exit": answered.returncode,
                            "old_index_hits": len(hits), "retrieve_s": round(t1 - t0, 1),
                            "resume": report}
        print(f"3. kill -9 at {done}/{total}: old index answered (exit {answered.returncode}, "
              f"{len(hits)} hits, {t1 - t0:.1f} s incl. start-up); next run: "
              f"switched={report.get('switched')}, {report.get('already')} already there, "
              f"{report.get('embedded')} embedded, {report.get('seconds')} s, "
              f"note={report.get('note')!r}")

        # 4. static-128d -> MiniLM from scratch (drop MiniLM's kept collection first).
        rag = RAG.open(index, ocr="never")
        family = CollectionFamily(rag.index.dense.client, rag.settings.collection)
        state = rag.index.catalog.get_meta("reindex")
        if state.get("previous"):
            family.drop(state["previous"]["collection"])
            rag.index.catalog.set_meta("reindex", {**state, "previous": None})
        finish = query_load(rag, args.threads)
        report = rag.reindex("packaged")
        figures["to_minilm"] = {**report.to_json(), "during": finish()}
        r = figures["to_minilm"]
        print(f"4. static-128d -> MiniLM (every chunk re-embedded): switched={r['switched']} in "
              f"{r['seconds']} s ({r['embedded']} chunks, "
              f"{r['embedded'] / max(r['seconds'], 1e-9):.1f} chunks/s); during it: {r['during']}")
        rag.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
