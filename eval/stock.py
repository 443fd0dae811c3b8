"""Stock llama-index over the same index: what `rag eval --pipeline stock` runs.

Quality claims are made against the pipeline a user would otherwise write with llama-index, in
the same run, on the same chunks, with the same embedding vectors and the same answer model:
- retrieval: `QueryFusionRetriever` (reciprocal rank, one query) over llama-index's
  `BM25Retriever` (bm25s) and a `VectorStoreIndex` on its own `MilvusVectorStore` (Milvus Lite,
  its defaults) holding the index's chunks as `TextNode`s with the vectors our Milvus holds;
- answers: `RetrieverQueryEngine` with its default response synthesizer and prompts, and this
  project's model through `RAG.as_llm()`. It has no decline step and writes no citations; an
  answer counts as declined when its wording says the context does not hold it (the same rule
  benchmarks/answers_paul_graham.py uses).

`StockPipeline` offers what `eval.runner.run_eval` uses of a `RAG` (`retrieve`, `stream`,
`index`, `settings`, `llm`, `index_dir`), so every metric is computed by the same code for both.
It needs the stock parts: the test extra plus llama-index-retrievers-bm25 (`make install`).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from eval.errors import EvalError

INSTALL = ("pip install -e '.[test]' && pip install --no-deps llama-index-retrievers-bm25==0.8.0 "
           "(make install does both)")
# Stock answers that say the context lacks the answer ("The context does not mention ...").
DECLINE_WORDING = re.compile(
    r"\b(not|no|cannot|can't|doesn't|does not|isn't|is not)\b.*\b(context|information|mention"
    r"|mentioned|provided)\b", re.I | re.S)


class StockAnswer:
    """The stream-like result `run_eval` reads: `.answer` and `.hits`."""

    def __init__(self, answer: Any, hits: list):
        self.answer, self.hits = answer, hits


class StockPipeline:
    """Stock llama-index retrieval and answering over `rag`'s chunks, vectors and model."""

    name = "stock llama-index"

    def __init__(self, rag: Any):
        import importlib.util

        for module in ("llama_index.retrievers.bm25", "llama_index.vector_stores.milvus", "bm25s"):
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:  # a missing parent package
                found = False
            if not found:
                raise EvalError(f"--pipeline stock needs the stock llama-index parts ({module} is "
                                f"missing): {INSTALL}")
        self.rag = rag
        self._work = Path(tempfile.mkdtemp(prefix="rag-eval-stock-"))
        self._nodes, self._vector_store, self._vector_index = self._build()
        self._retrievers: dict[int, Any] = {}
        self._engines: dict[int, Any] = {}

    # --- what run_eval reads of a RAG ----------------------------------------------------------
    @property
    def index(self) -> Any:
        return self.rag.index

    @property
    def settings(self) -> Any:
        return self.rag.settings

    @property
    def llm(self) -> Any:
        return self.rag.llm

    @property
    def index_dir(self) -> Path:
        return self.rag.index_dir

    def retrieve(self, query: str, top_k: int = 5, **_: Any) -> list:
        return self._hits(self._retriever(top_k).retrieve(query))

    def stream(self, question: str, top_k: int = 5) -> StockAnswer:
        from rag.generation import Answer, Citation

        started = time.perf_counter()
        response = self._engine(top_k).query(question)
        hits = self._hits(response.source_nodes)
        text = str(response).strip()
        contexts = [Citation.from_hit(n, h) for n, h in enumerate(hits, start=1)]
        declined = not text or bool(DECLINE_WORDING.search(text))
        total = (time.perf_counter() - started) * 1000
        answer = Answer(text, [], contexts, {"total": total, "generate": total}, declined, question)
        return StockAnswer(answer, hits)

    def close(self) -> None:
        try:
            self._vector_store.client.close()
        except Exception:  # closing a client that never connected
            pass
        shutil.rmtree(self._work, ignore_errors=True)

    # --- building -------------------------------------------------------------------------------
    def _build(self) -> tuple[list, Any, Any]:
        from llama_index.core import Settings as LlamaSettings
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.core.schema import TextNode
        from llama_index.vector_stores.milvus import MilvusVectorStore

        rag = self.rag
        # llama-index's default tokenizer (tiktoken) would download its vocabulary: use the model's.
        LlamaSettings.tokenizer = lambda text: list(range(rag.llm.count_tokens(text)))
        ids = sorted(rag.index.live_ids())
        if not ids:
            raise EvalError(f"{rag.index_dir}: the index is empty; nothing for the stock pipeline")
        chunks = rag.index.chunks(ids)
        vectors = _stored_vectors(rag.index.dense, ids)
        nodes = [TextNode(id_=cid, text=chunks[cid].text, embedding=vectors[cid],
                          metadata={"source": chunks[cid].source}) for cid in ids if cid in vectors]
        store = MilvusVectorStore(uri=str(self._work / "milvus.db"), dim=len(nodes[0].embedding),
                                  overwrite=True)
        index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                                 embed_model=_QueryEmbedding(rag))
        return nodes, store, index

    def _retriever(self, k: int) -> Any:
        if k not in self._retrievers:
            from llama_index.core.llms import MockLLM
            from llama_index.core.retrievers import QueryFusionRetriever
            from llama_index.retrievers.bm25 import BM25Retriever

            dense = self._vector_index.as_retriever(similarity_top_k=k)
            bm25 = BM25Retriever.from_defaults(nodes=self._nodes, similarity_top_k=k)
            self._retrievers[k] = QueryFusionRetriever(
                [dense, bm25], similarity_top_k=k, num_queries=1, mode="reciprocal_rerank",
                use_async=False, llm=MockLLM())
        return self._retrievers[k]

    def _engine(self, k: int) -> Any:
        if k not in self._engines:
            from llama_index.core.query_engine import RetrieverQueryEngine

            self._engines[k] = RetrieverQueryEngine.from_args(self._retriever(k), llm=self.rag.as_llm())
        return self._engines[k]

    def _hits(self, nodes: list) -> list:
        from retrievers.records import Hit

        chunks = self.rag.index.chunks([n.node.node_id for n in nodes])
        return [Hit(chunks[n.node.node_id], float(n.score or 0.0), {"stock": rank})
                for rank, n in enumerate(nodes, start=1) if n.node.node_id in chunks]


def _stored_vectors(store: Any, ids: list[str]) -> dict[str, list[float]]:
    """The vectors the index's Milvus holds (so both pipelines search the same embeddings)."""
    import json

    vectors: dict[str, list[float]] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        for row in store.client.query(store.collection, filter=f"id in {json.dumps(batch)}",
                                      output_fields=["id", "vector"]):
            vectors[row["id"]] = [float(x) for x in row["vector"]]
    return vectors


def _query_embedding_class():
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class QueryEmbedding(BaseEmbedding):
        """llama-index's embedding interface over the index's own embedder (same model and
        query handling as ours; HuggingFaceEmbedding would load a second copy)."""

        _rag: Any = PrivateAttr()

        def __init__(self, rag: Any):
            super().__init__(model_name="rag-embedder")
            self._rag = rag

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._rag.embedder.encode_query(query)]

        def _get_text_embedding(self, text: str) -> list[float]:
            return [float(x) for x in self._rag.embedder.encode([text])[0]]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return QueryEmbedding


def _QueryEmbedding(rag: Any) -> Any:  # noqa: N802 (a class built on first use: llama-index is optional)
    return _query_embedding_class()(rag)
