"""One candidate of `rag models compare`, run in its own process: `python -m eval.models_worker JOB`.

Why a process per candidate: peak resident memory is a per-process high-water mark
(`getrusage`), so only a fresh process measures one model's; and each model's memory is given
back to the machine before the next one loads (mpnet and nomic take hundreds of MB each).

JOB is a JSON file: `{"candidate", "base_dir", "work_dir", "dataset", "split", "limit",
"settings", "out"}`. The worker copies the shared catalog and BM25 snapshot (chunked once by
the parent) into `work_dir`, embeds every chunk with the candidate, writes the vectors into a
Milvus Lite collection there, and opens it as the project's `ChunkIndex` with its default
hybrid retriever; then it scores the dataset dense-only and hybrid with `eval.runner.run_eval`
and writes its figures to `out`. The candidate "bm25" builds no vectors: BM25 alone.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("recall@5", "recall@10", "mrr@10", "ndcg@10")
BM25 = "bm25"
UPSERT_ROWS = 1000


class RetrievalTarget:
    """What `run_eval` needs of a RAG for retrieval-only runs: settings, the catalog, and a
    `retrieve` in one fixed mode."""

    def __init__(self, settings: Any, catalog: Any, retriever: Any, mode: str):
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.index = _CatalogView(catalog)
        self.retriever = retriever
        self.mode = mode

    def retrieve(self, query: str, top_k: int | None = None, mode: str | None = None,
                 filters: Any = None) -> list:
        return self.retriever.retrieve(query, top_k or self.settings.top_k, mode or self.mode,
                                       filters=filters)


class _CatalogView:
    def __init__(self, catalog: Any):
        self.catalog = catalog


def percentile(values: list[float], p: float) -> float | None:
    return float(np.percentile(values, p)) if values else None


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: `VmHWM`, the high-water mark of its own
    address space. Not `getrusage`'s ru_maxrss: Linux carries that over fork and exec, so a
    worker started by a large parent (a test run holding a model) would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def copy_base(base_dir: Path, work_dir: Path) -> None:
    """The parent's chunked corpus (catalog + BM25 snapshot) into this candidate's index."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for item in base_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, work_dir / item.name)


def score(target: RetrievalTarget, dataset: Any, limit: int | None) -> dict[str, Any]:
    """Recall@5/@10, MRR@10, nDCG@10 and retrieval latency of one retrieval mode."""
    from eval.metrics import get_metric
    from eval.runner import run_eval

    run = run_eval(target, dataset, limit=limit, answers=False, progress=False,
                   metrics=[get_metric(m) for m in METRICS])
    out: dict[str, Any] = {m: run.aggregates[m].value for m in METRICS}
    out["scored"] = run.aggregates[METRICS[0]].scored
    out["retrieve_ms_p50"] = _agg(run, "latency_ms.retrieve.p50")
    out["retrieve_ms_p95"] = _agg(run, "latency_ms.retrieve.p95")
    out["errors"] = sum(1 for r in run.records if r.error)
    out["per_case"] = {r.case.id: {m: r.scores[m].value for m in ("recall@10", "mrr@10")}
                       for r in run.records}
    return out


def _agg(run: Any, name: str) -> float | None:
    found = run.aggregates.get(name)
    return None if found is None else found.value


def run_bm25(job: dict[str, Any], settings: Any, dataset: Any) -> dict[str, Any]:
    from retrievers.bm25_store import open_bm25, save_bm25
    from retrievers.catalog import Catalog
    from retrievers.hybrid import HybridRetriever, KeywordSearch
    from retrievers.index import CATALOG_FILE

    work = Path(job["work_dir"])
    catalog = Catalog(work / CATALOG_FILE)
    try:
        started = time.perf_counter()
        bm25 = open_bm25(catalog, work, settings.bm25_k1, settings.bm25_b, settings.bm25_epsilon)
        build_s = time.perf_counter() - started
        save_bm25(bm25, work)
        retriever = HybridRetriever({"bm25": KeywordSearch(bm25)}, catalog.chunks,
                                    candidate_k=settings.candidate_k)
        n = catalog.count()
        result = score(RetrievalTarget(settings, catalog, retriever, "bm25"), dataset,
                       job.get("limit"))
    finally:
        catalog.close()
    return {"model": "BM25 (rank-bm25, in-process)", "dimension": None, "dtype": None,
            "fingerprint": None, "chunks": n, "load_s": 0.0, "embed_s": None,
            "chunks_per_s": None, "index_chunks_per_s": n / build_s if build_s else None,
            "query_ms_p50": 0.0, "query_ms_p95": 0.0, "dense": None, "hybrid": result,
            "bm25": result, "dense_bytes": 0}


