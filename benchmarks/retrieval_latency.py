"""Retrieval latency: hybrid top-10 p50/p95 over 200 queries at 10k and 100k chunks, next to the
floor (query embedding + dense search alone) and the stock llama-index pipeline, in one run;
plus the resident memory of a process holding each index open.

The large corpora are SYNTHESISED (embedding 100k chunks on 2 CPU cores would take ~25 min):
~2,000 real text chunks (Paul Graham essays, ~180-word windows at sentence boundaries) are
embedded for real with the packaged MiniLM; every further copy of a chunk is a variation of its
text (one sentence dropped, two swapped, one borrowed from another chunk) whose vector is the
base chunk's real vector plus small Gaussian noise, renormalised (cosine ~0.97 to the base).

Each measurement runs in its own child process (one builds, one queries), so the reported RSS
is that of a process holding just that index open, and the index is searched after a fresh
open, as a user's process would (Milvus Lite's HNSW is slow straight after insert: MODELS.md).

Run (heavy, ~10 min):
    pip install -e '.[bench]' && pip install --no-deps llama-index-retrievers-bm25==0.8.0
    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/retrieval_latency.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ESSAYS = REPO.parent / "shared" / "data" / "qa" / "paul_graham"
N_QUERIES = 200
TOP_K = 10
NOISE = 0.0128  # per-dimension sigma: |noise| ~ 0.25 for 384-d, cosine to the base ~0.97
SENTENCE = re.compile(r"(?<=[.!?])\s+")


# --- corpus ------------------------------------------------------------------------------------
def base_chunks(limit: int = 2000, words: int = 180) -> list[str]:
    chunks: list[str] = []
    for path in sorted((ESSAYS / "essays").glob("*.txt")):
        current: list[str] = []
        for sentence in SENTENCE.split(" ".join(path.read_text(errors="replace").split())):
            current.append(sentence)
            if sum(len(s.split()) for s in current) >= words:
                chunks.append(" ".join(current))
                current = []
        if len(chunks) >= limit:
            break
    return chunks[:limit]


def variant(text: str, n: int, rng: random.Random, pool: list[str]) -> str:
    sentences = SENTENCE.split(text)
    if len(sentences) > 2:
        sentences.pop(rng.randrange(len(sentences)))
        i = rng.randrange(len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
    other = SENTENCE.split(pool[rng.randrange(len(pool))])
    sentences.append(other[rng.randrange(len(other))])
    return " ".join(sentences) + f" (copy {n})"


def prepare(work: Path, sizes: list[int], n_base: int = 2000) -> None:
    """Write corpus_<size>.jsonl + vectors_<size>.npy and queries.json into `work`."""
    from rag.models.embedder import Embedder

    base = base_chunks(n_base)
    embedder = Embedder("packaged")
    started = time.perf_counter()
    base_vectors = embedder.encode(base)
    print(f"embedded {len(base)} real base chunks in {time.perf_counter() - started:.0f} s "
          f"({embedder.dtype if hasattr(embedder, 'dtype') else ''})", flush=True)
    rng, np_rng = random.Random(0), np.random.default_rng(0)
    biggest = max(sizes)
    texts, vectors = [], np.empty((biggest, base_vectors.shape[1]), dtype=np.float32)
    for n in range(biggest):
        b = n % len(base)
        copy = n // len(base)
        texts.append(base[b] if copy == 0 else variant(base[b], copy, rng, base))
        v = base_vectors[b] if copy == 0 else base_vectors[b] + np_rng.normal(
            0, NOISE, base_vectors.shape[1]).astype(np.float32)
        vectors[n] = v / np.linalg.norm(v)
    for size in sizes:
        with open(work / f"corpus_{size}.jsonl", "w") as out:
            for text in texts[:size]:
                out.write(json.dumps(text) + "\n")
        np.save(work / f"vectors_{size}.npy", vectors[:size])
    questions = [json.loads(line)["question"]
                 for line in (ESSAYS / "normalized.jsonl").read_text().splitlines() if line.strip()]
    while len(questions) < N_QUERIES:  # the rest: the opening words of random real chunks
        words = base[rng.randrange(len(base))].split()
        start = rng.randrange(max(1, len(words) - 10))
        questions.append(" ".join(words[start : start + rng.randint(4, 10)]))
    (work / "queries.json").write_text(json.dumps(questions[:N_QUERIES]))


# --- children ----------------------------------------------------------------------------------
def rss_mb() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    get = lambda key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024  # noqa: E731
    return {"rss_mb": round(get("VmRSS"), 1), "peak_rss_mb": round(get("VmHWM"), 1)}


def load_corpus(work: Path, size: int) -> tuple[list[str], np.ndarray]:
    texts = [json.loads(line) for line in (work / f"corpus_{size}.jsonl").read_text().splitlines()]
    return texts, np.load(work / f"vectors_{size}.npy")


def child_build_ours(work: Path, size: int) -> dict:
    from rag.api import RAG
    from retrievers.records import Chunk, chunk_id_for

    texts, vectors = load_corpus(work, size)
    rag = RAG.open(work / f"ours_{size}")
    index = rag.index
    started = time.perf_counter()
    per_source = 1000
    for s in range(0, size, per_source):
        source_id = f"{s // per_source:016x}"
        path = f"/synthetic/source_{s // per_source:04d}.txt"
        chunks = [Chunk(chunk_id=chunk_id_for(source_id, f"{n:016x}", n - s), text=texts[n],
                        source=path, source_id=source_id, content_hash="0" * 16,
                        position=n - s, file_type="txt", ingested_at=time.time())
                  for n in range(s, min(size, s + per_source))]
        index.write_source(chunks, vectors[s : s + len(chunks)], source_id=source_id, path=path,
                           content_hash="0" * 16, file_type="txt")
    rag.close()
    return {"build_s": round(time.perf_counter() - started, 1)}


def _percentiles(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1)}


def child_query_ours(work: Path, size: int) -> dict:
    from rag.api import RAG

    queries = json.loads((work / "queries.json").read_text())
    started = time.perf_counter()
    rag = RAG.open(work / f"ours_{size}")
    rag.index  # open catalog, BM25 snapshot, Milvus
    open_s = time.perf_counter() - started
    embed = rag.embedder.encode_query
    embed("warm up the model")
    memory_open = rss_mb()
    for q in queries[:10]:  # warm up both paths
        rag.retrieve(q, top_k=TOP_K, mode="hybrid")
    floor, hybrid, bm25_only = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        rag.index.dense.search(embed(q), TOP_K)
        t1 = time.perf_counter()
        rag.retrieve(q, top_k=TOP_K, mode="hybrid")
        t2 = time.perf_counter()
        rag.retriever.retrievers["bm25"](q, rag.settings.candidate_k)
        t3 = time.perf_counter()
        floor.append((t1 - t0) * 1000)
        hybrid.append((t2 - t1) * 1000)
        bm25_only.append((t3 - t2) * 1000)
    out = {"open_s": round(open_s, 2), "floor": _percentiles(floor),
           "hybrid": _percentiles(hybrid), "bm25_side": _percentiles(bm25_only),
           "memory_after_open": memory_open, "memory_after_queries": rss_mb()}
    rag.close()
    return out


def child_stock(work: Path, size: int) -> dict:
    """The stock pipeline: MilvusVectorStore (its defaults, Milvus Lite) + BM25Retriever (bm25s)
    + QueryFusionRetriever (reciprocal rank, one query), HuggingFaceEmbedding for queries."""
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.milvus import MilvusVectorStore

    from rag.models.embedding import resolve_embedding_model

    texts, vectors = load_corpus(work, size)
    queries = json.loads((work / "queries.json").read_text())
    nodes = [TextNode(id_=f"n{n}", text=t, embedding=vectors[n].tolist())
             for n, t in enumerate(texts)]
    embed_model = HuggingFaceEmbedding(model_name=str(resolve_embedding_model("packaged")),
                                       device="cpu")
    started = time.perf_counter()
    (work / f"stock_{size}").mkdir(exist_ok=True)
    store = MilvusVectorStore(uri=str(work / f"stock_{size}" / "milvus.db"), dim=vectors.shape[1],
                              overwrite=True)
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embed_model)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP_K)
    build_s = time.perf_counter() - started
    # Re-open the collection, as a user's query process would (and as ours is measured):
    # Milvus Lite searches straight after insert in the same client are much slower.
    store.client.close()
    store = MilvusVectorStore(uri=str(work / f"stock_{size}" / "milvus.db"), dim=vectors.shape[1],
                              overwrite=False)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=TOP_K), bm25],
                                  similarity_top_k=TOP_K, num_queries=1, mode="reciprocal_rerank",
                                  use_async=False, llm=MockLLM())
    del nodes
    for q in queries[:10]:
        fusion.retrieve(q)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fusion.retrieve(q)
        times.append((time.perf_counter() - t0) * 1000)
    return {"build_s": round(build_s, 1), "hybrid": _percentiles(times), "memory": rss_mb()}


CHILDREN = {"build-ours": child_build_ours, "query-ours": child_query_ours, "stock": child_stock}


def run_child(kind: str, work: Path, size: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--work", str(work),
                           "--sizes", str(size)], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{kind} {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# --- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--work")
    parser.add_argument("--no-stock", action="store_true")
    parser.add_argument("--base", type=int, default=2000, help="real chunks embedded (smoke: 100)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](Path(args.work), args.sizes[0])), flush=True)
        return 0
    if not ESSAYS.is_dir():
        print(f"no shared data at {ESSAYS}: nothing to measure")
        return 0
    report: dict = {"note": "corpora beyond the ~2,000 real chunks are synthesised: text variations "
                            "of real chunks, vectors = real base vectors + Gaussian noise, "
                            "renormalised", "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="retrieval_latency_") as tmp:
        work = Path(tmp)
        prepare(work, args.sizes, args.base)
        for size in args.sizes:
            row = {"ours_build": run_child("build-ours", work, size)}
            print(f"[{size}] built ours: {row['ours_build']}", flush=True)
            row["ours"] = run_child("query-ours", work, size)
            print(f"[{size}] ours: {row['ours']}", flush=True)
            if not args.no_stock:
                row["stock"] = run_child("stock", work, size)
                print(f"[{size}] stock: {row['stock']}", flush=True)
            report["sizes"][size] = row
    print("\n" + report["note"])
    print(f"retrieval only, top-{TOP_K}, {N_QUERIES} queries, one query per call, this machine")
    print(f"{'chunks':>8} {'what':<34} {'p50 ms':>7} {'p95 ms':>7} {'RSS MB':>8}")
    for size, row in report["sizes"].items():
        ours = row["ours"]
        mem = ours["memory_after_queries"]["rss_mb"]
        print(f"{size:>8} {'floor (embed + dense search)':<34} {ours['floor']['p50_ms']:>7} "
              f"{ours['floor']['p95_ms']:>7}")
        print(f"{size:>8} {'ours hybrid (bm25 + dense, fused)':<34} {ours['hybrid']['p50_ms']:>7} "
              f"{ours['hybrid']['p95_ms']:>7} {mem:>8}")
        print(f"{size:>8} {'  of which bm25 side':<34} {ours['bm25_side']['p50_ms']:>7} "
              f"{ours['bm25_side']['p95_ms']:>7}")
        if "stock" in row:
            st = row["stock"]
            print(f"{size:>8} {'stock llama-index fusion':<34} {st['hybrid']['p50_ms']:>7} "
                  f"{st['hybrid']['p95_ms']:>7} {st['memory']['rss_mb']:>8}")
        ratio = ours["hybrid"]["p95_ms"] / ours["floor"]["p95_ms"]
        verdict = f"hybrid p95 / floor p95 = {ratio:.2f} (target <= 1.5)"
        if "stock" in row:
            verdict += (f"; stock p95 / hybrid p95 = "
                        f"{row['stock']['hybrid']['p95_ms'] / ours['hybrid']['p95_ms']:.2f}")
        print(f"{size:>8} {verdict}; open {ours['open_s']} s; "
              f"peak RSS {ours['memory_after_queries']['peak_rss_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
