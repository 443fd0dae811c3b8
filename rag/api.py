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
from rag import serving
from rag.errors import ConfigError, ModelFileError
from rag.models.embedder import embedder_for
from rag.process import apply_defaults
from rag.context_budget import extract_passages
from rag.generation import Answer, Citation, build_messages, fit_contexts
from rag.models.embedding import embedding_fingerprint, resolve_embedding_model
from rag.serving import INDEX_SETTINGS_KEY

if TYPE_CHECKING:
    from rag.answering import AnswerStream

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
        self._decline_reranker: Any = _FROM_SETTINGS
        self._transcriber = transcriber
        self._ocr = ocr
        self._building = threading.RLock()  # two threads' first queries build each part once
        from rag.oplog import OperationLog
        from rag.telemetry import Telemetry

        # Stage timings of every operation (rag.telemetry), kept in operations.sqlite.
        self.oplog = OperationLog(self.index_dir, keep=settings.oplog_keep)
        self.telemetry = Telemetry(self.oplog.add_operation if settings.latency_log else None)
        self._query_vector = threading.local()  # the last query embedding, for the query log
        self._common_words: Any = None  # rag.common_words.CommonWords, loaded on first use
        # This process's index writes (ingest, delete, repair, a re-index's switch) one at a
        # time; queries never take it.
        self._writes = threading.RLock()
        self._following = threading.Lock()  # one thread follows another process's switch
        self._switch_checked = 0.0
        self._strict: bool | None = None
        self._opening: int | None = None  # the thread opening the index (it may ask for the model)

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
        """The model of the collection the index serves from (a re-index switches it): the
        index is opened first, since it says which model that is."""
        if self._index is None and self._opening != threading.get_ident():
            self.index
        index = self._index
        current = getattr(index, "embedder", None) if index is not None else None
        if current is not None:
            return current
        return self._part("_embedder", lambda: parts.default_embedder(self.settings))

    @property
    def index(self):
        return self._part("_index", self._open_index)

    def _open_index(self, strict: bool | None = None):
        self._opening = threading.get_ident()
        try:
            return self._open_index_as(strict)
        finally:
            self._opening = None

    def _open_index_as(self, strict: bool | None):
        """Open the catalog, find the serving collection and its model, then the stores.

        `strict`: refuse an index whose model differs from the configured one (default: when
        the user chose a model or passed an embedder). Otherwise the index's own model is
        loaded, so an index switched by `rag reindex` opens with its new model."""
        from retrievers.catalog import Catalog
        from retrievers.collections import as_properties
        from retrievers.index import CATALOG_FILE

        s = self.settings
        self.index_dir.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(self.index_dir / CATALOG_FILE)
        try:
            recorded = catalog.get_meta(INDEX_SETTINGS_KEY)
            if recorded is None:
                embedder = self.embedder
                recorded = {
                    **serving.model_record(embedder, getattr(embedder, "name", s.embedding_model)),
                    "collection": s.collection,
                    "chunk_size": s.chunk_size,
                    "chunk_overlap": s.chunk_overlap,
                    # Fixed for the index's life: its vectors are made in one form.
                    "passage_titles": s.embed_source_titles,
                    "created_at": time.time(),
                }
                catalog.set_meta(INDEX_SETTINGS_KEY, recorded)
            else:
                if self._dense_store is None:
                    recorded = self._follow_alias(catalog, recorded)
                self._choose_embedder(recorded, strict)
        finally:
            catalog.close()
        if self._dense_store is None:
            record = {k: recorded.get(k) for k in serving.MODEL_KEYS}
            record["embedding_ref"] = serving.ref_of(recorded)
            self._dense_store = parts.default_dense_store(
                s, int(recorded["dimension"]), collection=serving.collection_of(recorded, s),
                properties=as_properties(record))
            self._record_model_on(self._dense_store, record)
        dense = self._dense_store
        # `embed` lets repair re-embed live chunks a crash kept out of Milvus (loads lazily).
        return parts.default_index(s, dense, embed=lambda texts: self.embedder.encode(texts),
                                   embedder=self._embedder,
                                   passage_titles=bool(recorded.get("passage_titles", False)))

    def _follow_alias(self, catalog: Any, recorded: dict[str, Any]) -> dict[str, Any]:
        """The serving record, after completing a switch the alias made but the catalog missed."""
        from retrievers.collections import CollectionFamily
        from retrievers.errors import IndexLockedError, StoreConfigError
        from retrievers.milvus_store import damaged_lite_data, milvus_client

        s = self.settings
        client = milvus_client(s.milvus_target, s.milvus_token)
        try:
            family = CollectionFamily(client, s.collection)
            name = family.serving()
            if name and name != serving.collection_of(recorded, s):
                log.warning("%s: completing an interrupted switch to collection %s",
                            self.index_dir, name)
                recorded = serving.adopt_alias(catalog, recorded, name, family.record(name), s)
        except (IndexLockedError, StoreConfigError, ConfigError):
            raise
        except Exception as exc:  # unreadable Milvus Lite files: one line naming the repair
            if not s.is_milvus_lite:
                raise
            raise damaged_lite_data(s.milvus_target, exc) from exc
        finally:
            client.close()
        return recorded

    def _choose_embedder(self, recorded: dict[str, Any], strict: bool | None) -> None:
        """Use the configured model if it is the index's, else refuse (strict) or load the
        index's own model."""
        s = self.settings
        given = self._embedder is not None and hasattr(self._embedder, "fingerprint")
        if strict is None:
            strict = self._embedder is not None or serving.is_explicit(s)
        self._strict = strict
        if given:
            name, fingerprint = getattr(self._embedder, "name", s.embedding_model), self._embedder.fingerprint
            origin = "the embedder passed to RAG.open"
        else:
            name = s.embedding_model
            fingerprint = embedding_fingerprint(resolve_embedding_model(name)) if strict else ""
            origin = s.sources.get("embedding_model", "default")
        if fingerprint == recorded["embedding_fingerprint"]:
            return
        if strict:
            raise serving.mismatch_error(self.index_dir, recorded, name, fingerprint, origin)
        ref = serving.ref_of(recorded)
        try:
            own = embedder_for(ref, s)
            if own.fingerprint != recorded["embedding_fingerprint"]:
                raise ConfigError(f"its files changed (fingerprint {own.fingerprint})")
        except (ConfigError, ModelFileError) as exc:
            raise ConfigError(
                f"{self.index_dir}: this index serves embedding model {ref} "
                f"({recorded['embedding_fingerprint']}), which cannot be loaded: {exc}. Restore "
                f"it, or switch the index: `rag reindex --embedding-model MODEL --index "
                f"{self.index_dir}`") from exc
        self._embedder = own

    def _record_model_on(self, store: Any, record: dict[str, Any]) -> None:
        """Write the model record on a collection made before collections carried one."""
        from retrievers.collections import PROPERTY_PREFIX, as_properties

        if not hasattr(store, "properties"):
            return
        try:
            if not any(k.startswith(PROPERTY_PREFIX) for k in store.properties()):
                store.set_properties(as_properties(record))
        except Exception as exc:  # a server that refuses custom properties still serves
            log.warning("could not record the embedding model on collection %s: %s",
                        getattr(store, "collection", "?"), exc)

    @property
    def retriever(self):
        # The query embedder is looked up per query (under the index's read lock), so a
        # re-index that switches the model and the collection switches both for queries.
        return self._part("_retriever", lambda: parts.default_retriever(
            self.settings, self.index, self._embed_query, self.reranker,
            tracer=self.telemetry.tracer))

    def _embed_query(self, query: str):
        vector = self.embedder.encode_query(query)
        self._query_vector.value = vector
        return vector

    @property
    def reranker(self):
        if self._reranker is _FROM_SETTINGS:
            with self._building:
                if self._reranker is _FROM_SETTINGS:
                    self._reranker = parts.default_reranker(self.settings)
        return self._reranker

    @property
    def decline_reranker(self):
        """The cross-encoder `decline_gate = "evidence+rerank"` asks about weak evidence."""
        if self._decline_reranker is _FROM_SETTINGS:  # None (not used) is kept too
            with self._building:
                if self._decline_reranker is _FROM_SETTINGS:
                    self._decline_reranker = parts.decline_reranker(self.settings)
        return self._decline_reranker

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

    def _pipeline(self, show_progress: bool, on_embedded: Any = None):
        from ingestion.chunking import Chunker
        from ingestion.pipeline import IngestionPipeline

        s = self.settings
        chunker = Chunker(self.embedder.count_tokens, s.chunk_size, s.chunk_overlap)
        return IngestionPipeline(
            self.index, self.embedder, chunker, transcriber=lambda: self.transcriber,
            max_file_bytes=int(s.max_file_mb * 2**20), show_progress=show_progress,
            batch_chunks=s.ingest_batch_chunks, read_ahead=s.ingest_read_ahead, ocr=self.ocr,
            file_timeout_s=s.file_timeout_s, recording_factor=s.recording_timeout_factor,
            stream_file_bytes=int(s.stream_file_mb * 2**20), tracer=self.telemetry.tracer,
            on_embedded=on_embedded,
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

        index = self.index  # opened (and repaired) before the operation's clock starts
        profile, recorder = self._drift_recorder()
        operation = self.telemetry.operation("ingest")
        try:
            with self._writes, operation.active():
                if self.settings.ingest_engine == "ray":  # parsing, Whisper, embedding on Ray
                    from rag.scale import ray_ingest

                    return ray_ingest(self.index, self.settings, paths,
                                      show_progress=show_progress, on_result=on_result,
                                      prune=prune)
                return self._pipeline(show_progress, recorder).ingest(
                    paths, on_result=on_result, prune=prune)
        except Exception as exc:
            if is_disk_full(exc):
                raise disk_full(self.index_dir, exc) from exc
            raise
        finally:
            operation.finish()
            if profile is not None and profile.seen:
                try:
                    profile.save(index.directory)
                except OSError as exc:  # the index is written; only the profile is stale
                    log.warning("%s: could not save the drift profile: %s", self.index_dir, exc)

    def _drift_recorder(self) -> tuple[Any, Any]:
        """The drift profile of this index and the pipeline observer that adds every embedded
        chunk to it (rag.drift_profile), or (None, None) when profiles are off."""
        from rag.drift_profile import DriftProfile, ProfileRecorder

        size = self.settings.drift_profile_size
        if size <= 0:
            return None, None
        fingerprint = self.index.catalog.get_meta(INDEX_SETTINGS_KEY)["embedding_fingerprint"]
        try:
            profile = DriftProfile.load(self.index_dir)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: the drift profile cannot be read (%s); starting a new one",
                        self.index_dir, exc)
            profile = None
        if profile is None or profile.fingerprint != fingerprint:
            profile = DriftProfile.empty(size, fingerprint)
        profile.size = size
        return profile, ProfileRecorder(profile)

    def retrieve(self, query: str, top_k: int | None = None, mode: str | None = None,
                 filters: Any = None) -> list:
        """The fused top-k `Hit`s for a query (no LLM). `filters`: a `retrievers.filters.Filters`
        or a dict like `{"source": "docs/", "file_type": "pdf", "since": "2026-11-01",
        "page": "3-7"}`, applied inside both retrievers before their top-k cut."""
        if self._retriever is None:
            self.retriever  # built (index opened) before the operation's clock starts
        operation = self.telemetry.operation("retrieve")
        try:
            with operation.active():
                return self._retrieve(query, top_k, mode, filters)
        finally:
            operation.finish()

    def unmatched_filters(self, filters: Any) -> str | None:
        """Why `filters` leave nothing to search ("no indexed file is /x.pdf or lies under
        it"), for a retrieval that came back empty; None without filters."""
        from retrievers.filters import as_filters

        filters = as_filters(filters)
        if filters is None or filters.empty:
            return None
        indexed = [(row["path"], row["file_type"]) for row in self.index.catalog.sources()]
        return "nothing matches the filters: " + filters.unmatched(indexed)

    def _corpus_terms(self) -> Any:
        """Which of some terms the whole index holds, for the name check, when
        `decline_names_in_corpus` is on and the keyword index can say (the local BM25 index;
        Milvus's BM25 keeps no vocabulary to ask); else None."""
        if not self.settings.decline_names_in_corpus:
            return None
        return getattr(self.index.keywords, "holding", None)

    def _rare_words(self, query: str) -> list[str]:
        """Words of `query` that English rarely uses, where its casing marks no names, for the
        name check (`decline_rare_words`; rag.common_words); [] when the setting is off."""
        if not self.settings.decline_rare_words:
            return []
        from rag.common_words import CommonWords
        from retrievers.names import unmarked_words

        if self._common_words is None:
            self._common_words = CommonWords()
        return self._common_words.rare(unmarked_words(query))

    def _corpus_phrases(self) -> Any:
        """Which of some names that only count whole (`retrievers.names.whole_names`) a chunk
        of the index holds word for word, for `decline_names_in_corpus` (with `_corpus_terms`);
        else None."""
        if self._corpus_terms() is None:
            return None
        from retrievers.phrases import phrases_held

        keywords, depth = self.index.keywords, self.settings.candidate_k
        return lambda phrases: phrases_held(
            phrases, lambda phrase: [cid for cid, _ in keywords.search(phrase, depth)], self.index.chunks)

    def _retrieve(self, query: str, top_k: int | None, mode: str | None, filters: Any) -> list:
        """Retrieval under the current operation; logs the query when query logging is on."""
        self._follow_switch()  # another process may have switched the embedding model
        started = time.perf_counter()
        self._query_vector.value = None
        hits = self.retriever.retrieve(query, top_k or self.settings.top_k,
                                       mode or self.settings.retrieval_mode, filters=filters)
        if self.settings.query_log:
            vector = getattr(self._query_vector, "value", None)
            if vector is None:  # a keyword-only retrieval embeds nothing; drift needs the vector
                vector = self.embedder.encode_query(query)
            dense = [h.scores["dense"] for h in hits if "dense" in h.scores]
            self.oplog.add_query(vector, max(dense) if dense else None,
                                 (time.perf_counter() - started) * 1000,
                                 query if self.settings.query_log_text else None)
        return hits

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
        from rag.telemetry import stage

        llm = self.llm  # loaded before the operation's clock starts
        if self._retriever is None:
            self.retriever  # idem: the index, the embedding model
        relevance = self.decline_reranker  # idem (None unless decline_gate asks for it)
        operation = self.telemetry.operation("ask")
        try:
            with operation.active():
                started = time.perf_counter()
                query = query or question
                hits = self._retrieve(query, top_k, mode=None, filters=filters)
                retrieved = time.perf_counter()
                with stage(self.telemetry.tracer, "prompt") as span:
                    contexts, messages, fallback = self._prompt(question, hits)
                    span.set_attribute("rag.tokens.prompt", sum(
                        llm.count_tokens(m["content"]) for m in messages))
        except BaseException:
            operation.finish()
            raise
        return AnswerStream(question, query, hits, contexts, messages, llm, self.settings,
                            started, retrieved, operation=operation, fallback_messages=fallback,
                            relevance=relevance,
                            nothing_because=None if hits else self.unmatched_filters(filters),
                            document_terms=(self.index.catalog.document_terms
                                            if self.settings.decline_names_in_documents else None),
                            document_texts=(self.index.catalog.document_texts
                                            if self.settings.decline_quoted_anchor else None),
                            corpus_terms=self._corpus_terms(), corpus_phrases=self._corpus_phrases(),
                            rare_words=self._rare_words(query))

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

    def _prompt(self, question: str, hits: list
                ) -> tuple[list[Citation], list[dict[str, str]], list[dict[str, str]] | None]:
        """The contexts, the prompt, and the whole-chunks prompt to fall back on when the
        prompt is cut to the context budget (None when it is not)."""
        s = self.settings
        overhead = self.llm.count_tokens(build_messages(question, [])[0]["content"] + question) + 64
        budget = max(128, self.llm.context_window - s.llm_max_tokens - overhead)
        fitted = fit_contexts(hits, budget, self.llm.count_tokens)
        contexts = [Citation.from_hit(n, hit) for n, hit in enumerate(fitted, start=1)]
        shown = None
        if 0 < s.context_budget_tokens < budget and contexts:
            shown = extract_passages(question, [c.text for c in contexts],
                                     s.context_budget_tokens, self.llm.count_tokens)
        if shown is None:
            return contexts, build_messages(question, contexts), None
        return contexts, build_messages(question, contexts, shown=shown), build_messages(
            question, contexts)

    def delete(self, source: str | Path) -> int:
        """Remove a source (by path; a folder removes every source under it) from both
        indexes; returns the number of chunks removed."""
        from ingestion.discovery import source_id_for

        with self._writes:
            source_id = source_id_for(Path(source))
            # An unfinished ingest of a large file (`unfinished_ingests`): its staged parts go.
            staged = self.index.discard_staging(source_id)
            if self.index.catalog.source(source_id) is not None:
                return staged + self.index.delete_source(source_id)
            rows = self.index.catalog.sources_under([str(Path(source).resolve())])
            return staged + sum(self.index.delete_source(row["source_id"]) for row in rows)

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
        with self._writes:
            before = index.check()
            if not before.ok:
                index.check(fix=True, embed=lambda texts: self.embedder.encode(texts))
            return before, index.check()

    # --- switching embedding models ------------------------------------------------------
    def reindex(self, embedding_model: str | None = None, *, rollback: bool = False,
                progress: Callable[[int, int], None] | None = None,
                say: Callable[[str], None] | None = None):
        """Embed every chunk with another model into a new collection while this index keeps
        answering, check it, and switch to it in one step (`rag.reindex`); `rollback=True`
        switches back to the collection before the last switch. Returns a `ReindexReport`
        (`switched` is False when the smoke evaluation refused the new collection)."""
        from rag.reindex import Reindexer

        if self._index is None:
            with self._building:
                if self._index is None:  # opened with the index's own model, whatever is configured
                    self._index = self._open_index(strict=False)
        index = self.index
        serving_embedder = self.embedder

        def adopt(store: Any, embedder: Any) -> None:
            self._dense_store, self._embedder = store, embedder

        return Reindexer(index, self.settings, writes=lambda: self._writes, on_switch=adopt,
                         serving_encode=serving_embedder.encode_query, progress=progress,
                         say=say).run(embedding_model, rollback=rollback)

    def _follow_switch(self) -> None:
        """Serve the collection another process switched this index to (at most one catalog
        read a second). Loads its model first; queries go on meanwhile on the old one."""
        index = self._index
        now = time.monotonic()
        if index is None or now - self._switch_checked < 1.0 or self._dense_store is not index.dense:
            return
        self._switch_checked = now
        recorded = index.catalog.get_meta(INDEX_SETTINGS_KEY) or {}
        name = serving.collection_of(recorded, self.settings)
        if name == getattr(index.dense, "collection", name) or not self._following.acquire(False):
            return
        try:
            if self._strict and recorded.get("embedding_fingerprint") != getattr(
                    index.embedder, "fingerprint", None):
                log.warning("%s: another process switched this index to %s; this one keeps "
                            "the configured model and collection %s", self.index_dir,
                            recorded.get("embedding_model"), index.dense.collection)
                self._switch_checked = float("inf")
                return
            embedder = embedder_for(serving.ref_of(recorded), self.settings)
            store = parts.default_dense_store(self.settings, embedder.dimension, collection=name)
            log.info("%s: following the switch to collection %s (%s)", self.index_dir, name,
                     recorded.get("embedding_model"))
            old, _ = index.switch_dense(store, embedder)
            self._dense_store, self._embedder = store, embedder
            old.close()
        finally:
            self._following.release()

    def stats(self) -> dict[str, Any]:
        from rag.serving import REINDEX_KEY

        catalog = self.index.catalog
        sources = catalog.sources()
        state = catalog.get_meta(REINDEX_KEY) or {}
        return {
            "index_dir": str(self.index_dir),
            "milvus": self.settings.milvus_target,
            "sources": len(sources),
            "chunks": catalog.count(),
            "index_settings": catalog.get_meta(INDEX_SETTINGS_KEY),
            "by_type": _count_by(sources, "file_type"),
            "previous_collection": _short(state.get("previous")),
            "unfinished_reindex": _short(state.get("building")),
            # Large files whose ingest was interrupted: ingesting each again resumes it.
            "unfinished_ingests": [{"path": r["path"], "staged_chunks": catalog.count_pending(
                r["source_id"])} for r in catalog.staging()],
        }

    def latency(self, last: int | None = None) -> dict[str, Any]:
        """p50/p95 per stage of the last `last` logged operations, per kind (`rag stats
        --latency`); see `rag.oplog.latency_summary`."""
        from rag.oplog import latency_summary

        return latency_summary(self.oplog.operations(last))

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self.oplog.close()

    def __enter__(self) -> "RAG":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A collection's model record as `rag stats` shows it."""
    if not record:
        return None
    return {k: record.get(k) for k in ("collection", "embedding_model", "embedding_fingerprint",
                                       "dimension")}


def _count_by(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row[key] or "?"] = out.get(row[key] or "?", 0) + 1
    return dict(sorted(out.items()))
