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

_OPEN: "weakref.WeakKeyDictionary[Any, threading.Lock | None]" = weakref.WeakKeyDictionary()
_REGISTERED = threading.Lock()
_registered = False
LOCK_WAIT_S = 5.0  # a call still running in a daemon thread gets this long to finish


def close_at_exit(llama: Any, lock: "threading.Lock | None" = None) -> Any:
    """Register `llama` to be closed at exit (under `lock`, the one its callers hold while they
    use it, so a generation still running in a daemon thread is not freed under its feet);
    returns it."""
    global _registered
    with _REGISTERED:
        if not _registered:
            atexit.register(close_all)
            _registered = True
        _OPEN[llama] = lock
    return llama


def close_all() -> None:
    """Close every registered model that is still alive (idempotent)."""
    for llama, lock in list(_OPEN.items()):
        if lock is not None and not lock.acquire(timeout=LOCK_WAIT_S):
            continue  # still in use: leave it to the interpreter rather than free it mid-call
        try:
            llama.close()
        except Exception:  # noqa: BLE001 - best effort at exit; nothing to report to
            pass
        finally:
            if lock is not None:
                lock.release()
        _OPEN.pop(llama, None)
