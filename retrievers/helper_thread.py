"""One helper thread for the parts of a query that can run beside it on a second core: a Milvus
Lite index's segment walks (`lite_search.walk_segments`), or the in-process BM25 search beside
the dense search (`hybrid.HybridRetriever`).

Why one thread, taken only when free: on the two cores this is written for, a query has one
part at a time to hand off, and a second helper would only compete. When the helper is busy
(another query's part, or this query's BM25 while its dense search walks), `submit` says so
and the caller runs the part itself, so concurrent queries never queue behind each other here.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

_T = TypeVar("_T")
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_free = threading.Semaphore(1)


def submit(fn: Callable[..., _T], *args: Any) -> "Future[_T] | None":
    """`fn(*args)` started on the helper thread, or None when the helper is busy or there is
    a single core (the caller then runs it)."""
    global _executor
    if len(os.sched_getaffinity(0)) < 2 or not _free.acquire(blocking=False):
        return None
    try:
        if _executor is None:
            with _lock:
                if _executor is None:
                    _executor = ThreadPoolExecutor(1, thread_name_prefix="rag-query-helper")
        return _executor.submit(_then_free, fn, *args)
    except BaseException:
        _free.release()
        raise


def _then_free(fn: Callable[..., _T], *args: Any) -> _T:
    try:
        return fn(*args)
    finally:
        _free.release()


def _forget() -> None:
    """In a forked child the helper's thread does not exist: work handed to it would wait
    forever, so the child starts its own."""
    global _executor, _lock, _free
    _executor, _lock, _free = None, threading.Lock(), threading.Semaphore(1)


os.register_at_fork(after_in_child=_forget)
