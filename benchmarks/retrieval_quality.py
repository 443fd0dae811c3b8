"""Retrieval quality: Recall@5, Recall@10 and MRR@10 for bm25, dense and hybrid, next to the stock
llama-index pipeline on the same chunks and the same embedding model, in one run.

Data: ../shared/data/qa/paul_graham (212 essays, 55 questions with a quote) and
../shared/data/qa/blockchain_solana (one PDF, 58 questions with a page-long reference context).
Every source document is indexed with the project's own pipeline (loaders, 254-token chunks,
MiniLM); the stock pipeline gets exactly those chunks and their vectors (as `TextNode`s with
embeddings), its BM25Retriever (bm25s), MilvusVectorStore (Milvus Lite, its defaults) and
QueryFusionRetriever (reciprocal rank, one query), with HuggingFaceEmbedding for the queries.

A case is a hit at rank r when the r-th chunk contains the reference text after whitespace
normalisation, or when their token overlap covers at least 60% of the shorter of the two
(the Solana references are ~400 words, longer than a chunk: there a hit is a chunk that lies
mostly inside the reference; the Paul Graham quotes are ~30 words: there the chunk must hold
most of the quote).

Run (heavy: embeds ~3,500 chunks):
    pip install -e '.[bench]' && pip install --no-deps llama-index-retrievers-bm25==0.8.0
    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/retrieval_quality.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "qa"
DATASETS = {
    "paul_graham": (DATA / "paul_graham", "essays/*.txt"),
    "blockchain_solana": (DATA / "blockchain_solana", "source_files/*.pdf"),
}
DEPTH = 50  # candidates per retriever before fusion (the project's candidate_k default)


# --- hit definition: the evaluation suite's (`rag eval` reports the same figures) ----------------
from eval.retrieval_metrics import is_hit  # noqa: E402  (after the sys.path line above)


def score(ranked_texts: list[list[str]], cases: list[dict]) -> dict[str, float]:
    r5 = r10 = mrr = 0.0
    for texts, case in zip(ranked_texts, cases):
        first = next((rank for rank, text in enumerate(texts[:10], start=1)
                      if any(is_hit(text, ref) for ref in case["reference_contexts"])), None)
        r5 += first is not None and first <= 5
        r10 += first is not None
        mrr += 1.0 / first if first else 0.0
    n = len(cases)
    return {"recall@5": r5 / n, "recall@10": r10 / n, "mrr@10": mrr / n}


# --- the project's retrievers ----------------------------------------------------------------
def build_ours(name: str, folder: Path, pattern: str, work: Path, embedder):
    from rag.api import RAG

    rag = RAG.open(work / f"ours_{name}", embedder=embedder)
    files = sorted(folder.glob(pattern))
    started = time.perf_counter()
    results = rag.ingest(files)
    failed = [r for r in results if r.status == "failed"]
    print(f"  [{name}] indexed {len(files)} files -> {rag.index.catalog.count()} chunks "
          f"in {time.perf_counter() - started:.0f} s ({len(failed)} failed)", flush=True)
    return rag


def our_rankings(rag, cases: list[dict]) -> dict[str, list[list[tuple[str, float]]]]:
    """Per retriever and case: the top-DEPTH (chunk_id, score), computed once, fused later."""
    retriever = rag.retriever
    out: dict[str, list] = {"bm25": [], "dense": []}
    for case in cases:
        out["bm25"].append(retriever.retrievers["bm25"](case["question"], DEPTH))
        out["dense"].append(retriever.retrievers["dense"](case["question"], DEPTH))
    return out


# --- the stock llama-index pipeline ------------------------------------------------------------
def build_stock(rag, work: Path, name: str):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.milvus import MilvusVectorStore

    from rag.models.embedding import resolve_embedding_model

    ids = sorted(rag.index.live_ids())
    chunks = rag.index.chunks(ids)
    vectors: dict[str, list[float]] = {}
    store = rag.index.dense
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        for row in store.client.query(store.collection, filter=f"id in {json.dumps(batch)}",
                                      output_fields=["id", "vector"]):
            vectors[row["id"]] = [float(x) for x in row["vector"]]
    nodes = [TextNode(id_=cid, text=chunks[cid].text, embedding=vectors[cid],
                      metadata={"source": chunks[cid].source}) for cid in ids]
    embed_model = HuggingFaceEmbedding(model_name=str(resolve_embedding_model("packaged")),
                                       device="cpu")
    (work / f"stock_{name}").mkdir(parents=True, exist_ok=True)
    vector_store = MilvusVectorStore(uri=str(work / f"stock_{name}" / "milvus.db"),
                                     dim=len(next(iter(vectors.values()))), overwrite=True)
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(
        vector_store=vector_store), embed_model=embed_model)
    dense = index.as_retriever(similarity_top_k=10)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10)
    fusion = QueryFusionRetriever([dense, bm25], similarity_top_k=10, num_queries=1,
                                  mode="reciprocal_rerank", use_async=False, llm=MockLLM())
    return {"bm25": bm25, "dense": dense, "hybrid": fusion}, vector_store


# --- main -------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no shared data at {DATA}: nothing to measure")
        return 0
    from rag.models.embedder import Embedder
    from retrievers.fusion import reciprocal_rank_fusion, weighted_score_fusion, zscore_fusion

    embedder = Embedder("packaged")
    report: dict = {"hit_rule": "contains the reference (whitespace-normalised) or token overlap "
                                ">= 60% of the shorter text", "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="retrieval_quality_") as tmp:
        work = Path(tmp)
        for name in args.datasets:
            folder, pattern = DATASETS[name]
            cases = [json.loads(line) for line in (folder / "normalized.jsonl").read_text().splitlines()
                     if line.strip()]
            print(f"{name}: {len(cases)} questions", flush=True)
            rag = build_ours(name, folder, pattern, work, embedder)
            def texts(ranked: list[tuple[str, float]]) -> list[str]:
                by_id = rag.index.chunks([cid for cid, _ in ranked[:10]])
                return [by_id[cid].text for cid, _ in ranked[:10] if cid in by_id]

            runs = our_rankings(rag, cases)
            rows: dict[str, dict] = {}
            rows["ours bm25"] = score([texts(r) for r in runs["bm25"]], cases)
            rows["ours dense"] = score([texts(r) for r in runs["dense"]], cases)
            hybrid_hits = [rag.retrieve(c["question"], top_k=10, mode="hybrid") for c in cases]
            s = rag.settings
            default_label = (f"ours hybrid (default: {s.fusion}"
                             + (f" k={s.rrf_k}" if s.fusion == "rrf" else "")
                             + f", dense x{s.dense_weight / s.bm25_weight:g})")
            rows[default_label] = score(
                [[h.chunk.text for h in hits] for hits in hybrid_hits], cases)
            variants = {
                "ours hybrid (rrf k=60)": lambda r: reciprocal_rank_fusion(r, 60),
                "ours hybrid (rrf k=20)": lambda r: reciprocal_rank_fusion(r, 20),
                "ours hybrid (rrf k=60, dense x2)": lambda r: reciprocal_rank_fusion(
                    r, 60, {"bm25": 1.0, "dense": 2.0}),
                "ours hybrid (rrf k=60, bm25 x2)": lambda r: reciprocal_rank_fusion(
                    r, 60, {"bm25": 2.0, "dense": 1.0}),
                "ours hybrid (weighted min-max)": lambda r: weighted_score_fusion(r),
                "ours hybrid (weighted min-max, dense x1.4)": lambda r: weighted_score_fusion(
                    r, {"bm25": 1.0, "dense": 1.4}),
                "ours hybrid (zscore, equal weights)": lambda r: zscore_fusion(r),
            }
            for label, fuse in variants.items():
                fused = [fuse({"bm25": b, "dense": d}) for b, d in zip(runs["bm25"], runs["dense"])]
                rows[label] = score([texts([(f.chunk_id, f.score) for f in fl]) for fl in fused],
                                    cases)
            stock, stock_store = build_stock(rag, work, name)
            for label, retriever in stock.items():
                results = [retriever.retrieve(c["question"]) for c in cases]
                rows[f"stock llama-index {label}"] = score(
                    [[n.node.get_content() for n in nodes] for nodes in results], cases)
            stock_store.client.close()
            rag.close()
            report["datasets"][name] = {"questions": len(cases), "results": rows}
            best_single = max(rows["ours bm25"]["recall@10"], rows["ours dense"]["recall@10"])
            best_single_mrr = max(rows["ours bm25"]["mrr@10"], rows["ours dense"]["mrr@10"])
            best_single_r5 = max(rows["ours bm25"]["recall@5"], rows["ours dense"]["recall@5"])
            default = rows[default_label]
            verdict = ", ".join(
                f"{metric} {'holds' if default[metric] >= best else 'MISSED'}"
                for metric, best in (("recall@5", best_single_r5), ("recall@10", best_single),
                                     ("mrr@10", best_single_mrr)))
            print(f"\n{name} ({len(cases)} questions)")
            print(f"  {'retriever':<44} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
            for label, m in rows.items():
                print(f"  {label:<44} {m['recall@5']:>6.3f} {m['recall@10']:>6.3f} "
                      f"{m['mrr@10']:>7.3f}")
            print(f"  default hybrid >= the better of bm25/dense: {verdict}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
