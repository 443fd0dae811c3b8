"""A readers-writer lock: many queries at once, or one index write, never both.

Why: a query looks up ids in the keyword index and Milvus, then reads their text from the
catalog; a write that publishes a file's new chunks retires and forgets the old ones. Without
a lock a query running across that moment would find ids whose text is already gone. Queries
take the shared side, the publish step takes the exclusive side (it lasts milliseconds; the
slow parts of a write, embedding and the Milvus upsert, happen before it, invisible to queries).
Writers are preferred: once one waits, new readers queue behind it, so a stream of queries
cannot starve an ingest. The standard library has no such lock, and the small PyPI ones are
unmaintained; this is 40 lines on `threading.Condition`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # thread id of the writer holding the lock
        self._writer_depth = 0
        self._writers_waiting = 0
        self._held = threading.local()  # this thread's read depth (re-entry must not wait)

    @contextmanager
    def reading(self) -> Iterator[None]:
        me = threading.get_ident()
        depth = getattr(self._held, "depth", 0)
        with self._cond:
            if self._writer == me or depth:  # a writer may read what it writes; re-entry
                self._readers += 1
            else:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                self._writers_waiting += 1
                while self._writer is not None or self._readers:
                    self._cond.wait()
                self._writers_waiting -= 1
                self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._cond.notify_all()
