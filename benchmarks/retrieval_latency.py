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

The stock pipeline is built in one child and queried in another (BM25Retriever persisted and
loaded with `from_persist_dir`), as ours is, so each peak RSS is that of a query process.
Figures: p50/p95/p99 of ours (hybrid, floor, bm25 side) and stock (hybrid, floor), build time,
size on disk, RSS after the queries and the peak RSS of the query process; ratios ours/stock.

Run (heavy, ~10 min; `make bench-deps` first; part of `rag bench`):
    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/retrieval_latency.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
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
PER_SOURCE = 1000  # synthetic chunks per source file
FILTERED_QUERIES = 60  # queries filtered to one source: latency and dense recall
FILTERED_SOURCE, FILTERED_DEPTH = 3, 50  # the source they keep; the dense top-k checked (candidate_k)
RERANKED_QUERIES = 60  # the cross-encoder's ~0.3 s a query: fewer queries time it well enough
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


def synthetic_source(number: int) -> tuple[str, str]:
    """(source id, path) of the synthetic corpus's source `number` (PER_SOURCE chunks each)."""
    return f"{number:016x}", f"/synthetic/source_{number:04d}.txt"


def synthetic_chunk_id(n: int) -> str:
    """The id of the synthetic corpus's chunk `n`, as its build writes it."""
    from retrievers.records import chunk_id_for

    start = n - n % PER_SOURCE
    return chunk_id_for(synthetic_source(n // PER_SOURCE)[0], f"{n:016x}", n - start)


def child_build_ours(work: Path, size: int) -> dict:
    from rag.api import RAG
    from retrievers.records import Chunk

    texts, vectors = load_corpus(work, size)
    rag = RAG.open(work / f"ours_{size}")
    index = rag.index
    started = time.perf_counter()
    for s in range(0, size, PER_SOURCE):
        source_id, path = synthetic_source(s // PER_SOURCE)
        chunks = [Chunk(chunk_id=synthetic_chunk_id(n), text=texts[n],
                        source=path, source_id=source_id, content_hash="0" * 16,
                        position=n - s, file_type="txt", ingested_at=time.time())
                  for n in range(s, min(size, s + PER_SOURCE))]
        index.write_source(chunks, vectors[s : s + len(chunks)], source_id=source_id, path=path,
                           content_hash="0" * 16, file_type="txt")
    rag.close()
    return {"build_s": round(time.perf_counter() - started, 1),
            "disk_mb": disk_mb(work / f"ours_{size}")}


def _percentiles(times: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(times, q)), 1) for q in (50, 95, 99)}


def disk_mb(path: Path) -> float:
    """Bytes under `path` (the index as it lies on disk), in MB."""
    return round(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6, 1)


def child_query_ours(work: Path, size: int) -> dict:
    from dataclasses import replace

    from rag.api import RAG
    from rag.config import Settings
    from rag.parts import default_reranker

    queries = json.loads((work / "queries.json").read_text())
    started = time.perf_counter()
    # The fusion itself, as stock's has no cross-encoder: the default reranker is timed apart
    # below (its cost is the same at every index size: it reads the fused top rerank_top_n).
    rag = RAG.open(work / f"ours_{size}", rerank_model="")
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
    out["filtered"] = filtered_figures(rag, work, size, queries[:FILTERED_QUERIES], embed)
    defaults = replace(rag.settings, rerank_model=Settings().rerank_model)  # as shipped
    reranker = default_reranker(defaults)
    if reranker is not None:  # the default retrieval: fused top rerank_top_n, then the cross-encoder
        reranked = []
        for n, q in enumerate(queries[:RERANKED_QUERIES]):
            t0 = time.perf_counter()
            hits = rag.retrieve(q, top_k=max(TOP_K, defaults.rerank_top_n), mode="hybrid")
            reranker.rerank(q, hits)[:TOP_K]
            if n >= 5:  # the first few load and warm the model
                reranked.append((time.perf_counter() - t0) * 1000)
        out["hybrid_reranked"] = _percentiles(reranked)
    rag.close()
    return out


def filtered_figures(rag, work: Path, size: int, queries: list[str], embed) -> dict:
    """Queries filtered to one source (1,000 chunks: 10% of 10k, 1% of 100k): hybrid latency, and
    the dense top-50 among that source against the exact one (numpy over the source's vectors),
    on this index's path and on Milvus Lite's own filtered search (pymilvus, the same ef)."""
    from retrievers.filters import Filters

    s = FILTERED_SOURCE
    if size < (s + 1) * PER_SOURCE:
        return {}
    only = Filters(sources=[synthetic_source(s)[1]])
    _, vectors = load_corpus(work, size)
    kept = range(s * PER_SOURCE, (s + 1) * PER_SOURCE)
    rows = vectors[kept.start:kept.stop]
    ids = [synthetic_chunk_id(n) for n in kept]
    dense, k = rag.index.dense, FILTERED_DEPTH
    for q in queries[:5]:
        rag.retrieve(q, top_k=TOP_K, mode="hybrid", filters=only)
    hybrid, ours, lite, ours_recall, lite_recall = [], [], [], [], []
    for q in queries:
        t0 = time.perf_counter()
        rag.retrieve(q, top_k=TOP_K, mode="hybrid", filters=only)
        hybrid.append((time.perf_counter() - t0) * 1000)
        vector = embed(q)
        exact = {ids[i] for i in np.argsort(-(rows @ (vector / np.linalg.norm(vector))))[:k]}
        t0 = time.perf_counter()
        found = dense.search(vector, k, filters=only)
        ours.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        theirs = dense.client.search(dense.collection, data=[vector.tolist()], limit=k,
                                     filter=only.milvus_expr(), anns_field="vector",
                                     search_params=dense._dense_params(k), output_fields=[])
        lite.append((time.perf_counter() - t0) * 1000)
        ours_recall.append(len(exact & {c for c, _ in found}) / k)
        lite_recall.append(len(exact & {hit["id"] for hit in theirs[0]}) / k)
    return {"share": round(PER_SOURCE / size, 4), "hybrid": _percentiles(hybrid),
            "dense": _percentiles(ours), "dense_recall": round(float(np.mean(ours_recall)), 3),
            "lite_dense": _percentiles(lite),
            "lite_dense_recall": round(float(np.mean(lite_recall)), 3)}


STOCK_MODULES = ("llama_index.embeddings.huggingface", "llama_index.retrievers.bm25",
                 "llama_index.vector_stores.milvus")


def missing_stock_modules(modules: tuple[str, ...] = STOCK_MODULES) -> list[str]:
    """The stock pipeline's modules this environment lacks (the `bench` extra)."""
    from importlib.util import find_spec

    def absent(name: str) -> bool:
        try:
            return find_spec(name) is None
        except ModuleNotFoundError:  # a parent package is missing
            return True

    return [name for name in modules if absent(name)]


def _stock_parts():
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.milvus import MilvusVectorStore

    return (StorageContext, VectorStoreIndex, MockLLM, QueryFusionRetriever, TextNode,
            BM25Retriever, MilvusVectorStore)


def child_interleaved(work: Path, sizes: list[int]) -> dict:
    """Hybrid queries on every tier's index from one process, tiers taking turns query by query,
    so each tier is measured under the same load: on shared cores the load drifts between the
    minutes one tier runs and the next, which moved p95 more than the index size did."""
    from rag.api import RAG
    from rag.models.embedder import Embedder

    queries = json.loads((work / "queries.json").read_text())
    embedder = Embedder("packaged")
    rags = {size: RAG.open(work / f"ours_{size}", embedder=embedder, rerank_model="")
            for size in sizes}
    for rag in rags.values():
        for q in queries[:10]:
            rag.retrieve(q, top_k=TOP_K, mode="hybrid")
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for n, q in enumerate(queries):
        order = sizes if n % 2 == 0 else sizes[::-1]
        for size in order:
            t0 = time.perf_counter()
            rags[size].retrieve(q, top_k=TOP_K, mode="hybrid")
            times[size].append((time.perf_counter() - t0) * 1000)
    for rag in rags.values():
        rag.close()
    return {str(size): _percentiles(t) for size, t in times.items()}


def child_build_stock(work: Path, size: int) -> dict:
    """The stock pipeline's index: MilvusVectorStore (its defaults, Milvus Lite) filled through
    VectorStoreIndex with the same vectors, and BM25Retriever (bm25s) persisted next to it."""
    StorageContext, VectorStoreIndex, _, _, TextNode, BM25Retriever, MilvusVectorStore = _stock_parts()
    texts, vectors = load_corpus(work, size)
    nodes = [TextNode(id_=f"n{n}", text=t, embedding=vectors[n].tolist())
             for n, t in enumerate(texts)]
    folder = work / f"stock_{size}"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    store = MilvusVectorStore(uri=str(folder / "milvus.db"), dim=vectors.shape[1], overwrite=True)
    from llama_index.core.embeddings import MockEmbedding  # the nodes carry their vectors

    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                     embed_model=MockEmbedding(embed_dim=vectors.shape[1]))
    BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP_K).persist(str(folder / "bm25"))
    store.client.close()
    return {"build_s": round(time.perf_counter() - started, 1), "disk_mb": disk_mb(folder)}


