"""The query helper thread: tasks handed to it overlap the caller's own work for the query, are
shared from both ends, come back in order, and never wait for a busy helper."""

from __future__ import annotations

import os
import threading

import pytest

from retrievers.helper_thread import meanwhile, run_tasks, submit

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                reason="one core: the caller runs every part itself")


def test_the_callers_own_work_runs_while_the_helper_runs_the_task():
    """A hybrid query's BM25 (the caller's work) overlaps its dense walk (the task): each
    waits for the other to start, which both see only if the two run at once."""
    task_started, work_started = threading.Event(), threading.Event()

    def task():
        task_started.set()
        return work_started.wait(5), threading.current_thread().name

    def keyword_search():
        work_started.set()
        return task_started.wait(5), "bm25 hits"

    with meanwhile(keyword_search) as work:
        (task_saw_work, ran_on), = run_tasks([task])
    assert work.value() == (True, "bm25 hits") and task_saw_work, (
        "the task ran before or after the caller's work, not beside it")
    assert ran_on.startswith("rag-query-helper")


def test_tasks_are_taken_from_both_ends_and_answered_in_order():
    """The helper takes the first task; the caller takes the others from the last one back
    (the last waits until the first has started, the first until the middle one has run)."""
    first_started, middle_ran = threading.Event(), threading.Event()

    def first():
        first_started.set()
        return middle_ran.wait(5), threading.current_thread().name

    def middle():
        middle_ran.set()
        return True, threading.current_thread().name

    def last():
        return first_started.wait(5), threading.current_thread().name

    found = run_tasks([first, middle, last])
    me = threading.current_thread().name
    assert [ok for ok, _ in found] == [True, True, True]
    assert found[0][1].startswith("rag-query-helper")
    assert [name for _, name in found[1:]] == [me, me]


def test_with_the_helper_busy_the_caller_runs_the_tasks_and_its_own_work_after_them():
    release = threading.Event()
    busy = submit(release.wait, 30)
    assert busy is not None, "the helper was still busy from an earlier test"
    try:
        order = []
        with meanwhile(lambda: order.append("work") or "hits") as work:
            names = run_tasks([lambda: threading.current_thread().name] * 2)
            order.append("tasks done")
        assert work.value() == "hits"
        assert order == ["tasks done", "work"]
        assert names == [threading.current_thread().name] * 2
    finally:
        release.set()
    assert busy.result() is True


def test_a_failing_task_is_raised_to_the_caller_and_its_own_work_keeps_its_error():
    def walk():
        raise ValueError("segment walk failed")

    def keyword_search():
        raise KeyError("bm25 failed")

    with meanwhile(keyword_search) as work:
        with pytest.raises(ValueError, match="segment walk failed"):
            run_tasks([walk, lambda: "fine"])
    with pytest.raises(KeyError, match="bm25 failed"):
        work.value()
    assert run_tasks([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]  # the helper is free again
