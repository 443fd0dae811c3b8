"""The chunk catalog: one SQLite file holding sources, chunks, their BM25 term counts, index
settings and the large files being staged in parts (resumable after an interruption).

SQLite gives atomic commits across all of these at once, which is what makes the two-index
write safe under kill -9: a chunk is only "live" once the transaction that marks it so has
committed, and the BM25 side is rebuilt from live rows, so it can never disagree with the catalog.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from retrievers.errors import damaged_catalog
from retrievers.records import Chunk

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    file_type TEXT NOT NULL DEFAULT '',
    n_chunks INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    reader INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'retired')),
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    meta TEXT NOT NULL,
    terms TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    source_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS staging (
    source_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (source_id, state);
CREATE INDEX IF NOT EXISTS chunks_by_state ON chunks (state);
"""

LIVE, PENDING, RETIRED = "live", "pending", "retired"
# The BM25 tokenizer that made the stored `terms` (retrievers.text.TOKENIZER_VERSION); absent in
# catalogs written before it was recorded.
TOKENIZER_KEY = "tokenizer"
# A counter in `meta`, raised by every transaction that changes which chunks are live, so a
# process serving the index sees another process's publish with one cheap read per query.
GENERATION_KEY = "live_generation"
_BUMP = ("INSERT INTO meta (key, value) VALUES ('" + GENERATION_KEY + "', '1') ON CONFLICT(key) "
         "DO UPDATE SET value = CAST(value AS INTEGER) + 1")


@dataclass
class Publication:
    """One source's new live chunks, as `publish_many` commits them."""

    source_id: str
    path: str
    content_hash: str
    file_type: str
    chunk_ids: list[str]
    size: int = 0
    mtime: float = 0.0
    reader: int = 1  # the version of the loader that read it (ingestion.loaders.reader_version)


