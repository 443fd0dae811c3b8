"""The one retry of a failed batch (embedding and index writes both use it): a bad item fails
alone, its batch-mates go through, and a batch of one is not tried twice."""

from __future__ import annotations

import pytest

from ingestion.batching import isolate_failures


def attempts_of(items, bad=()):
    calls: list[list[str]] = []

    def attempt(span: slice) -> list[str]:
        part = list(items[span])
        calls.append(part)
        if any(item in bad for item in part):
            raise ValueError(f"refused {part}")
        return [item.upper() for item in part]

    return calls, attempt


def test_a_good_batch_is_tried_once_whole():
    calls, attempt = attempts_of(["a", "b", "c"])
    outcomes = list(isolate_failures(["a", "b", "c"], attempt))
    assert calls == [["a", "b", "c"]]
    assert [(o.items, o.value, o.error, o.span) for o in outcomes] == [
        (["a", "b", "c"], ["A", "B", "C"], None, slice(0, 3))]


def test_a_failed_batch_is_retried_item_by_item_so_only_the_culprit_fails():
    calls, attempt = attempts_of(["a", "b", "c"], bad={"b"})
    outcomes = list(isolate_failures(["a", "b", "c"], attempt))
    assert calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert [(o.items, o.value, o.span) for o in outcomes] == [
        (["a"], ["A"], slice(0, 1)), (["b"], None, slice(1, 2)), (["c"], ["C"], slice(2, 3))]
    assert isinstance(outcomes[1].error, ValueError)
    assert outcomes[0].error is None and outcomes[2].error is None


def test_a_batch_of_one_is_not_tried_twice():
    calls, attempt = attempts_of(["a"], bad={"a"})
    outcomes = list(isolate_failures(["a"], attempt))
    assert calls == [["a"]]
    assert len(outcomes) == 1 and outcomes[0].items == ["a"] and outcomes[0].error is not None


def test_outcomes_come_one_at_a_time():
    """The caller acts on an item (e.g. hands it to the writer) before the next is tried."""
    calls, attempt = attempts_of(["a", "b"], bad={"b"})
    outcomes = isolate_failures(["a", "b"], attempt)
    assert next(outcomes).items == ["a"]
    assert calls == [["a", "b"], ["a"]]


def test_keyboard_interrupt_is_not_swallowed():
    def attempt(span: slice) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(isolate_failures(["a", "b"], attempt))