def run_embedder(job: dict[str, Any], settings: Any, dataset: Any) -> dict[str, Any]:
    from rag import parts
    from rag.models.candidates import load_embedder
    from retrievers.catalog import LIVE, Catalog
    from retrievers.index import CATALOG_FILE, ChunkIndex
    from retrievers.milvus_store import MilvusDenseStore
    from retrievers.records import passage_texts

    work = Path(job["work_dir"])
    started = time.perf_counter()  # assembling, unpacking or distilling model files, if needed
    embedder = load_embedder(job["candidate"], settings.embedding_device)
    prepare_s = time.perf_counter() - started
    catalog = Catalog(work / CATALOG_FILE)
    try:
        ids = sorted(catalog.ids_in_state(LIVE))
        chunks = catalog.chunks(ids)
    finally:
        catalog.close()
    # Embedded as a new index with these settings would embed them (a title line or not).
    texts = passage_texts([chunks[i] for i in ids], settings.embed_source_titles)
    started = time.perf_counter()
    embedder.encode(texts[:1])  # loads the model: timed apart from the throughput
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - started
    questions = [c.question for c in dataset.cases]
    embedder.encode_query(questions[0])
    query_ms = []
    for question in questions:
        started = time.perf_counter()
        embedder.encode_query(question)
        query_ms.append((time.perf_counter() - started) * 1000)
    dimension = int(vectors.shape[1])
    dense = MilvusDenseStore(settings.milvus_target, settings.collection, dimension,
                             index=settings.dense_index_type)
    for start in range(0, len(ids), UPSERT_ROWS):
        span = ids[start:start + UPSERT_ROWS]
        dense.upsert([chunks[i] for i in span], vectors[start:start + UPSERT_ROWS])
    dense.flush()
    index = ChunkIndex(work, dense, settings.bm25_k1, settings.bm25_b, settings.bm25_epsilon,
                       bm25_source_terms=settings.bm25_source_terms)
    try:
        retriever = parts.default_retriever(settings, index, embedder.encode_query)
        results = {mode: score(RetrievalTarget(settings, index.catalog, retriever, mode), dataset,
                               job.get("limit"))
                   for mode in ("dense", "hybrid")}
    finally:
        index.close()
    return {"model": embedder.name, "dimension": dimension,
            "dtype": getattr(embedder, "dtype", None), "fingerprint": embedder.fingerprint,
            "path": getattr(embedder, "path", None), "chunks": len(ids),
            "prepare_s": prepare_s, "load_s": load_s,
            "embed_s": embed_s, "chunks_per_s": len(ids) / embed_s if embed_s else None,
            "query_ms_p50": percentile(query_ms, 50), "query_ms_p95": percentile(query_ms, 95),
            "dense": results["dense"], "hybrid": results["hybrid"],
            "dense_bytes": folder_bytes(Path(settings.milvus_target))}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Build and score one candidate; returns its JSON row (or `{"skipped": reason}`)."""
    from eval.datasets import load_dataset
    from rag.config import load_settings
    from rag.models.candidates import CandidateUnavailable

    started = time.perf_counter()
    work = Path(job["work_dir"])
    copy_base(Path(job["base_dir"]), work)
    settings = load_settings(work, **job.get("settings", {}))
    dataset = load_dataset(job["dataset"], split=job.get("split", "test"))
    try:
        if job["candidate"] == BM25:
            row = run_bm25(job, settings, dataset)
        else:
            row = run_embedder(job, settings, dataset)
    except CandidateUnavailable as exc:
        return {"candidate": job["candidate"], "skipped": str(exc)}
    row["candidate"] = job["candidate"]
    row["index_bytes"] = folder_bytes(work)
    row["peak_rss_mb"] = peak_rss_mb()
    row["wall_s"] = time.perf_counter() - started
    return row


def main(argv: list[str] | None = None) -> int:
    from rag.errors import USER_ERRORS
    from rag.process import apply_defaults
    from retrievers.errors import one_line

    apply_defaults()
    logging.basicConfig(level=logging.ERROR)
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    try:
        row = run_job(job)
    except USER_ERRORS as exc:
        row = {"candidate": job["candidate"], "failed": str(exc)}
    except Exception as exc:  # a model that cannot load or run fails its row, not the comparison
        logging.getLogger(__name__).debug("candidate failed", exc_info=True)
        row = {"candidate": job["candidate"], "failed": f"{type(exc).__name__}: {one_line(exc, 300)}"}
    Path(job["out"]).write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
