"""One helper thread for the parts of a query that can run beside it on a second core: a dense
search's segment walks (`lite_search.walk_segments`), with the caller doing the query's other
work meanwhile (`meanwhile`: a hybrid query's BM25 search).

Why one thread, taken only when free: on the two cores this is written for, a query has one
part at a time to hand off, and a second helper would only compete. When the helper is busy
(another query's part), `submit` says so and the caller runs the part itself, so concurrent
queries never queue behind each other here.

Why the walks go to the helper and BM25 stays with the caller, not the other way round: FAISS
lets the GIL go while it walks a graph, while BM25's numpy steps and the dense search's own
(re-scoring, liveness checks) all need it. With BM25 on the helper beside the whole dense search
the two fought for the GIL, and at 100k chunks side by side took as long as one after the other
(2-core Intel Xeon VM, README "Where the growth comes from").
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generic, Iterator, TypeVar

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


class Meanwhile(Generic[_T]):
    """Work a caller can do while another part of its query runs on the helper; run once,
    by whoever gets to it first (`run_tasks`, or the caller's `value()` after)."""

    def __init__(self, fn: Callable[[], _T]):
        self._fn = fn
        self._ran = False
        self._result: Any = None
        self._error: BaseException | None = None

    @property
    def ran(self) -> bool:
        return self._ran

    def run(self) -> None:
        if self._ran:
            return
        self._ran = True
        try:
            self._result = self._fn()
        except BaseException as exc:  # raised by `value`, to the caller that asked for it
            self._error = exc

    def value(self) -> _T:
        """Its result (running it now if nothing did), or its exception."""
        self.run()
        if self._error is not None:
            raise self._error
        return self._result


_pending: contextvars.ContextVar["Meanwhile[Any] | None"] = contextvars.ContextVar(
    "rag_query_meanwhile", default=None)


@contextlib.contextmanager
def meanwhile(fn: Callable[[], _T]) -> Iterator[Meanwhile[_T]]:
    """Within the block, a `run_tasks` that hands tasks to the helper runs `fn` on the caller
    while they run; `value()` after the block gives its result either way."""
    work = Meanwhile(fn)
    token = _pending.set(work)
    try:
        yield work
    finally:
        _pending.reset(token)


def run_tasks(tasks: list[Callable[[], _T]]) -> list[_T]:
    """Every task's result, in order. With the helper free, it takes the tasks from the front
    while the caller first does its pending `meanwhile` work, if any, then takes them from the
    back; else the caller runs them all. A task's exception is raised here, once the helper's
    share is done."""
    pending = _pending.get()
    if pending is not None and pending.ran:
        pending = None
    if len(tasks) < (1 if pending is not None else 2):
        return [task() for task in tasks]
    work = _Shared(tasks)
    helper = submit(work.run_from_front)
    if helper is None:
        return [task() for task in tasks]
    try:
        if pending is not None:
            pending.run()
        work.run_from_back()
    finally:
        helper.result()  # its last task is done; its tasks' errors are in `outcomes`
    return work.results()


class _Shared:
    """A list of tasks two threads take from opposite ends; each task runs once."""

    def __init__(self, tasks: list[Callable[[], Any]]):
        self.tasks = tasks
        self.front, self.back = 0, len(tasks)  # tasks[front:back] are not taken yet
        self.outcomes: list[tuple[bool, Any]] = [(False, None)] * len(tasks)
        self.taking = threading.Lock()

    def _take(self, from_front: bool) -> int | None:
        with self.taking:
            if self.front >= self.back:
                return None
            if from_front:
                self.front += 1
                return self.front - 1
            self.back -= 1
            return self.back

    def _run(self, n: int) -> None:
        try:
            self.outcomes[n] = (True, self.tasks[n]())
        except BaseException as exc:  # raised to the caller by `results`
            self.outcomes[n] = (False, exc)

    def run_from_front(self) -> None:
        while (n := self._take(True)) is not None:
            self._run(n)

    def run_from_back(self) -> None:
        while (n := self._take(False)) is not None:
            self._run(n)

    def results(self) -> list[Any]:
        out = []
        for ok, value in self.outcomes:
            if not ok:
                raise value
            out.append(value)
        return out


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
