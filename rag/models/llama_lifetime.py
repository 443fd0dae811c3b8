"""Close llama.cpp models before the interpreter tears its modules down.

Why: a `llama_cpp.Llama` still alive at exit is freed during module teardown, when
llama-cpp-python's own module globals are already None, so its `__del__` prints an
`AttributeError: 'NoneType' object has no attribute 'llama_model_free'` traceback after every
command and test run that loaded a model. Closing each one from an `atexit` handler (which runs
before teardown) frees it while the library is whole.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any

LOCK_WAIT_S = 5.0  # a call still running in a daemon thread gets this long to finish


class LlamaRegistry:
    """Models to close together, each with the lock its users hold while they use it."""

    def __init__(self) -> None:
        self._open: "weakref.WeakKeyDictionary[Any, threading.Lock | None]" = (
            weakref.WeakKeyDictionary())
        self._guard = threading.Lock()

    def add(self, llama: Any, lock: "threading.Lock | None" = None) -> Any:
        with self._guard:
            self._open[llama] = lock
        return llama

    def __contains__(self, llama: Any) -> bool:
        return llama in self._open

    def close_all(self, wait_s: float | None = None) -> None:
        """Close every model still alive (idempotent); one whose lock stays held for `wait_s`
        (a generation still running) is left alone rather than freed mid-call."""
        wait = LOCK_WAIT_S if wait_s is None else wait_s
        with self._guard:
            entries = list(self._open.items())
        for llama, lock in entries:
            if lock is not None and not lock.acquire(timeout=wait):
                continue
            try:
                llama.close()
            except Exception:  # noqa: BLE001 - best effort at exit; nothing to report to
                pass
            finally:
                if lock is not None:
                    lock.release()
            with self._guard:
                self._open.pop(llama, None)


AT_EXIT = LlamaRegistry()
atexit.register(AT_EXIT.close_all)


def close_at_exit(llama: Any, lock: "threading.Lock | None" = None) -> Any:
    """Register `llama` to be closed at exit (under `lock`, the one its callers hold while they
    use it); returns it."""
    return AT_EXIT.add(llama, lock)
