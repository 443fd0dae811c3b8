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

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


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


class WriterLock:
    """One writing process per index directory (`<dir>/writer.lock`, flock), held from a
    write's first step until the run ends (`ChunkIndex.finish_writes`).

    Why: several processes may serve one index (a Milvus server plus the catalog on one host,
    README "scaling out"). Only one may write, and a process that opens the index must not
    "repair" the pending rows of another's ingest in flight: repair runs only when this lock
    is free. The kernel drops the lock when its holder dies (kill -9 included), so a crashed
    writer never blocks the next run, which then repairs what it left. Where `fcntl` is
    missing (Windows) it is a no-op: one process per index there, as before.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._mutex = threading.Lock()  # two threads of one process share the one lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> bool:
        """Take the lock (waiting for another process's run to end, when `wait`); whether it
        is held now. `on_wait(holder)` is called once when it has to wait."""
        with self._mutex:
            if self._fd is not None:
                return True
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows
                self._fd = -1
                return True
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                if wait:  # a writer must have the lock: the error says why it cannot
                    raise
                return False  # a full or read-only disk: the caller skips what needs it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if not wait:
                    os.close(fd)
                    return False
                if on_wait is not None:
                    on_wait(self.holder())
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # who holds it, for messages; best effort (a full disk cannot take it)
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            except OSError:
                pass
            self._fd = fd
            return True

    def release(self) -> None:
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is not None and fd >= 0:
                os.close(fd)  # closing the descriptor drops the flock

    def holder(self) -> str:
        """The pid recorded by the process holding (or last holding) the lock."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"
