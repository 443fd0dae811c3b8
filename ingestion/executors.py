"""Where the per-file work and the index writes run: the part of ingestion that can be replaced.

Why: loading, transcribing and chunking a file, and writing a batch to the index, can overlap
the embedding instead of adding to it. Today that is two helper threads (`ThreadExecutor`) or
nothing at all (`InlineExecutor`, `read_ahead=0`). The Ray engine (ingestion/ray_engine.py)
uses `ThreadExecutor(readers=N)`: N driver threads each wait on a file prepared on the cluster.
An executor only runs what it is given, in order; what runs, and when to wait for it, is the
pipeline's business (`ReadAhead` keeps files prepared ahead of the one being embedded).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# The GIL switch interval while an ingest runs (Python's default is 5 ms): a helper thread
# holding the GIL hands it back to the model's thread sooner.
INGEST_SWITCH_INTERVAL_S = 0.0005


class Handle(Protocol[R_co]):
    """A submitted call: `result()` waits for its value (or raises its error)."""

    def result(self) -> R_co: ...


class Executor(Protocol):
    """Runs the per-file work and the index writes of one run (`with executor:` spans the run).

    `submit` calls start in submission order (one at a time, unless the executor has several
    readers: then their results are still consumed in order); `submit_write` calls run one at
    a time, in order.
    `background` says whether they run while the caller goes on (False: done on submission).
    Leaving the `with` block waits for work in flight and drops work not yet started.
    """

    background: bool

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc_info: Any) -> None: ...

    def submit(self, fn: Callable[..., R], *args: Any) -> Handle[R]: ...

    def submit_write(self, fn: Callable[..., R], *args: Any) -> Handle[R]: ...


@dataclass
class Done(Generic[R]):
    """An already computed value, shaped like a future."""

    value: R

    def result(self) -> R:
        return self.value


class InlineExecutor:
    """Everything in the caller's thread, in turn: each file is read only when its turn comes."""

    background = False

    def __enter__(self) -> "InlineExecutor":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def submit(self, fn: Callable[..., R], *args: Any) -> Done[R]:
        return Done(fn(*args))

    def submit_write(self, fn: Callable[..., R], *args: Any) -> Done[R]:
        return Done(fn(*args))


class ThreadExecutor:
    """A reader thread and a writer thread at low priority, with a short GIL switch interval.

    Why a writer thread: the index writes (BM25 terms, the catalog transaction, pymilvus packing
    rows into protobuf) cost ~0.1 s per 256 chunks of pure Python, which the embedding model's
    two threads leave room for; done in turn they cost ingest ~4% of its throughput. Why a
    reader thread: loading, transcribing and chunking the next files overlaps the model's work.

    The switch interval (`INGEST_SWITCH_INTERVAL_S`) is process-wide, so it is applied only while
    a run is inside `with executor:` and restored after.
    """

    background = True

    def __init__(self, switch_interval_s: float = INGEST_SWITCH_INTERVAL_S, readers: int = 1):
        self.switch_interval_s = switch_interval_s
        # Reader threads: 1 prepares files here in turn; more only wait on remote workers
        # (the Ray engine), so several files are prepared at once elsewhere.
        self.readers = max(1, readers)
        self._reader: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._saved_interval: float | None = None

    def __enter__(self) -> "ThreadExecutor":
        self._reader = ThreadPoolExecutor(self.readers, thread_name_prefix="ingest-read",
                                          initializer=lower_priority)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest-write",
                                          initializer=lower_priority)
        self._saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._saved_interval, self.switch_interval_s))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._reader is not None:
                self._reader.shutdown(wait=True, cancel_futures=True)
            if self._writer is not None:
                self._writer.shutdown(wait=True)  # a write in flight is atomic; let it finish
        finally:
            self._reader = self._writer = None
            if self._saved_interval is not None:
                sys.setswitchinterval(self._saved_interval)
                self._saved_interval = None

    def submit(self, fn: Callable[..., R], *args: Any) -> Handle[R]:
        if self._reader is None:
            raise RuntimeError("ThreadExecutor used outside `with executor:`")
        return self._reader.submit(fn, *args)

    def submit_write(self, fn: Callable[..., R], *args: Any) -> Handle[R]:
        if self._writer is None:
            raise RuntimeError("ThreadExecutor used outside `with executor:`")
        return self._writer.submit(fn, *args)


def lower_priority() -> None:
    """Initializer of the reader and writer threads: let the model's threads have the CPU.

    Why: torch runs each layer on all cores and waits for its slowest thread, so a helper
    thread that takes a core for a few milliseconds stalls the whole step. Measured on 2 cores
    (256 chunks): a helper busy 25% of the time slowed embedding 29%; at nice 19 with a 0.5 ms
    GIL switch interval, 20%; with GIL-free work at nice 19, 11%. Linux only: elsewhere
    setpriority(PRIO_PROCESS, ...) would renice the whole process.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


class ReadAhead(Generic[T, R]):
    """`fn` over `items` through an executor, in order, keeping up to `depth` items submitted
    ahead of the one being consumed (at least one: the next item is always on its way)."""

    def __init__(self, executor: Executor, fn: Callable[[T], R], items: Iterable[T], depth: int):
        self.executor = executor
        self.fn = fn
        self.depth = depth
        self._upcoming = iter(items)
        self._queue: deque[tuple[T, Handle[R]]] = deque()

    def fill(self, at_least: int = 0) -> None:
        """Submit items until `max(1, depth, at_least)` are waiting (or none are left)."""
        while len(self._queue) < max(1, self.depth, at_least):
            try:
                item = next(self._upcoming)
            except StopIteration:
                return
            self._queue.append((item, self.executor.submit(self.fn, item)))

    def pop(self) -> tuple[T, Handle[R]] | None:
        """The next item and its handle, in order; None when all are consumed."""
        return self._queue.popleft() if self._queue else None
