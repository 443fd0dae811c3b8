"""The operation log in the index directory (`operations.sqlite`): recent operations' stage
timings for `rag stats --latency`, and, when query logging is on, recent queries' embeddings
for `rag drift`.

Why SQLite: several processes (a `rag ask`, the UI) append to it at once, and it stays bounded
by deleting the oldest rows, which a JSONL file cannot do without rewriting itself. Query
embeddings are stored as raw little-endian float32 bytes (no pickle); query text only when
`query_log_text` asks for it. Writing the log never fails a query: errors are logged and
dropped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.telemetry import OperationRecord

log = logging.getLogger(__name__)

OPLOG_FILE = "operations.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    total_ms REAL NOT NULL,
    stages TEXT NOT NULL,
    counts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    embedding BLOB NOT NULL,
    best_dense REAL,
    total_ms REAL,
    text TEXT
);
"""


class OperationLog:
    """Appends operations (and queries) and reads back the last N; keeps at most `keep` rows
    of each table."""

    def __init__(self, directory: str | Path, keep: int = 1000):
        self.path = Path(directory) / OPLOG_FILE
        self.keep = max(1, keep)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                 timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            # A commit in WAL mode with synchronous=NORMAL does not wait for the disk: a power
            # cut may lose the last few log rows, never the database, and a query does not pay
            # an fsync (~0.3 ms here, several ms on a laptop disk) for its timing row.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _append(self, table: str, columns: str, values: tuple[Any, ...]) -> None:
        marks = ",".join("?" * len(values))
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")  # the row and the trim: one commit, not two
            try:
                db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
                db.execute(f"DELETE FROM {table} WHERE id <= (SELECT MAX(id) FROM {table}) - ?",
                           (self.keep,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def add_operation(self, record: OperationRecord) -> None:
        """Record one finished operation (never raises)."""
        try:
            self._append("operations", "at, kind, total_ms, stages, counts",
                         (record.at or time.time(), record.kind, record.total_ms,
                          json.dumps(record.stages), json.dumps(record.counts)))
        except Exception as exc:  # a full disk or a read-only index must not fail the query
            log.debug("could not log the operation to %s: %s", self.path, exc)

    def add_query(self, embedding: np.ndarray, best_dense: float | None, total_ms: float | None,
                  text: str | None = None) -> None:
        """Record one query's embedding (and text, when given); never raises."""
        try:
            blob = np.asarray(embedding, dtype="<f4").tobytes()
            self._append("queries", "at, embedding, best_dense, total_ms, text",
                         (time.time(), blob, best_dense, total_ms, text))
        except Exception as exc:
            log.debug("could not log the query to %s: %s", self.path, exc)

    def operations(self, last: int | None = None, kind: str | None = None) -> list[OperationRecord]:
        """The last `last` operations (of `kind`), oldest first."""
        if not self.path.is_file():
            return []
        sql = "SELECT at, kind, total_ms, stages, counts FROM operations"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY id DESC"
        if last:
            sql += " LIMIT ?"
            args.append(last)
        with self._lock:
            rows = self._connect().execute(sql, args).fetchall()
        return [OperationRecord(k, total, json.loads(stages), json.loads(counts), at)
                for at, k, total, stages, counts in reversed(rows)]

    def queries(self, last: int | None = None) -> list[dict[str, Any]]:
        """The last `last` logged queries, oldest first: {"at", "embedding", "best_dense",
        "total_ms", "text"}."""
        if not self.path.is_file():
            return []
        sql = "SELECT at, embedding, best_dense, total_ms, text FROM queries ORDER BY id DESC"
        args: list[Any] = []
        if last:
            sql += " LIMIT ?"
            args.append(last)
        with self._lock:
            rows = self._connect().execute(sql, args).fetchall()
        return [{"at": at, "embedding": np.frombuffer(blob, dtype="<f4"), "best_dense": best,
                 "total_ms": total, "text": text} for at, blob, best, total, text in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def latency_summary(records: list[OperationRecord]) -> dict[str, Any]:
    """p50/p95 per stage and of the total, per kind of operation, and how far the stages'
    sum is from the total (`sum_vs_total`: the median of |sum - total| / total)."""
    out: dict[str, Any] = {}
    for kind in sorted({r.kind for r in records}):
        mine = [r for r in records if r.kind == kind]
        stages = sorted({s for r in mine for s in r.to_json()["stages_ms"]})
        rows = {}
        for name in stages + ["total"]:
            values = [r.total_ms if name == "total" else r.to_json()["stages_ms"].get(name)
                      for r in mine]
            values = [v for v in values if v is not None]
            rows[name] = {"n": len(values), "p50": float(np.percentile(values, 50)),
                          "p95": float(np.percentile(values, 95))}
        gaps = [abs(r.additive_ms - r.total_ms) / r.total_ms for r in mine if r.total_ms > 0]
        counts: dict[str, int] = {}
        for r in mine:
            for k, v in r.counts.items():
                counts[k] = counts.get(k, 0) + v
        out[kind] = {"operations": len(mine), "stages_ms": rows,
                     "sum_vs_total": float(np.median(gaps)) if gaps else None,
                     "counts": counts}
    return out
