"""The Python API: `RAG.open(index_dir)` then `ingest`, `ask`, `retrieve`.

Heavy pieces (embedding model, Milvus, the LLM, Whisper) load on first use, so opening an
index to read its stats is cheap and `import rag` stays fast.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from rag import parts
from rag.config import Settings, load_settings
from rag.errors import ConfigError
from rag.process import apply_defaults
from rag.generation import Answer, Citation, build_messages, fit_contexts
from rag.models.embedding import display_name, embedding_fingerprint, resolve_embedding_model

if TYPE_CHECKING:
    from rag.answering import AnswerStream

INDEX_SETTINGS_KEY = "index_settings"
_FROM_SETTINGS: Any = object()  # `reranker=` default: build it from the settings (None means none)


log = logging.getLogger(__name__)


class RAG:
    """One index and the models that serve it.

    Every part can be passed in (a shared embedder, another dense store, a wrapped index, any
    llama-index LLM); what is not passed is built from the settings on first use by the
    factories in `rag.parts`. The RAG owns its index: `close()` closes it.
    """

    def __init__(self, settings: Settings, *, llm: Any = None, embedder: Any = None,
                 dense_store: Any = None, index: Any = None, retriever: Any = None,
                 reranker: Any = _FROM_SETTINGS, transcriber: Any = None, ocr: Any = None):
        apply_defaults()  # before any model library loads
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self._llm = llm
        self._embedder = embedder
        self._dense_store = dense_store
        self._index = index
        self._retriever = retriever
        self._reranker = reranker
        self._transcriber = transcriber
        self._ocr = ocr
        self._building = threading.RLock()  # two threads' first queries build each part once

    @classmethod
    def open(cls, index_dir: str | Path | None = None, *, llm: Any = None, embedder: Any = None,
             dense_store: Any = None, index: Any = None, retriever: Any = None,
             reranker: Any = _FROM_SETTINGS, transcriber: Any = None, ocr: Any = None,
             **settings: Any) -> "RAG":
        """Open (or create) the index at `index_dir`; keyword arguments override any setting.

        Parts: `embedder` (encode/encode_query/count_tokens/dimension), `dense_store` (a
        `retrievers.protocols.DenseStore`), `index` (a `ChunkIndex`), `retriever` (a
        `HybridRetriever`), `reranker` (None for none), `transcriber` (speech to text), `ocr`
        (an `ingestion.ocr.Ocr`: scanned pages and images), `llm` (a `rag.llm` backend or any
        llama-index `LLM`). `ocr` given as text ("auto", "always", "never") is the setting of
        that name, as `--set ocr=never` passes it, not a part."""
        if isinstance(ocr, str):
            settings["ocr"], ocr = ocr, None
        return cls(load_settings(index_dir, **settings), llm=llm, embedder=embedder,
                   dense_store=dense_store, index=index, retriever=retriever, reranker=reranker,
                   transcriber=transcriber, ocr=ocr)

    # --- parts, built on first use unless given ---------------------------------------------
    def _part(self, name: str, build: Callable[[], Any]) -> Any:
        value = getattr(self, name)
        if value is None or value is _FROM_SETTINGS:
            with self._building:
                value = getattr(self, name)
                if value is None or value is _FROM_SETTINGS:
                    value = build()
                    setattr(self, name, value)
        return value

    @property
    def embedder(self):
        return self._part("_embedder", lambda: parts.default_embedder(self.settings))

    @property
    def index(self):
        return self._part("_index", self._open_index)

    def _open_index(self):
        from retrievers.catalog import Catalog
        from retrievers.index import CATALOG_FILE

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
        if self._dense_store is None:
            self._dense_store = parts.default_dense_store(s, int(recorded["dimension"]))
        dense = self._dense_store
        # `embed` lets repair re-embed live chunks a crash kept out of Milvus (loads lazily).
        return parts.default_index(s, dense, embed=lambda texts: self.embedder.encode(texts))

    @property
    def retriever(self):
        return self._part("_retriever", lambda: parts.default_retriever(
            self.settings, self.index, self.embedder.encode_query, self.reranker))

    @property
    def reranker(self):
        if self._reranker is _FROM_SETTINGS:
            with self._building:
                if self._reranker is _FROM_SETTINGS:
                    self._reranker = parts.default_reranker(self.settings)
        return self._reranker

    @property
    def transcriber(self):
        return self._part("_transcriber", lambda: parts.default_transcriber(self.settings))

    @property
    def ocr(self):
        return self._part("_ocr", lambda: parts.default_ocr(self.settings))

    @property
    def llm(self):
        """The answer model: the configured backend, or the `llm=` given to `open` (a
        `rag.llm` backend or any llama-index `LLM`, adapted)."""
        llm = self._part("_llm", lambda: parts.default_llm(self.settings))
        if not hasattr(llm, "count_tokens"):
            from rag.llama_index_views import LlamaIndexChat

            with self._building:  # two threads' first calls adapt it once
                if not hasattr(self._llm, "count_tokens"):
                    self._llm = LlamaIndexChat(self._llm)
                llm = self._llm
        return llm

    def wrap_llm(self, wrap: Callable[[Any], Any]) -> Any:
        """Put a layer around the answer model (a cache, a timer, a recorder): `wrap(current)`
        answers from now on. Returns the new model."""
        with self._building:
            self._llm = wrap(self.llm)
            return self._llm

    def _pipeline(self, show_progress: bool):
        from ingestion.chunking import Chunker
        from ingestion.pipeline import IngestionPipeline

        s = self.settings
        chunker = Chunker(self.embedder.count_tokens, s.chunk_size, s.chunk_overlap)
        return IngestionPipeline(
            self.index, self.embedder, chunker, transcriber=lambda: self.transcriber,
            max_file_bytes=int(s.max_file_mb * 2**20), show_progress=show_progress,
            batch_chunks=s.ingest_batch_chunks, read_ahead=s.ingest_read_ahead, ocr=self.ocr,
            file_timeout_s=s.file_timeout_s, recording_factor=s.recording_timeout_factor,
            stream_file_bytes=int(s.stream_file_mb * 2**20),
        )

    # --- public operations -------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path], *, show_progress: bool = False,
               on_result=None, prune: bool = False) -> list:
        """Index files and folders; returns one `FileResult` per file (never raises per file).

        `prune=True` also deletes indexed sources under `paths` whose files are gone. A full
        disk stops the run with `DiskFullError` (one line); what was indexed before is intact.
        With `ingest_engine = "ray"` the files are parsed, transcribed and embedded on a Ray
        cluster (`rag.scale`); this process stays the one writer."""
        from retrievers.errors import disk_full, is_disk_full

        try:
            if self.settings.ingest_engine == "ray":  # parsing, Whisper, embedding on Ray
                from rag.scale import ray_ingest

                return ray_ingest(self.index, self.settings, paths, show_progress=show_progress,
                                  on_result=on_result, prune=prune)
            return self._pipeline(show_progress).ingest(paths, on_result=on_result, prune=prune)
        except Exception as exc:
            if is_disk_full(exc):
                raise disk_full(self.index_dir, exc) from exc
            raise

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
        from ingestion.discovery import source_id_for

        if self.index.catalog.source(source_id_for(Path(source))) is not None:
            return self.index.delete_source(source_id_for(Path(source)))
        rows = self.index.catalog.sources_under([str(Path(source).resolve())])
        return sum(self.index.delete_source(row["source_id"]) for row in rows)

    def repair(self) -> tuple[Any, Any]:
        """Bring Milvus and the keyword index back in step with the catalog, the record every
        other index file is rebuilt from: vectors missing from Milvus are re-embedded, extra
        ones deleted, the keyword index refilled. Milvus Lite files that cannot be read are
        moved aside (`milvus.db.damaged-<time>`, kept) and rebuilt in full. Returns the
        consistency reports (before, after)."""
        from retrievers.errors import DenseStoreDamagedError
        from retrievers.milvus_store import quarantine_lite_data

        try:
            index = self.index
        except DenseStoreDamagedError:
            if not self.settings.is_milvus_lite:
                raise
            moved = quarantine_lite_data(self.settings.milvus_target)
            log.warning("moved the damaged Milvus Lite data to %s; rebuilding it from the catalog",
                        moved)
            with self._building:
                self._dense_store = None
            index = self.index  # opening an empty store re-embeds every live chunk
        before = index.check()
        if not before.ok:
            index.check(fix=True, embed=lambda texts: self.embedder.encode(texts))
        return before, index.check()

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
        if self._index is not None:
            self._index.close()

    def __enter__(self) -> "RAG":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _count_by(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row[key] or "?"] = out.get(row[key] or "?", 0) + 1
    return dict(sorted(out.items()))
