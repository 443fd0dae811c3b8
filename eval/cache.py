"""The evaluation cache on disk: judgements, and the answers of a deterministic answer model.

One SQLite table, key -> raw output text (no pickle), keyed by a hash of who produced the text
(a fingerprint) and what it was asked; kept apart from `eval.judge` so that reading it needs
neither DeepEval nor a model.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from pydantic import BaseModel

from rag.config import PACKAGED

CACHE_FORMAT = "judge-cache-1"


class JudgeCache:
    """Judgements on disk: one SQLite table, key -> raw output text (no pickle)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, output TEXT NOT NULL)")
        self._lock = threading.Lock()

    @staticmethod
    def key(fingerprint: str, prompt: str, schema: type[BaseModel] | None) -> str:
        shape = json.dumps(schema.model_json_schema(), sort_keys=True) if schema else ""
        text = json.dumps([CACHE_FORMAT, fingerprint, prompt, shape])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT output FROM judgements WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, output: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO judgements (key, output) VALUES (?, ?)",
                             (key, output))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def gguf_fingerprint(model: str, path: Path) -> str:
    """A GGUF's identity: a packaged model's published hash, else the file's name, size and
    modification time (hashing a multi-GB file per run would cost more than it saves)."""
    from rag.models.gguf import PACKAGED_GGUFS

    spec = PACKAGED_GGUFS.get(model or PACKAGED)
    if spec is not None:
        return f"gguf-sha256:{spec.sha256}"
    stat = path.stat()
    return f"gguf:{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def default_cache_path() -> Path:
    from rag.models.cache import cache_dir

    return cache_dir() / "judgements.sqlite"
