"""`rag models compare`: every candidate embedding model on the user's own corpus and questions.

The corpus is read and chunked once, with the project's ingestion (discovery, loaders, OCR,
the chunker sized in tokens of the default MiniLM at the configured chunk size), into a
catalog and a BM25 snapshot. Each candidate then runs in its own process
(`eval.models_worker`): it embeds those same chunks, so every model is scored on identical
text, writes a throwaway Milvus Lite index and is scored dense-only and hybrid. The figures,
the comparison with the fp32 MiniLM and the recommendation under a query-latency budget come
from `eval.models_report`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eval.errors import EvalError

BM25 = "bm25"
# Cheapest first and the reference early, so an interrupted run (its --json is rewritten after
# each candidate) keeps the most rows; mpnet, the slowest, last.
DEFAULT_CANDIDATES = (BM25, "minilm-fp32", "minilm-static", "minilm-bf16", "minilm-int8",
                      "bge-small-int8", "e5-small-int8", "nomic-gguf", "mpnet")
REFERENCE = "minilm-fp32"


@dataclass
class Corpus:
    """The chunked corpus every candidate embeds: a catalog + BM25 snapshot in `base_dir`."""

    base_dir: Path
    files: int
    chunks: int
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def chunk_corpus(corpus: Path, base_dir: Path, settings: Any) -> Corpus:
    """Read and chunk every file under `corpus` once into `base_dir` (catalog + BM25)."""
    from ingestion.chunking import Chunker
    from ingestion.discovery import expand_paths, file_sha256, source_id_for
    from ingestion.preparation import FilePreparer
    from ingestion.results import one_line
    from rag import parts
    from rag.models.embedder import Embedder
    from retrievers.bm25_store import open_bm25, save_bm25
    from retrievers.catalog import Catalog, Publication
    from retrievers.index import CATALOG_FILE
    from retrievers.text import tokenize

    started = time.perf_counter()
    if not corpus.exists():
        raise EvalError(f"{corpus}: no such corpus folder or file")
    tokens = Embedder(settings.embedding_model)  # its tokenizer only: the model is not loaded
    chunker = Chunker(tokens.count_tokens, settings.chunk_size, settings.chunk_overlap)
    preparer = FilePreparer(chunker, None, ocr=parts.default_ocr(settings))
    files, problems = expand_paths([corpus])
    failed = [f"{p.path}: {p.error}" for p in problems]
    base_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(base_dir / CATALOG_FILE)
    n_chunks = 0
    try:
        for path in files:
            try:
                source_id, content_hash = source_id_for(path), file_sha256(path)
                chunks = preparer.prepare(path, source_id, content_hash)
            except Exception as exc:  # one unreadable file must not stop the comparison
                failed.append(f"{path}: {one_line(exc)}")
                continue
            stat = path.stat()
            catalog.stage(chunks, [tokenize(c.text) for c in chunks])
            catalog.publish_many([Publication(source_id, str(path.resolve()), content_hash,
                                              path.suffix.lower().lstrip("."),
                                              [c.chunk_id for c in chunks], stat.st_size,
                                              stat.st_mtime)])
            n_chunks += len(chunks)
        if n_chunks == 0:
            raise EvalError(f"{corpus}: no file yielded text ({len(failed)} failed)")
        save_bm25(open_bm25(catalog, base_dir, settings.bm25_k1, settings.bm25_b,
                            settings.bm25_epsilon), base_dir)
    finally:
        catalog.close()
    return Corpus(base_dir, len(files), n_chunks, failed, time.perf_counter() - started)


def run_candidate(candidate: str, corpus: Corpus, dataset_path: Path, work: Path, *,
                  split: str = "test", limit: int | None = None,
                  settings: dict[str, Any] | None = None, timeout_s: float | None = None
                  ) -> dict[str, Any]:
    """Run one candidate in a fresh process (see eval.models_worker); its JSON row."""
    slot = work / candidate.replace("/", "_").replace(" ", "_")
    job = {"candidate": candidate, "base_dir": str(corpus.base_dir), "work_dir": str(slot),
           "dataset": str(dataset_path), "split": split, "limit": limit,
           "settings": settings or {}, "out": str(work / f"{slot.name}.result.json")}
    job_path = work / f"{slot.name}.job.json"
    job_path.write_text(json.dumps(job))
    started = time.perf_counter()
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    try:
        done = subprocess.run([sys.executable, "-m", "eval.models_worker", str(job_path)],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"candidate": candidate, "failed": f"ran past {timeout_s:.0f} s"}
    out = Path(job["out"])
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"candidate": candidate,
                "failed": f"worker exited {done.returncode}: {tail[0][:300]}"}
    row = json.loads(out.read_text())
    row["process_s"] = time.perf_counter() - started
    return row


def compare(dataset_path: Path, corpus_path: Path, candidates: list[str], settings: Any, *,
            split: str = "test", limit: int | None = None, work_dir: Path | None = None,
            on_row: Callable[[dict[str, Any]], None] | None = None,
            timeout_s: float | None = None) -> dict[str, Any]:
    """Chunk the corpus once, run every candidate, return the comparison as JSON data."""
    from eval.datasets import load_dataset

    dataset = load_dataset(dataset_path, split=split)  # a bad dataset fails before any work
    started, machine = time.perf_counter(), _machine()
    with tempfile.TemporaryDirectory(prefix="rag-models-", dir=work_dir) as tmp:
        work = Path(tmp)
        corpus = chunk_corpus(corpus_path, work / "base", settings)
        rows = []
        for candidate in candidates:
            row = run_candidate(candidate, corpus, dataset_path, work, split=split, limit=limit,
                                settings=_worker_settings(settings), timeout_s=timeout_s)
            rows.append(row)
            if on_row:
                on_row(row)
    return {
        "dataset": {"name": dataset.name, "path": str(dataset_path),
                    "cases": len(dataset.head(limit).cases)},
        "corpus": {"path": str(corpus_path), "files": corpus.files, "chunks": corpus.chunks,
                   "failed": corpus.failed, "chunk_seconds": corpus.seconds,
                   "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
                   "chunked_with": "tokenizer of " + str(settings.embedding_model)},
        "machine": machine,
        "reference": REFERENCE,
        "candidates": rows,
        "loadavg_at_end": list(os.getloadavg()),
        "wall_s": time.perf_counter() - started,
    }


def _worker_settings(settings: Any) -> dict[str, Any]:
    """The settings a worker's throwaway index needs from the user's (retrieval and BM25)."""
    keys = ("top_k", "candidate_k", "fusion", "rrf_k", "bm25_weight", "dense_weight",
            "bm25_k1", "bm25_b", "bm25_epsilon", "embedding_device", "embedding_model")
    return {k: getattr(settings, k) for k in keys}


def _machine() -> dict[str, Any]:
    import platform

    # The load average says how much else ran: speed figures from a shared machine are only
    # comparable within one run.
    return {"cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "loadavg_at_start": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
