"""Executors run the per-file work and the writes in order; the thread one changes the
process-wide GIL switch interval only while a run is inside it."""

from __future__ import annotations

import sys
import threading

import pytest

from ingestion.executors import (
    INGEST_SWITCH_INTERVAL_S, InlineExecutor, ReadAhead, ThreadExecutor,
)


def test_thread_executor_sets_the_switch_interval_only_during_a_run():
    before = sys.getswitchinterval()
    executor = ThreadExecutor()
    with pytest.raises(ZeroDivisionError):
        with executor:
            assert sys.getswitchinterval() == pytest.approx(min(before, INGEST_SWITCH_INTERVAL_S))
            names = [executor.submit(lambda: threading.current_thread().name).result(),
                     executor.submit_write(lambda: threading.current_thread().name).result()]
            assert names[0].startswith("ingest-read") and names[1].startswith("ingest-write")
            1 / 0
    assert sys.getswitchinterval() == before
    with executor:  # reusable for the next run
        assert executor.submit(len, "abc").result() == 3
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError):
        executor.submit(len, "abc")


def test_inline_executor_runs_on_submission_in_the_callers_thread():
    before = sys.getswitchinterval()
    ran: list[str] = []
    with InlineExecutor() as executor:
        handle = executor.submit(lambda: ran.append(threading.current_thread().name) or 7)
        assert ran == [threading.current_thread().name] and handle.result() == 7
        assert sys.getswitchinterval() == before


@pytest.mark.parametrize("make", [InlineExecutor, ThreadExecutor])
def test_read_ahead_keeps_files_submitted_ahead_and_yields_in_order(make):
    with make() as executor:
        ahead = ReadAhead(executor, lambda n: n * n, range(10), depth=3)
        ahead.fill()
        assert len(ahead._queue) == 3
        item, handle = ahead.pop()
        assert (item, handle.result()) == (0, 0)
        ahead.fill(at_least=5)
        assert len(ahead._queue) == 5
        seen = [(item, handle.result())]
        while (entry := ahead.pop()) is not None:
            seen.append((entry[0], entry[1].result()))
            ahead.fill()
    assert seen == [(0, 0)] + [(n, n * n) for n in range(1, 10)]


def test_read_ahead_of_zero_still_keeps_the_next_file_on_its_way():
    calls: list[int] = []
    with InlineExecutor() as executor:
        ahead = ReadAhead(executor, calls.append, range(3), depth=0)
        ahead.fill()
        assert calls == [0]
        ahead.pop()
        ahead.fill()
        assert calls == [0, 1]
