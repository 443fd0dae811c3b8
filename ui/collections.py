"""Named collections under one root folder: each its own index directory and upload area.

Why one index per collection (rather than a `collection` filter on one shared index): a
person using collection A must never see a chunk of collection B. With separate catalogs,
BM25 postings and Milvus databases, no query, filter mistake or ranking bug can cross over:
a collection's RAG has nothing of another to return.

Layout: `ROOT/indexes/<name>/` (the index) and `ROOT/served/<name>/files/` (uploaded files,
which the index points at, so re-ingesting and opening a cited PDF keep working; page previews
go beside them). Only `ROOT/served` is ever given to the web server: index files (the catalog,
Milvus data) cannot be downloaded through it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rag.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT = "default"
CATALOG_FILE = "catalog.sqlite"


@dataclass(frozen=True)
class Collection:
    name: str
    index_dir: Path
    upload_dir: Path


def check_name(name: str) -> str:
    """A collection name is a plain folder name: letters, digits, '-' and '_' (64 at most)."""
    name = (name or "").strip()
    if not NAME.match(name):
        raise ConfigError(f"collection name {name!r}: use 1-64 letters, digits, '-' or '_', "
                          "starting with a letter or digit")
    return name


class Collections:
    """The collections of one root, each opened once (by `open_rag`) on first use.

    `open_rag(index_dir)` is shaped like `RAG.open`; pass one that shares loaded models
    (`functools.partial(RAG.open, embedder=..., llm=...)`) so N collections cost one model.
    `extra` adds existing indexes by name (e.g. `rag ui --index DIR`), with their uploads under
    the root.
    """

    def __init__(self, root: str | Path, open_rag: Callable[..., Any],
                 extra: dict[str, str | Path] | None = None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._open_rag = open_rag
        self._extra = {check_name(k): Path(v).resolve() for k, v in (extra or {}).items()}
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def served(self) -> Path:
        """The one folder the web server may serve files from: uploads and page previews."""
        return self.root / "served"

    def names(self) -> list[str]:
        """Collections that exist (an index folder or an added index), sorted; `default`
        when there is none at all."""
        found = set(self._extra) | set(self._open)
        if self.indexes.is_dir():
            found.update(c.name for c in self.indexes.iterdir() if c.is_dir() and NAME.match(c.name))
        return sorted(found) or [DEFAULT]

    def exists(self, name: str) -> bool:
        name = check_name(name)
        return name in self._extra or name in self._open or (self.indexes / name).is_dir()

    def get(self, name: str) -> Collection:
        name = check_name(name)
        index_dir = self._extra.get(name, self.indexes / name)
        return Collection(name, index_dir, self.served / name / "files")

    def create(self, name: str) -> Collection:
        col = self.get(name)
        col.index_dir.mkdir(parents=True, exist_ok=True)
        col.upload_dir.mkdir(parents=True, exist_ok=True)
        return col

    def rag(self, name: str, create: bool = False) -> Any:
        """The collection's RAG, opened once and shared by every session. A collection that
        does not exist is an error unless `create` (reading must not make folders)."""
        if not create and not self.exists(name):
            raise ConfigError(f"no collection named {name!r}; existing: {', '.join(self.names())}")
        col = self.create(name)
        with self._lock:
            rag = self._open.get(col.name)
            if rag is None:
                rag = self._open_rag(col.index_dir)
                self._open[col.name] = rag
            return rag

    def close(self) -> None:
        with self._lock:
            for rag in self._open.values():
                rag.close()
            self._open.clear()


def shared_models_opener(base: Callable[..., Any], **overrides: Any) -> Callable[..., Any]:
    """An `open_rag` whose second and later indexes reuse the first one's embedder and LLM.

    Why: each RAG would otherwise load its own embedding model and GGUF (hundreds of MB each)
    for every collection a user opens."""
    donor: list[Any] = []
    lock = threading.Lock()

    def open_rag(index_dir: str | Path, **kwargs: Any) -> Any:
        with lock:
            if donor:
                kwargs.setdefault("embedder", donor[0].embedder)
                kwargs.setdefault("llm", donor[0].llm)
            rag = base(index_dir, **overrides, **kwargs)
            if not donor:
                donor.append(rag)
            return rag

    return open_rag