class Catalog:
    """SQLite-backed record of what is indexed. Single writer; WAL so readers are not blocked.

    Each thread gets its own connection: one connection shared by a query thread and an ingest
    would let the query read the ingest's uncommitted rows, and interleave statements of both.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            self.db.executescript(SCHEMA)
            self._add_missing_columns()
        except sqlite3.DatabaseError as exc:  # not a database, or a malformed one
            self.close()
            raise damaged_catalog(self.path, exc) from exc

    def _add_missing_columns(self) -> None:
        """Columns added since an index was made (`CREATE TABLE IF NOT EXISTS` keeps an old
        table as it is): `sources.reader`, 1 for every source indexed before it existed."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(sources)")}
        if "reader" not in columns:
            self.db.execute("ALTER TABLE sources ADD COLUMN reader INTEGER NOT NULL DEFAULT 1")

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()

    # --- settings ---------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError) as exc:  # a readable database holding a garbled record
            raise damaged_catalog(self.path, f"its {key!r} record is not JSON: {exc}") from exc

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # --- sources ----------------------------------------------------------------------
    def source(self, source_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM sources WHERE source_id = ?", (source_id,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def sources(self) -> list[dict[str, Any]]:
        return _dicts(self.db.execute("SELECT * FROM sources ORDER BY path"))

    # --- chunk lifecycle: pending -> live -> retired -> deleted ------------------------
    def stage(self, chunks: list[Chunk], terms: list[list[str]]) -> None:
        """Record new chunks as pending (not yet visible), in one transaction."""
        rows = [
            (c.chunk_id, c.source_id, PENDING, c.position, c.text, json.dumps(c.meta()),
             json.dumps(dict(Counter(t))))
            for c, t in zip(chunks, terms)
        ]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO chunks (chunk_id, source_id, state, position, text, meta, terms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(chunk_id) DO UPDATE SET "
                "state = CASE WHEN chunks.state = 'live' THEN 'live' ELSE 'pending' END, "
                # A row not live is rewritten whole: a pending row kept from an interrupted
                # run (same id) may hold another chunking of the same bytes.
                "text = CASE WHEN chunks.state = 'live' THEN chunks.text ELSE excluded.text END, "
                "meta = CASE WHEN chunks.state = 'live' THEN chunks.meta ELSE excluded.meta END, "
                "terms = CASE WHEN chunks.state = 'live' THEN chunks.terms ELSE excluded.terms END",
                rows,
            )

    # --- a large source staged in parts (resumable after an interruption) ---------------
    def begin_staging(self, publication: "Publication") -> None:
        """Record that `publication`'s source is being staged in parts, so that its pending
        rows are kept for a later run of the same file when this one is interrupted."""
        self.db.execute(
            "INSERT INTO staging (source_id, path, content_hash, size, mtime, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source_id) DO UPDATE SET path = excluded.path, "
            "content_hash = excluded.content_hash, size = excluded.size, mtime = excluded.mtime",
            (publication.source_id, publication.path, publication.content_hash,
             publication.size, publication.mtime, time.time()))

    def staging(self, source_id: str | None = None) -> list[dict[str, Any]]:
        """The sources being staged in parts (or the one named), as `begin_staging` recorded."""
        return _dicts(self.db.execute("SELECT * FROM staging ORDER BY path") if source_id is None
                      else self.db.execute("SELECT * FROM staging WHERE source_id = ?", (source_id,)))

    def end_staging(self, source_id: str) -> None:
        self.db.execute("DELETE FROM staging WHERE source_id = ?", (source_id,))

    def forget_staging(self) -> None:
        """No staged source is to be resumed (their vectors are in a collection no longer
        served); their pending rows are dropped as leftovers (`ChunkIndex.begin_staging`,
        `repair`)."""
        self.db.execute("DELETE FROM staging")

    def pending_of(self, source_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT chunk_id FROM chunks WHERE source_id = ? AND state = 'pending'", (source_id,))]

    def count_pending(self, source_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks WHERE source_id = ? AND state = "
                               "'pending'", (source_id,)).fetchone()[0]

    def pending_texts(self, chunk_ids: list[str]) -> dict[str, str]:
        """The text of those of `chunk_ids` that are pending."""
        out: dict[str, str] = {}
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            out.update(self.db.execute(
                f"SELECT chunk_id, text FROM chunks WHERE state = 'pending' AND chunk_id IN ({marks})",
                batch).fetchall())
        return out

    def publish(
        self, source_id: str, path: str, content_hash: str, file_type: str,
        new_ids: list[str], size: int = 0, mtime: float = 0.0,
    ) -> list[str]:
        """Atomically make `new_ids` the source's live chunks; returns the ids it retired."""
        return self.publish_many([Publication(source_id, path, content_hash, file_type, new_ids,
                                              size, mtime)])

    def publish_many(self, items: list["Publication"]) -> list[str]:
        """Publish several sources in ONE transaction (all or none); returns the retired ids."""
        retired: list[str] = []
        now = time.time()
        with self.transaction():
            for item in items:
                old = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT chunk_id FROM chunks WHERE source_id = ? AND state = 'live'",
                        (item.source_id,),
                    )
                ]
                keep = set(item.chunk_ids)
                gone = [cid for cid in old if cid not in keep]
                retired.extend(gone)
                self.db.executemany(
                    "UPDATE chunks SET state = 'retired' WHERE chunk_id = ?", [(c,) for c in gone]
                )
                self.db.executemany(
                    "UPDATE chunks SET state = 'live' WHERE chunk_id = ?",
                    [(c,) for c in item.chunk_ids],
                )
                self.db.execute(
                    "INSERT INTO sources (source_id, path, content_hash, file_type, n_chunks, size, "
                    "mtime, updated_at, reader) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(source_id) DO "
                    "UPDATE SET path = excluded.path, content_hash = excluded.content_hash, "
                    "file_type = excluded.file_type, n_chunks = excluded.n_chunks, "
                    "size = excluded.size, mtime = excluded.mtime, updated_at = excluded.updated_at, "
                    "reader = excluded.reader",
                    (item.source_id, item.path, item.content_hash, item.file_type,
                     len(item.chunk_ids), item.size, item.mtime, now, item.reader),
                )
                self.db.execute("DELETE FROM failures WHERE source_id = ?", (item.source_id,))
            self.db.execute(_BUMP)
        return retired

    def touch(self, source_id: str, size: int, mtime: float) -> None:
        """Record a new size/mtime for a source whose content hash did not change."""
        self.db.execute("UPDATE sources SET size = ?, mtime = ? WHERE source_id = ?",
                        (size, mtime, source_id))

    def sources_under(self, roots: list[str]) -> list[dict[str, Any]]:
        """Sources whose path is one of `roots` or lies inside one of them (paths resolved)."""
        out = []
        for row in self.sources():
            path = row["path"]
            if any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
                out.append(row)
        return out

    # --- failures: files that could not be read, so an unchanged one is not retried ------
    def record_failure(self, source_id: str, path: str, size: int, mtime: float, error: str) -> None:
        self.db.execute(
            "INSERT INTO failures (source_id, path, size, mtime, error, failed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source_id) DO UPDATE SET path = excluded.path, "
            "size = excluded.size, mtime = excluded.mtime, error = excluded.error, "
            "failed_at = excluded.failed_at",
            (source_id, path, size, mtime, error, time.time()),
        )

    def failure(self, source_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM failures WHERE source_id = ?", (source_id,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def forget_failure(self, source_id: str) -> None:
        self.db.execute("DELETE FROM failures WHERE source_id = ?", (source_id,))

    def failures_under(self, roots: list[str]) -> list[dict[str, Any]]:
        rows = _dicts(self.db.execute("SELECT * FROM failures ORDER BY path"))
        return [r for r in rows
                if any(r["path"] == root or r["path"].startswith(root.rstrip("/") + "/") for root in roots)]

    def unpublish(self, source_id: str) -> list[str]:
        """Atomically retire every chunk of a source and forget the source."""
        with self.transaction():
            ids = [
                r[0]
                for r in self.db.execute(
                    "SELECT chunk_id FROM chunks WHERE source_id = ? AND state = 'live'",
                    (source_id,),
                )
            ]
            self.db.execute(
                "UPDATE chunks SET state = 'retired' WHERE source_id = ? AND state = 'live'",
                (source_id,),
            )
            self.db.execute("DELETE FROM sources WHERE source_id = ?", (source_id,))
            self.db.execute(_BUMP)
        return ids

    def forget(self, chunk_ids: Iterable[str]) -> None:
        """Delete rows of chunks that are no longer live anywhere."""
        with self.transaction():
            self.db.executemany(
                "DELETE FROM chunks WHERE chunk_id = ? AND state != 'live'",
                [(c,) for c in chunk_ids],
            )

    def in_state(self, chunk_ids: list[str], state: str) -> list[str]:
        """Those of `chunk_ids` that are in `state`."""
        out = []
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            out += [r[0] for r in self.db.execute(
                f"SELECT chunk_id FROM chunks WHERE state = ? AND chunk_id IN ({marks})",
                [state, *batch])]
        return out

    def generation(self) -> int:
        """How many transactions have changed the live chunks (see GENERATION_KEY)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def ids_in_state(self, state: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE state = ?", (state,))]

    def bm25_rows(self, chunk_ids: Iterable[str] | None = None,
                  terms_from: Callable[[str], list[str]] | None = None,
                  ) -> Iterator[tuple[str, dict[str, int], dict[str, Any]]]:
        """(chunk_id, term counts, meta) of all live chunks, or of `chunk_ids`: what the BM25
        index is rebuilt from (one table scan for all, batched lookups for some). With
        `terms_from` (a tokenizer) the counts are taken from the stored texts instead of the
        stored terms: for a process that reads a catalog another tokenizer wrote."""
        column = "terms" if terms_from is None else "text"

        def counts(value: str) -> dict[str, int]:
            return json.loads(value) if terms_from is None else dict(Counter(terms_from(value)))

        if chunk_ids is None:
            rows = self.db.execute(f"SELECT chunk_id, {column}, meta FROM chunks WHERE state = 'live'")
            for chunk_id, value, meta in rows:
                yield chunk_id, counts(value), json.loads(meta)
            return
        for batch in _batches(sorted(chunk_ids)):
            marks = ",".join("?" * len(batch))
            for chunk_id, value, meta in self.db.execute(
                f"SELECT chunk_id, {column}, meta FROM chunks WHERE chunk_id IN ({marks})", batch
            ):
                yield chunk_id, counts(value), json.loads(meta)

    def tokenizer_current(self, version: str) -> bool:
        """Whether the stored terms were made by tokenizer `version` (as `retokenize` records)."""
        return self.get_meta(TOKENIZER_KEY) == version

    def retokenize(self, tokenize: Callable[[str], list[str]], version: str,
                   batch: int = 2000) -> int:
        """Derive every chunk's stored terms again from its stored text with `tokenize`, then
        record `version`; how many rows changed. The writer's job (hold the writer lock). Each
        batch commits on its own: terms are derived data, and an interrupted run leaves the old
        version recorded, so the next writer starts over; no other column changes."""
        changed = 0  # a new, empty catalog only records the version
        rowids = [r[0] for r in self.db.execute("SELECT rowid FROM chunks ORDER BY rowid")]
        for start in range(0, len(rowids), batch):
            first, last = rowids[start], rowids[min(start + batch, len(rowids)) - 1]
            rows = self.db.execute("SELECT rowid, text, terms FROM chunks WHERE rowid BETWEEN ? "
                                   "AND ?", (first, last)).fetchall()
            updates = []
            for rowid, text, terms in rows:
                fresh = dict(Counter(tokenize(text)))
                if fresh != json.loads(terms):
                    updates.append((json.dumps(fresh), rowid))
            if updates:
                with self.transaction():
                    self.db.executemany("UPDATE chunks SET terms = ? WHERE rowid = ?", updates)
                changed += len(updates)
        self.set_meta(TOKENIZER_KEY, version)
        return changed

    def terms_of(self, chunk_ids: list[str]) -> dict[str, dict[str, int]]:
        out = {}
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            for chunk_id, terms in self.db.execute(
                f"SELECT chunk_id, terms FROM chunks WHERE chunk_id IN ({marks})", batch
            ):
                out[chunk_id] = json.loads(terms)
        return out

    def document_terms(self, chunk_ids: list[str]) -> set[str]:
        """Every term of the live chunks of the documents `chunk_ids` belong to: what a whole
        document says, for the name check (rag/grounding.py)."""
        out: set[str] = set()
        for terms in self._of_documents("terms", chunk_ids):
            out.update(json.loads(terms))
        return out

    def document_texts(self, chunk_ids: list[str]) -> list[str]:
        """The texts of the live chunks of the documents `chunk_ids` belong to, in document
        order: whether a whole document holds a phrase the question quotes (rag/grounding.py)."""
        return list(self._of_documents("text", chunk_ids))

    def _of_documents(self, column: str, chunk_ids: list[str]) -> Iterator[Any]:
        """`column` of every live chunk of the documents `chunk_ids` belong to, in document order."""
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            for (value,) in self.db.execute(
                f"SELECT {column} FROM chunks WHERE state = 'live' AND source_id IN "
                f"(SELECT source_id FROM chunks WHERE chunk_id IN ({marks})) "
                "ORDER BY source_id, position", batch
            ):
                yield value

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        """Chunks by id (any state), for turning search hits into citations."""
        out = {}
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            for chunk_id, text, meta in self.db.execute(
                f"SELECT chunk_id, text, meta FROM chunks WHERE chunk_id IN ({marks})", batch
            ):
                out[chunk_id] = Chunk.from_meta(chunk_id, text, json.loads(meta))
        return out

    def live_chunks_of(self, source_id: str) -> list[Chunk]:
        rows = self.db.execute(
            "SELECT chunk_id, text, meta FROM chunks WHERE source_id = ? AND state = 'live' "
            "ORDER BY position",
            (source_id,),
        )
        return [Chunk.from_meta(cid, text, json.loads(meta)) for cid, text, meta in rows]

    def count(self, state: str = LIVE) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks WHERE state = ?", (state,)).fetchone()[0]

    def count_all(self) -> int:
        """Chunks in every state (live, pending, retired)."""
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def transaction(self) -> "_Transaction":
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A query's rows as dicts keyed by column name."""
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _batches(items: list[str], size: int = 900) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
