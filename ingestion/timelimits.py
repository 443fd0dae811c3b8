"""Per-file time limits: one pathological file (a PDF whose parsing never ends) fails with its
reason, "took longer than N s", and the batch goes on.

Why a watchdog over a thread, not a worker process. A Python thread cannot be killed, so each
file's load-and-chunk step runs in a thread of its own (a daemon), and the caller waits for it
at most until its deadline. On time-out:
  1. the file is reported failed (`FileTimeLimit`, one line) and the run goes on at once with
     the next file: nothing waits on the stuck thread, and nothing it might still produce is used;
  2. the stuck thread is asked to stop by an asynchronous exception (`_Stop`, raised inside it at
     its next Python bytecode, and raised again every 0.25 s while it lives: one that lands in a
     finaliser is dropped by CPython). The loaders are Python code over their parsers (pypdf,
     python-docx, BeautifulSoup, ...), so a runaway parse loop stops within milliseconds and its
     memory is freed;
  3. a thread blocked inside C code that never returns to the interpreter (a read from a pipe
     whose writer never writes, a hung native call) cannot be stopped from Python: it is left
     behind, a daemon thread parked on that call, and it ends with the process. It holds its
     file open and whatever memory it had, and no lock of the pipeline.
A worker process would make step 3 a kill, but every file's sections would be pickled across a
pipe (a 500 MB text file twice over), Whisper and the OCR models would be loaded once more per
worker, and loaders passed in (tests, plugins) would have to be importable there. The thread
design keeps the step where it was (the reader thread, or the caller's with `read_ahead=0`)
at the cost of one short-lived thread per file (~0.1 ms), which the embedding dwarfs.
A C loop that holds the GIL would stall the whole process and no watchdog in it could help;
none of the parsers used here does that on the inputs tried (tests/ingestion/test_timelimits.py).

Slow by nature is not stuck: a recording may take `file_timeout_s` plus `recording_factor`
seconds per second of audio (Whisper on a laptop runs at a fraction of real time), and each
page OCR reads restarts the clock (a 300-page scan is 300 steps, each limited alone).
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Callable, TypeVar

R = TypeVar("R")

# How long a stopped thread is given to unwind before the run goes on without it.
STOP_GRACE_S = 0.5


class FileTimeLimit(RuntimeError):
    """A file's load-and-chunk step ran past its time limit; the message is the one-line cause."""


class _Stop(BaseException):
    """Raised inside an abandoned file's thread. A BaseException, so that a loader's broad
    `except Exception` (some retry or skip per page) cannot swallow it."""


class Deadline:
    """When a file's step must be done; the step may move it (`extend`, `restart`)."""

    def __init__(self, seconds: float):
        self.seconds = seconds  # 0 or less: no limit
        self.allowed = seconds  # what the message reports: the limit with its extensions
        self._end = time.monotonic() + seconds if seconds > 0 else float("inf")
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self._end != float("inf")

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def extend(self, seconds: float) -> None:
        """Allow `seconds` more (e.g. for a long recording, once its duration is known)."""
        if self.limited and seconds > 0:
            with self._lock:
                self._end += seconds
                self.allowed += seconds

    def restart(self) -> None:
        """The step made progress (a page read by OCR): the full limit counts from now."""
        if self.limited:
            with self._lock:
                self._end = max(self._end, time.monotonic() + self.seconds)


def call_with_deadline(fn: Callable[[Deadline], R], seconds: float, *, what: str = "file") -> R:
    """`fn(deadline)` in a thread of its own; its value, or its error re-raised here, or
    `FileTimeLimit` once the deadline passes (the thread is stopped or left behind, see the
    module docstring). `seconds` <= 0 runs `fn` here, unlimited."""
    deadline = Deadline(seconds)
    if not deadline.limited:
        return fn(deadline)
    box: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:  # runs at the priority of the thread that starts it (Linux: inherited)
        try:
            box["value"] = fn(deadline)
        except BaseException as exc:  # noqa: BLE001 - carried over to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=work, name=f"ingest-{what}", daemon=True)
    thread.start()
    while not done.wait(max(0.0, deadline.remaining())):
        if deadline.remaining() <= 0:
            break
    if not done.is_set():
        _stop(thread)
        done.wait(STOP_GRACE_S)
        raise FileTimeLimit(f"took longer than {deadline.allowed:g} s to read and chunk "
                            f"(file_timeout_s = {seconds:g}); stopped")
    error = box.get("error")
    if error is not None:
        raise error  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


# An asynchronous exception that lands while the thread runs a finaliser (`__del__`, a weakref
# callback: the garbage collector may run one at any allocation) is printed and dropped by
# CPython, and the parse goes on. So it is raised again at this interval while the thread lives,
# for at most STOP_RETRY_S (a thread parked in C code never takes it; see the docstring).
STOP_RETRY_EVERY_S = 0.25
STOP_RETRY_S = 60.0


def _stop(thread: threading.Thread) -> None:
    """Raise `_Stop` in `thread` at its next bytecode (CPython's PyThreadState_SetAsyncExc),
    and again while it is alive, in case a finaliser swallowed it."""
    if thread.ident is None:
        return
    _raise_in(thread)

    def insist() -> None:
        end = time.monotonic() + STOP_RETRY_S
        while time.monotonic() < end:
            thread.join(STOP_RETRY_EVERY_S)
            if not thread.is_alive():
                return
            _raise_in(thread)

    threading.Thread(target=insist, name=f"stop-{thread.name}", daemon=True).start()


def _raise_in(thread: threading.Thread) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Stop))
