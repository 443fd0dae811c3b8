"""The Python API: `RAG.open(index_dir)` then `ingest`, `ask`, `retrieve`.

Heavy pieces (embedding model, Milvus, the LLM, Whisper) load on first use, so opening an
index to read its stats is cheap and `import rag` stays fast.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rag.config import Settings, load_settings
from rag.errors import ConfigError
from rag.generation import Answer, Citation, build_messages, fit_contexts
from rag.models.embedding import display_name, embedding_fingerprint, resolve_embedding_model

if TYPE_CHECKING:
    from rag.answering import AnswerStream

INDEX_SETTINGS_KEY = "index_settings"


class RAG:
    """One index and the models that serve it."""

    def __init__(self, settings: Settings, llm: Any = None):
        self.settings = settings
        self._llm = llm
        self.index_dir = Path(settings.index_dir)

    @classmethod
    def open(cls, index_dir: str | Path | None = None, *, llm: Any = None, **settings: Any) -> "RAG":
        """Open (or create) the index at `index_dir`; keyword arguments override any setting."""
        return cls(load_settings(index_dir, **settings), llm=llm)

    # --- lazily built parts ------------------------------------------------------------
    @cached_property
    def embedder(self):
        from rag.models.embedder import Embedder

        s = self.settings
        return Embedder(s.embedding_model, s.embedding_device, s.embedding_dtype,
                        s.embedding_batch_size)

    @cached_property
    def index(self):
        from retrievers.catalog import Catalog
        from retrievers.index import CATALOG_FILE, ChunkIndex
        from retrievers.milvus_store import MilvusDenseStore

        s = self.settings
        self.index_dir.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(self.index_dir / CATALOG_FILE)
        recorded = catalog.get_meta(INDEX_SETTINGS_KEY)
        resolved = resolve_embedding_model(s.embedding_model)
        fingerprint = embedding_fingerprint(resolved)
        if recorded is None:
            recorded = {
                "embedding_model": display_name(s.embedding_model),
                "embedding_fingerprint": fingerprint,
                "dimension": self.embedder.dimension,
                "chunk_size": s.chunk_size,
                "chunk_overlap": s.chunk_overlap,
                "created_at": time.time(),
            }
            catalog.set_meta(INDEX_SETTINGS_KEY, recorded)
        elif recorded["embedding_fingerprint"] != fingerprint:
            catalog.close()
            raise ConfigError(
                f"{self.index_dir}: this index was built with embedding model "
                f"{recorded['embedding_model']} ({recorded['embedding_fingerprint']}); "
                f"{display_name(s.embedding_model)} ({fingerprint}) would mix incompatible "
                "vectors. Use the original model, or a new index directory"
            )
        catalog.close()
        dense = MilvusDenseStore(s.milvus_target, s.collection, int(recorded["dimension"]),
                                 token=s.milvus_token, full_text=s.sparse == "milvus")
        # `embed` lets repair re-embed live chunks a crash kept out of Milvus (loads lazily).
        return ChunkIndex(self.index_dir, dense, s.bm25_k1, s.bm25_b, s.bm25_epsilon,
                          embed=lambda texts: self.embedder.encode(texts), sparse=s.sparse)

    @cached_property
    def retriever(self):
        from retrievers.hybrid import HybridRetriever

        s = self.settings
        return HybridRetriever(
            self.index, self.embedder.encode_query, candidate_k=s.candidate_k, fusion=s.fusion,
            rrf_k=s.rrf_k, weights={"bm25": s.bm25_weight, "dense": s.dense_weight},
            sparse=s.sparse, reranker=self._reranker(), rerank_top_n=s.rerank_top_n,
        )

    def _reranker(self):
        if not self.settings.rerank_model:
            return None
        from retrievers.rerank import CrossEncoderReranker

        return CrossEncoderReranker(self.settings.rerank_model, self.settings.embedding_device)

    @property
    def llm(self):
        """The answer model: the configured backend, or the `llm=` given to `open` (a
        `rag.llm` backend or any llama-index `LLM`, adapted)."""
        if self._llm is None:
            from rag.llm import backend_from_settings

            self._llm = backend_from_settings(self.settings)
        elif not hasattr(self._llm, "count_tokens"):
            from rag.llama_index_views import LlamaIndexChat

            self._llm = LlamaIndexChat(self._llm)
        return self._llm

    def _pipeline(self, show_progress: bool):
        from ingestion.chunking import Chunker
        from ingestion.pipeline import IngestionPipeline

        s = self.settings
        chunker = Chunker(self.embedder.count_tokens, s.chunk_size, s.chunk_overlap)
        return IngestionPipeline(
            self.index, self.embedder, chunker, transcriber=self._transcriber,
            max_file_bytes=int(s.max_file_mb * 2**20), show_progress=show_progress,
            batch_chunks=s.ingest_batch_chunks, read_ahead=s.ingest_read_ahead,
        )

    def _transcriber(self):
        from ingestion.audio import WhisperTranscriber
        from rag.config import PACKAGED

        s = self.settings
        checkpoint: str | Path = s.whisper_model
        if checkpoint in ("", PACKAGED):
            from rag.models.whisper_ct2 import packaged_whisper_checkpoint

            checkpoint = packaged_whisper_checkpoint()
        return WhisperTranscriber(checkpoint, language=s.whisper_language or None)

    # --- public operations -------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path], *, show_progress: bool = False,
               on_result=None, prune: bool = False) -> list:
        """Index files and folders; returns one `FileResult` per file (never raises per file).

        `prune=True` also deletes indexed sources under `paths` whose files are gone."""
        return self._pipeline(show_progress).ingest(paths, on_result=on_result, prune=prune)

    def retrieve(self, query: str, top_k: int | None = None, mode: str | None = None,
                 filters: Any = None) -> list:
        """The fused top-k `Hit`s for a query (no LLM). `filters`: a `retrievers.filters.Filters`
        or a dict like `{"source": "docs/", "file_type": "pdf", "since": "2026-11-01",
        "page": "3-7"}`, applied inside both retrievers before their top-k cut."""
        return self.retriever.retrieve(query, top_k or self.settings.top_k,
                                       mode or self.settings.retrieval_mode, filters=filters)

    def ask(self, question: str, top_k: int | None = None, filters: Any = None) -> Answer:
        """Retrieve, then write an answer whose `[n]` marks all name entries of `citations`.

        When the retrieved contexts do not hold the answer, `Answer.declined` is True and the
        text says so (see `rag.grounding`) instead of guessing.
        """
        return self.stream(question, top_k, filters=filters).answer

    def stream(self, question: str, top_k: int | None = None, filters: Any = None, *,
               query: str | None = None) -> "AnswerStream":
        """Like `ask`, but iterate the result for text deltas as they are written.

        `for delta in rag.stream(q): print(delta, end="")`, then `.answer` for the `Answer`.
        `query`, when given, is what is searched (e.g. a chat follow-up's standalone rewrite).
        """
        from rag.answering import AnswerStream

        started = time.perf_counter()
        query = query or question
        hits = self.retrieve(query, top_k, filters=filters)
        retrieved = time.perf_counter()
        contexts, messages = self._prompt(question, hits)
        return AnswerStream(question, query, hits, contexts, messages, self.llm, self.settings,
                            started, retrieved)

    def chat(self, messages: list[dict[str, str]], top_k: int | None = None,
             filters: Any = None) -> Answer:
        """Answer the last user message of a conversation (`[{"role", "content"}, ...]`).

        A follow-up ("and the second one?") is rewritten into a standalone query from the
        history before retrieval; `Answer.query` shows the rewrite.
        """
        return self.stream_chat(messages, top_k, filters=filters).answer

    def stream_chat(self, messages: list[dict[str, str]], top_k: int | None = None,
                    filters: Any = None) -> "AnswerStream":
        """`chat`, streamed like `stream`."""
        from rag.chat import standalone_query

        rewrite = standalone_query(messages, self.llm, self.settings.chat_rewrite)
        return self.stream(rewrite.prompt, top_k, filters=filters, query=rewrite.query)

    # --- llama-index views and agent tools ----------------------------------------------
    def as_llm(self):
        """The answer model as a llama-index `LLM`."""
        from rag.llama_index_views import as_llama_index_llm

        return as_llama_index_llm(self.llm, self.settings.llm_max_tokens)

    def as_retriever(self, top_k: int | None = None, mode: str | None = None, filters: Any = None):
        """A llama-index `BaseRetriever` over this index (hybrid by default)."""
        from rag.llama_index_views import RAGRetriever

        return RAGRetriever(self, top_k=top_k, mode=mode, filters=filters)

    def as_query_engine(self, top_k: int | None = None, streaming: bool = False,
                        filters: Any = None):
        """A llama-index query engine: `.query(q)` -> `Response` with `source_nodes`."""
        from rag.llama_index_views import RAGQueryEngine

        return RAGQueryEngine(self, top_k=top_k, streaming=streaming, filters=filters)

    def as_chat_engine(self, top_k: int | None = None, filters: Any = None):
        """A llama-index chat engine that keeps the history and rewrites follow-ups."""
        from rag.llama_index_views import RAGChatEngine

        return RAGChatEngine(self, top_k=top_k, filters=filters)

    def as_tool(self, name: str = "search_documents"):
        """A llama-index `FunctionTool` for agents; `rag.tools.tool_schema()` is the plain form."""
        from rag.tools import as_function_tool

        return as_function_tool(self, name=name)

    def _prompt(self, question: str, hits: list) -> tuple[list[Citation], list[dict[str, str]]]:
        s = self.settings
        overhead = self.llm.count_tokens(build_messages(question, [])[0]["content"] + question) + 64
        budget = max(128, self.llm.context_window - s.llm_max_tokens - overhead)
        fitted = fit_contexts(hits, budget, self.llm.count_tokens)
        contexts = [Citation.from_hit(n, hit) for n, hit in enumerate(fitted, start=1)]
        return contexts, build_messages(question, contexts)

    def delete(self, source: str | Path) -> int:
        """Remove a source (by path; a folder removes every source under it) from both
        indexes; returns the number of chunks removed."""
        from ingestion.pipeline import source_id_for

        if self.index.catalog.source(source_id_for(Path(source))) is not None:
            return self.index.delete_source(source_id_for(Path(source)))
        rows = self.index.catalog.sources_under([str(Path(source).resolve())])
        return sum(self.index.delete_source(row["source_id"]) for row in rows)

    def stats(self) -> dict[str, Any]:
        catalog = self.index.catalog
        sources = catalog.sources()
        return {
            "index_dir": str(self.index_dir),
            "milvus": self.settings.milvus_target,
            "sources": len(sources),
            "chunks": catalog.count(),
            "index_settings": catalog.get_meta(INDEX_SETTINGS_KEY),
            "by_type": _count_by(sources, "file_type"),
        }

    def close(self) -> None:
        if "index" in self.__dict__:
            self.index.close()

    def __enter__(self) -> "RAG":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _count_by(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row[key] or "?"] = out.get(row[key] or "?", 0) + 1
    return dict(sorted(out.items()))