def child_stock(work: Path, size: int) -> dict:
    """Hybrid queries on the stock index, opened fresh as a user's query process would:
    MilvusVectorStore + BM25Retriever.from_persist_dir + QueryFusionRetriever (reciprocal rank,
    one query), HuggingFaceEmbedding of the same packaged model for queries."""
    _, VectorStoreIndex, MockLLM, QueryFusionRetriever, _, BM25Retriever, MilvusVectorStore = _stock_parts()
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from rag.models.embedding import resolve_embedding_model

    queries = json.loads((work / "queries.json").read_text())
    folder = work / f"stock_{size}"
    started = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=str(resolve_embedding_model("packaged")),
                                       device="cpu")
    store = MilvusVectorStore(uri=str(folder / "milvus.db"), dim=384, overwrite=False)
    store.client.load_collection(store.collection_name)  # a re-opened Lite collection is released
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    bm25 = BM25Retriever.from_persist_dir(str(folder / "bm25"))
    bm25.similarity_top_k = TOP_K
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=TOP_K), bm25],
                                  similarity_top_k=TOP_K, num_queries=1, mode="reciprocal_rerank",
                                  use_async=False, llm=MockLLM())
    open_s = time.perf_counter() - started
    for q in queries[:10]:
        fusion.retrieve(q)
    memory_open = rss_mb()
    floor, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        store.query(_vector_query(embed_model.get_query_embedding(q)))
        t1 = time.perf_counter()
        fusion.retrieve(q)
        floor.append((t1 - t0) * 1000)
        times.append((time.perf_counter() - t1) * 1000)
    return {"open_s": round(open_s, 2), "floor": _percentiles(floor),
            "hybrid": _percentiles(times), "memory_after_open": memory_open,
            "memory_after_queries": rss_mb()}


