"""Publishing embedded batches: one `ChunkIndex.write_sources` call per batch, in file order.

Why one call per batch: a file is published (made live) only after its vectors are in Milvus,
and the whole batch goes in with one Milvus upsert and one catalog transaction, so kill -9 at
any point loses at most the batch in flight, which the next run redoes. At most one batch is in
flight (on the executor's writer), so memory stays bounded and results come out in file order.
A failed write is retried file by file (ingestion.batching), so one bad file fails alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np

from ingestion.batching import isolate_failures
from ingestion.executors import Executor
from ingestion.results import FileResult, one_line
from retrievers.catalog import Publication
from retrievers.index import ChunkIndex
from retrievers.records import Chunk

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A loaded and chunked file waiting for its vectors; `slot` is its place in the run."""

    slot: int
    path: Path
    publication: Publication
    chunks: list[Chunk]
    updated: bool


class BatchWriter:
    """Hands each embedded batch to the executor's writer and reports its files when it is done."""

    def __init__(self, index: ChunkIndex, executor: Executor,
                 emit: Callable[[int, FileResult], None],
                 timed: Callable[[str], Any] | None = None):
        self.index = index
        self.timed = timed or (lambda name: nullcontext())  # times the `write` stage
        self.executor = executor
        self.emit = emit
        self._in_flight: Any = None

    def submit(self, items: list[Prepared], vectors: np.ndarray) -> None:
        """Write a batch (`vectors` row-aligned with all its chunks), after the one in flight."""
        self.drain()
        self._in_flight = self.executor.submit_write(self._write, items, vectors)
        if not self.executor.background:
            self.drain()

    def drain(self) -> None:
        """Wait for the batch in flight and report its files."""
        handle, self._in_flight = self._in_flight, None
        if handle is not None:
            for item, error in handle.result():
                if error is not None:
                    self.emit(item.slot, FileResult(str(item.path), "failed", error=error))
                else:
                    status = "updated" if item.updated else "added"
                    self.emit(item.slot, FileResult(str(item.path), status, chunks=len(item.chunks)))

    def _write(self, items: list[Prepared], vectors: np.ndarray) -> list[tuple[Prepared, str | None]]:
        rows = np.cumsum([0] + [len(item.chunks) for item in items])

        def attempt(span: slice) -> None:
            with self.timed("write"):
                self.index.write_sources([(item.publication, item.chunks) for item in items[span]],
                                         vectors[rows[span.start]:rows[span.stop]])

        out: list[tuple[Prepared, str | None]] = []
        for outcome in isolate_failures(items, attempt):
            for item in outcome.items:
                if outcome.error is None:
                    out.append((item, None))
                else:
                    log.debug("failed to index %s", item.path, exc_info=outcome.error)
                    out.append((item, one_line(outcome.error)))
        return out
