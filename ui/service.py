"""What the UI and its headless API do, per collection, in plain Python (no Gradio here).

Why separate from the layout: the browser panels and the `gradio_client` endpoints must give the
same results, and tests can call these directly. JSON documents are the CLI's own
(`Answer.to_json`, `Hit.to_json`, `rag.cli.ingest_report`, `rag stats --json`, `rag delete
--json`), so a script can switch between `rag ... --json` and the API without changes.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Iterable

from rag.cli import ingest_report
from rag.errors import ConfigError
from retrievers.filters import split_values
from retrievers.strategies import Fusion, RetrievalMode
from ui import library, upload
from ui.collections import Collections

# Per-session settings a person may change in the UI; everything else stays as configured.
SESSION_KEYS = ("top_k", "retrieval_mode", "fusion", "bm25_weight", "dense_weight",
                "rerank_model", "llm_backend", "llm_base_url", "llm_model")


def defaults(settings: Any) -> dict[str, Any]:
    """The configured values of the per-session settings (the Settings panel starts here)."""
    return {k: getattr(settings, k) for k in SESSION_KEYS}


def check_prefs(prefs: dict[str, Any]) -> dict[str, Any]:
    """Per-session settings, validated the way the configuration validates them."""
    out = {k: v for k, v in (prefs or {}).items() if k in SESSION_KEYS}
    if "retrieval_mode" in out and out["retrieval_mode"] not in RetrievalMode.names():
        raise ConfigError(f"retrieval mode {out['retrieval_mode']!r}: one of {RetrievalMode.names()}")
    if "fusion" in out and out["fusion"] not in Fusion.names():
        raise ConfigError(f"fusion {out['fusion']!r}: one of {Fusion.names()}")
    if "top_k" in out:
        out["top_k"] = int(out["top_k"])
        if not 1 <= out["top_k"] <= 50:
            raise ConfigError("top-k: between 1 and 50")
    for key in ("bm25_weight", "dense_weight"):
        if key in out:
            out[key] = float(out[key])
            if out[key] < 0:
                raise ConfigError(f"{key}: not negative")
    if out.get("llm_backend") not in (None, "llama-cpp", "openai"):
        raise ConfigError("LLM backend: llama-cpp or openai")
    return out


class Service:
    """The collections and the operations on them; shared by every browser session.

    `served` are the folders whose files the browser may open (the upload areas): source cards
    link only to files inside them."""

    def __init__(self, collections: Collections, *, max_upload_mb: float = upload.DEFAULT_MAX_MB):
        self.collections = collections
        self.max_bytes = int(max_upload_mb * 2**20)
        self._locks: dict[str, threading.Lock] = {}
        self._views: dict[tuple, Any] = {}
        self._guard = threading.Lock()

    @property
    def served(self) -> list[Path]:
        return [self.collections.served]

    def rag(self, collection: str, create: bool = False) -> Any:
        return self.collections.rag(collection, create)

    def preview_url(self, citation: Any) -> str | None:
        """The URL of a cited PDF page rendered with the passage boxed (`ui.preview`), for a
        file in a collection's upload area; None otherwise."""
        from ui.preview import page_preview
        from ui.sources import file_url

        source = Path(citation.source).resolve()
        if citation.page is None or file_url(source, self.served) is None:
            return None
        cache = source.parent.parent / "previews"  # ROOT/served/<collection>/previews
        image = page_preview(source, int(citation.page), citation.text, cache)
        return file_url(image, self.served) if image is not None else None

    def area(self, collection: str) -> Path:
        return self.collections.get(collection).upload_dir

    def write_lock(self, collection: str) -> threading.Lock:
        """One writer per collection (uploads, deletes, re-ingests); queries never wait on it."""
        with self._guard:
            return self._locks.setdefault(self.collections.get(collection).name, threading.Lock())

    def view(self, collection: str, prefs: dict[str, Any] | None = None) -> Any:
        """The collection's RAG as this session's settings see it.

        A view shares the index, embedder and (unless the session picked another endpoint)
        the LLM with the collection's RAG; only the retriever (fusion, weights, reranker) and
        settings are its own, so changing them in one browser tab changes nothing for others."""
        base = self.rag(collection)
        prefs = check_prefs(prefs or {})
        changes = {k: v for k, v in prefs.items() if getattr(base.settings, k) != v}
        if not changes:
            return base
        key = (self.collections.get(collection).name, tuple(sorted(changes.items())))
        with self._guard:
            found = self._views.get(key)
            if found is not None:
                return found
            from rag.api import RAG

            settings = dataclasses.replace(base.settings, **changes)
            llm = base.llm if _same_llm(settings, base.settings) else None  # None: built from settings
            reranker: Any = base.reranker if "rerank_model" not in changes else None
            if "rerank_model" in changes and settings.rerank_model:
                from rag.parts import default_reranker

                reranker = default_reranker(settings)
            view = RAG(settings, llm=llm, embedder=base.embedder, index=base.index,
                       reranker=reranker)
            self._views[key] = view
            return view

    # --- the headless API's documents -------------------------------------------------
    def search_in(self, collection: str, sources: Iterable[str] | str | None
                  ) -> dict[str, list[str]] | None:
        """The filter that keeps `sources` (names as the library lists them, or paths; a
        comma-separated string too), each resolved to its indexed path; None for every file.
        A name the collection does not hold stays as given, so the answer says it is not
        indexed rather than searching everything."""
        names = split_values(sources)
        if not names:
            return None
        rag, area = self.rag(collection), self.area(collection)
        return {"source": [library.resolve(rag, n, area) or n for n in names]}

    def ask_json(self, question: str, collection: str, top_k: int | None = None,
                 sources: Iterable[str] | str | None = None) -> dict[str, Any]:
        """`rag ask --json [--source ...]`."""
        _require(question, "question")
        filters = self.search_in(collection, sources)
        return self.rag(collection).ask(question, top_k=top_k or None, filters=filters).to_json()

    def retrieve_json(self, query: str, collection: str, mode: str | None = None,
                      top_k: int | None = None, sources: Iterable[str] | str | None = None
                      ) -> dict[str, Any]:
        """`rag retrieve --json [--source ...]`."""
        _require(query, "query")
        if mode and mode not in RetrievalMode.names():
            raise ConfigError(f"mode {mode!r}: one of {RetrievalMode.names()}")
        hits = self.rag(collection).retrieve(query, top_k=top_k or None, mode=mode or None,
                                             filters=self.search_in(collection, sources))
        return {"results": [h.to_json() for h in hits]}

    def ingest_json(self, files: Iterable[tuple[str, str | Path]], collection: str) -> dict[str, Any]:
        """`rag ingest --json` for uploaded files: each is checked and stored in the upload area
        first; a refused one is a `failed` line with the reason, the rest are indexed."""
        from ingestion.results import FileResult

        rag, area = self.rag(collection, create=True), self.area(collection)
        results: list[Any] = []
        with self.write_lock(collection):
            stored: list[Path] = []
            for name, path in files:
                try:
                    stored.append(upload.store(area, path, name, self.max_bytes))
                except (upload.UploadRejected, OSError) as exc:
                    results.append(FileResult(str(name), "failed", 0, str(exc)))
            if stored:
                results = rag.ingest(stored) + results
        return ingest_report(results)

    def delete_json(self, source: str, collection: str) -> dict[str, Any]:
        """`rag delete --json`: {"source", "chunks"} (0 chunks: it was not in the collection).
        The uploaded copy goes too, so the library and the upload area agree."""
        rag, area = self.rag(collection), self.area(collection)
        with self.write_lock(collection):
            path, removed = library.delete(rag, source, area)
            if path is not None:
                from ui.preview import drop_previews

                if upload.remove_stored(area, path):
                    drop_previews(path, area.parent / "previews")
        return {"source": path or source, "chunks": removed}

    def stats_json(self, collection: str) -> dict[str, Any]:
        """`rag stats --json`."""
        return self.rag(collection).stats()


def _same_llm(a: Any, b: Any) -> bool:
    """Whether two settings name the same answer model (an endpoint matters only for openai),
    so a session that changed only retrieval settings shares the loaded GGUF."""
    if a.llm_backend != b.llm_backend or a.llm_model != b.llm_model:
        return False
    return a.llm_backend != "openai" or a.llm_base_url == b.llm_base_url


def _require(text: str, what: str) -> None:
    if not (text or "").strip():
        raise ConfigError(f"the {what} is empty")
