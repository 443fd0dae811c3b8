"""One bad file must not fail its batch: try the batch whole, and only if that fails, file by file.

Why one helper: files are embedded and written in batches across files, and both the embedding
and the index write can fail because of one file (text the model rejects, a row the store
refuses). Trying each file alone after a failed batch finds the culprit, so only that file is
reported failed and its batch-mates go in; a batch of one is not tried twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    """What one attempt gave: its items (the batch, or one of them), a value or an error."""

    items: list[T]
    span: slice  # where `items` sit in the batch
    value: R | None = None
    error: Exception | None = None


def isolate_failures(items: Sequence[T], attempt: Callable[[slice], R]) -> Iterator[Outcome[T, R]]:
    """Call `attempt(slice(0, n))` over the whole batch; if it raises and the batch holds more
    than one item, call it once per item. Yields each outcome as soon as it is known (lazily, so
    the caller can act on one before the next attempt starts)."""
    whole = slice(0, len(items))
    try:
        value = attempt(whole)
    except Exception as exc:
        if len(items) == 1:
            yield Outcome(list(items), whole, error=exc)
            return
    else:
        yield Outcome(list(items), whole, value)
        return
    for k, item in enumerate(items):
        span = slice(k, k + 1)
        try:
            value = attempt(span)
        except Exception as exc:
            yield Outcome([item], span, error=exc)
        else:
            yield Outcome([item], span, value)
