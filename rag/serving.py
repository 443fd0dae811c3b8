"""Which collection an index serves from and which embedding model made its vectors.

Three records say it, kept in step by `rag reindex` (rag/reindex.py):
- the Milvus alias `<collection>_active` names the serving collection (the switch is one
  alias call; see retrievers/collections.py);
- each collection's properties carry the model record (name, how to load it, fingerprint,
  dimension);
- the catalog's `index_settings` mirrors the serving one, so a process can tell from one SQLite
  read that another switched the index, and `rag stats` shows it without Milvus.
The alias wins: a switch interrupted after the alias moved is completed in the catalog when the
index is next opened (`adopt_alias`).

An index built before re-indexing existed has no alias and collection properties: it serves
from `collection` (`rag_chunks`), and the record is written on it when it is first opened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from rag.config import PACKAGED, Settings
from rag.errors import ConfigError
from rag.models.embedding import PACKAGED_EMBEDDING_NAME, display_name

INDEX_SETTINGS_KEY = "index_settings"
REINDEX_KEY = "reindex"  # {"building": record | None, "previous": record | None}
MODEL_KEYS = ("embedding_model", "embedding_ref", "embedding_fingerprint", "dimension")


def recorded_settings(index_dir: Path) -> dict[str, Any] | None:
    """The index's `index_settings` record, read without opening the index (a read-only SQLite
    read: no repair, no schema, nothing written); None when there is no readable record."""
    import json
    import sqlite3

    from retrievers.index import CATALOG_FILE

    path = Path(index_dir) / CATALOG_FILE
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (INDEX_SETTINGS_KEY,)).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        return None


def loadable_ref(name: str) -> str:
    """What to load the model from later: "packaged", an absolute folder path, or a hub id
    (a relative path would mean another folder when run from elsewhere)."""
    if name in ("", PACKAGED):
        return PACKAGED
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def model_record(embedder: Any, ref: str) -> dict[str, Any]:
    """The record of the model that makes an index's vectors: its name, where it loads from,
    its fingerprint (a hash of its files: the version that matters) and its dimension."""
    ref = loadable_ref(ref)
    return {"embedding_model": display_name(ref), "embedding_ref": ref,
            "embedding_fingerprint": embedder.fingerprint, "dimension": int(embedder.dimension)}


def ref_of(record: Mapping[str, Any]) -> str:
    """How to load a record's model (records written before `embedding_ref` existed name the
    packaged model by its display name)."""
    ref = record.get("embedding_ref")
    if ref:
        return str(ref)
    name = str(record.get("embedding_model", ""))
    return PACKAGED if name in ("", PACKAGED_EMBEDDING_NAME) else name


def collection_of(record: Mapping[str, Any], settings: Settings) -> str:
    return str(record.get("collection") or settings.collection)


def from_properties(properties: Mapping[str, str]) -> dict[str, Any] | None:
    """A model record read back from collection properties (None when incomplete)."""
    if not all(k in properties for k in MODEL_KEYS):
        return None
    record: dict[str, Any] = {k: properties[k] for k in MODEL_KEYS}
    record["dimension"] = int(record["dimension"])
    return record


def is_explicit(settings: Settings) -> bool:
    """Whether the user chose `embedding_model` (rag.toml, RAG_EMBEDDING_MODEL, --set or an
    argument) rather than leaving the default: only a choice can conflict with the index."""
    return settings.sources.get("embedding_model", "default") != "default"


def mismatch_error(index_dir: Path, served: Mapping[str, Any], wanted_name: str,
                   wanted_fingerprint: str, origin: str) -> ConfigError:
    """The one-line refusal to open an index with another model, naming both fixes."""
    return ConfigError(
        f"{index_dir}: this index was built with embedding model {served['embedding_model']} "
        f"({served['embedding_fingerprint']}, {served['dimension']}-d, collection "
        f"{served.get('collection', '?')}); {display_name(wanted_name)} ({wanted_fingerprint}, "
        f"from {origin}) would mix incompatible vectors. Switch the index to it with "
        f"`rag reindex --embedding-model {loadable_ref(wanted_name)} --index {index_dir}`, or use "
        f"the index's model: --set embedding_model={ref_of(served)}"
    )


def adopt_alias(catalog: Any, recorded: dict[str, Any], serving: str,
                properties: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    """Complete a switch whose alias call landed but whose catalog write did not (kill -9 in
    between): the catalog takes the serving collection's record, the one it named becomes the
    previous. Returns the new `index_settings`."""
    record = from_properties(properties)
    if record is None:
        raise ConfigError(f"collection {serving} is served by the alias but records no "
                          "embedding model; run `rag reindex --rollback` or re-ingest")
    state = catalog.get_meta(REINDEX_KEY) or {}
    previous = {**{k: recorded.get(k) for k in MODEL_KEYS}, "embedding_ref": ref_of(recorded),
                "collection": collection_of(recorded, settings)}
    adopted = {**recorded, **record, "collection": serving, "switched_at": time.time()}
    with catalog.transaction():
        catalog.set_meta(INDEX_SETTINGS_KEY, adopted)
        catalog.set_meta(REINDEX_KEY, {**state, "building": None, "previous": previous})
    return adopted