def _vector_query(embedding: list[float]):
    from llama_index.core.vector_stores.types import VectorStoreQuery

    return VectorStoreQuery(query_embedding=embedding, similarity_top_k=TOP_K)


CHILDREN = {"build-ours": child_build_ours, "query-ours": child_query_ours,
            "build-stock": child_build_stock, "stock": child_stock,
            "interleaved": child_interleaved}


def run_child(kind: str, work: Path, size: int | list[int]) -> dict:
    sizes = [str(s) for s in (size if isinstance(size, list) else [size])]
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--work", str(work),
                           "--sizes", *sizes], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{kind} {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def summarise(report: dict) -> dict:
    """The ratios the issue asks for, per tier and across tiers."""
    sizes = report["sizes"]
    out: dict = {}
    for size, row in sizes.items():
        ours = row["ours"]
        r = {"hybrid_p95_over_floor_p95": ratio(ours["hybrid"]["p95_ms"], ours["floor"]["p95_ms"])}
        if "stock" in row:
            st = row["stock"]
            r["ours_over_stock_hybrid_p50"] = ratio(ours["hybrid"]["p50_ms"], st["hybrid"]["p50_ms"])
            r["ours_over_stock_hybrid_p95"] = ratio(ours["hybrid"]["p95_ms"], st["hybrid"]["p95_ms"])
            r["ours_over_stock_peak_rss"] = ratio(ours["memory_after_queries"]["peak_rss_mb"],
                                                  st["memory_after_queries"]["peak_rss_mb"])
            r["ours_over_stock_build_s"] = ratio(row["ours_build"]["build_s"],
                                                 row["stock_build"]["build_s"])
            r["ours_over_stock_disk"] = ratio(row["ours_build"]["disk_mb"],
                                              row["stock_build"]["disk_mb"])
        out[size] = r
    keys = sorted(sizes, key=int)
    if len(keys) > 1:
        small = sizes[keys[0]]["ours"]["hybrid"]["p95_ms"]
        for size in keys[1:]:
            out[size][f"hybrid_p95_over_{keys[0]}"] = ratio(sizes[size]["ours"]["hybrid"]["p95_ms"], small)
            inter = report.get("interleaved")
            if inter:
                out[size][f"interleaved_hybrid_p95_over_{keys[0]}"] = ratio(
                    inter[size]["p95_ms"], inter[keys[0]]["p95_ms"])
    return out


def print_table(report: dict) -> None:
    print("\n" + report["note"])
    print(f"retrieval only, top-{TOP_K}, {N_QUERIES} queries, one query per call, this machine")
    print(f"{'chunks':>8} {'what':<32} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'build s':>8} "
          f"{'disk MB':>8} {'RSS MB':>7} {'peak MB':>8}")

    def line(size, what, lat, build=None, mem=None):
        b = f"{build['build_s']:>8} {build['disk_mb']:>8}" if build else f"{'':>8} {'':>8}"
        m = (f"{mem['rss_mb']:>7} {mem['peak_rss_mb']:>8}") if mem else ""
        print(f"{size:>8} {what:<32} {lat['p50_ms']:>7} {lat['p95_ms']:>7} {lat['p99_ms']:>7} {b} {m}")

    for size, row in report["sizes"].items():
        ours = row["ours"]
        line(size, "floor (embed + 1 Milvus search)", ours["floor"])
        line(size, "ours hybrid (bm25 + dense)", ours["hybrid"], row["ours_build"],
             ours["memory_after_queries"])
        line(size, "  of which bm25 side", ours["bm25_side"])
        if "hybrid_reranked" in ours:
            line(size, "ours hybrid + rerank (default)", ours["hybrid_reranked"])
        if ours.get("filtered"):
            f = ours["filtered"]
            line(size, "ours hybrid, one source", f["hybrid"])
            line(size, f"  dense top-{FILTERED_DEPTH}, R {f['dense_recall']}", f["dense"])
            line(size, f"  Lite's own, R {f['lite_dense_recall']}", f["lite_dense"])
        if "stock" in row:
            line(size, "stock floor (embed + Milvus)", row["stock"]["floor"])
            line(size, "stock llama-index fusion", row["stock"]["hybrid"], row["stock_build"],
                 row["stock"]["memory_after_queries"])
    for size, lat in report.get("interleaved", {}).items():
        line(size, "ours hybrid, tiers interleaved", lat)
    for size, r in report["ratios"].items():
        print(f"{size:>8} " + ", ".join(f"{k} {v}" for k, v in r.items()))


# --- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--work")
    parser.add_argument("--no-stock", action="store_true")
    parser.add_argument("--stock-max", type=int, default=100_000,
                        help="largest tier the stock pipeline runs (it needs ~4 GB at 100k)")
    parser.add_argument("--base", type=int, default=2000, help="real chunks embedded (smoke: 100)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        arg = args.sizes if args.child == "interleaved" else args.sizes[0]
        print(json.dumps(CHILDREN[args.child](Path(args.work), arg)), flush=True)
        return 0
    if not ESSAYS.is_dir():
        print(f"no shared data at {ESSAYS}: nothing to measure")
        return 0
    missing = [] if args.no_stock else missing_stock_modules()
    if missing:  # say so before minutes of building, not in a child's traceback after them
        print(f"retrieval_latency: the stock llama-index side needs `make bench-deps` (missing "
              f"{', '.join(missing)}); or run with --no-stock", file=sys.stderr)
        return 2
    report: dict = {"note": f"corpora beyond the {args.base} real chunks are SYNTHESISED: each copy "
                            "of a real chunk drops one sentence, swaps two and borrows one from "
                            "another chunk; its vector is the real chunk's vector (packaged MiniLM) "
                            f"plus Gaussian noise (sigma {NOISE}/dim, cosine ~0.97), renormalised. "
                            "Queries are embedded for real. Ours and stock index the same texts "
                            "and vectors.", "sizes": {}, "seconds": {}}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="retrieval_latency_") as tmp:
        work = Path(tmp)
        prepare(work, args.sizes, args.base)
        report["seconds"]["prepare"] = round(time.perf_counter() - began, 1)
        for size in args.sizes:
            tier = time.perf_counter()
            row = {"ours_build": run_child("build-ours", work, size)}
            print(f"[{size}] built ours: {row['ours_build']}", flush=True)
            row["ours"] = run_child("query-ours", work, size)
            print(f"[{size}] ours: {row['ours']}", flush=True)
            if not args.no_stock and size <= args.stock_max:
                row["stock_build"] = run_child("build-stock", work, size)
                print(f"[{size}] built stock: {row['stock_build']}", flush=True)
                row["stock"] = run_child("stock", work, size)
                print(f"[{size}] stock: {row['stock']}", flush=True)
            shutil.rmtree(work / f"stock_{size}", ignore_errors=True)  # ours: kept for below
            report["sizes"][str(size)] = row
            report["seconds"][str(size)] = round(time.perf_counter() - tier, 1)
        if len(args.sizes) > 1:
            started = time.perf_counter()
            report["interleaved"] = run_child("interleaved", work, args.sizes)
            report["seconds"]["interleaved"] = round(time.perf_counter() - started, 1)
            print(f"interleaved tiers: {report['interleaved']}", flush=True)
    report["ratios"] = summarise(report)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
