"""Versioned Milvus collections of one index behind one alias: how an index changes embedding
model without a moment in which it cannot answer.

An index's first collection keeps the configured name (`rag_chunks`, as every index built
before re-indexing existed); each re-index writes a new one, `rag_chunks_v2`, `rag_chunks_v3`,
... while the serving one keeps answering. The switch is one Milvus call: the alias
`rag_chunks_active` is pointed at the new collection (`create_alias` the first time,
`alter_alias` after). Milvus Lite 3.2.2 keeps aliases in `aliases.json`, replaced with
`os.replace` (atomic on POSIX); a Milvus server keeps them in its meta store.

Each collection records the model that made its vectors in its collection properties
(`rag.*`), so the alias alone says which model the serving collection needs.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

ALIAS_SUFFIX = "_active"
PROPERTY_PREFIX = "rag."


class CollectionFamily:
    """The collections of one index (`base`, `base_v2`, ...) and the alias that names the
    serving one. Takes an open `MilvusClient`; creates no collection itself (the dense store
    does, with its schema)."""

    def __init__(self, client: Any, base: str):
        self.client = client
        self.base = base
        self._version = re.compile(re.escape(base) + r"_v(\d+)")

    @property
    def alias(self) -> str:
        return self.base + ALIAS_SUFFIX

    def serving(self) -> str | None:
        """The collection the alias names, or None when the index was never switched."""
        try:  # listing first: describing an unknown name makes pymilvus log an error
            if self.alias not in self.client.list_aliases().get("aliases", []):
                return None
        except Exception as exc:  # a server without ListAliases: describing tells too
            if not _unsupported(exc):
                raise
        try:
            described = self.client.describe_collection(self.alias)
        except Exception as exc:  # pymilvus raises MilvusException for an unknown name
            if _not_found(exc):
                return None
            raise
        return str(described.get("collection_name") or "") or None

    def members(self) -> list[str]:
        """Existing collections of this family, oldest first."""
        names = set(self.client.list_collections())
        found = [self.base] if self.base in names else []
        versions = sorted((int(m.group(1)), n) for n in names if (m := self._version.fullmatch(n)))
        return found + [name for _, name in versions]

    def next_name(self) -> str:
        """A name no collection of the family has had yet (`base_v<highest + 1>`)."""
        highest = 1
        for name in self.members():
            if m := self._version.fullmatch(name):
                highest = max(highest, int(m.group(1)))
        return f"{self.base}_v{highest + 1}"

    def switch(self, collection: str) -> None:
        """Point the alias at `collection`: one Milvus call, so every search by the alias goes
        to the old collection before it and to the new one after, never to neither."""
        if self.serving() is None:
            self.client.create_alias(collection, self.alias)
        else:
            self.client.alter_alias(collection, self.alias)

    def record(self, collection: str) -> dict[str, str]:
        """The model record a collection carries (`rag.*` properties, prefix off);
        empty for a collection written before collections carried one."""
        described = self.client.describe_collection(collection)
        properties: Mapping[str, Any] = described.get("properties") or {}
        return {k[len(PROPERTY_PREFIX):]: str(v) for k, v in properties.items()
                if k.startswith(PROPERTY_PREFIX)}

    def drop(self, collection: str) -> None:
        """Drop a collection of the family (never the one the alias names)."""
        if collection == self.serving():
            raise ValueError(f"{collection} is the serving collection of {self.alias}; "
                             "switch away from it first")
        self.client.drop_collection(collection)


def as_properties(record: Mapping[str, Any]) -> dict[str, str]:
    """A model record as collection properties (`rag.<key>`, text values)."""
    return {PROPERTY_PREFIX + k: str(v) for k, v in record.items()}


def _unsupported(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("unimplemented", "not implemented", "unsupported", "unknown method"))


def _not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not found", "not exist", "can't find", "cannot find"))
