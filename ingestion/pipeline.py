"""The incremental ingestion pipeline: find files, skip unchanged ones, load, chunk, embed, index.

Every file gets one result (added / updated / unchanged / failed with a one-line reason, and
`deleted` for pruned sources); a bad file never stops the batch.

Why files are embedded in batches across files: the embedding model is fastest on batches of
similar-length texts, and most files yield only a few chunks. Prepared files queue up until
`batch_chunks` chunks are waiting, then the whole batch is embedded and written with one
Milvus upsert and one catalog transaction (ingestion.writing, retrievers/index.py).

This module only orchestrates; each job lives in its own module:
  discovery    which files, their ids, which are refused before reading
  changes      unchanged / known failure / pending, from the catalog (size+mtime, then hash)
  preparation  the pure per-file step: load (or transcribe) and chunk
  executors    where the per-file work and the writes run (threads, or inline), read-ahead
  batching     the one retry that finds the file at fault in a failed batch
  writing      publishing embedded batches, one index write each, in order
  progress     bars on the CLI, silence elsewhere
  timelimits   each file's load-and-chunk step under a time limit (file_timeout_s)
A plain-text file over `stream_file_bytes` is not prepared whole: the run reads, embeds and
stages it a part at a time and publishes it at once (`_stream`), so memory does not grow with it.
Files are read, transcribed and chunked ahead (`read_ahead` files, or a whole batch, with their
own catalog connection), and each embedded batch is written while the next one is embedded, so
that work overlaps the embedding instead of adding to it: the model's thread only embeds.
"""

from __future__ import annotations

import itertools
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np
from opentelemetry import context as otel_context

from ingestion.batching import isolate_failures
from ingestion.changes import ChangeDetector, KnownFailure, Pending, Unchanged
from ingestion.chunking import Chunker
from ingestion.discovery import changed_since, expand_paths, file_sha256, refusal, source_id_for
from ingestion.loaders import Loader
from ingestion.executors import (
    INGEST_SWITCH_INTERVAL_S, Executor, InlineExecutor, ReadAhead, ThreadExecutor,
)
from ingestion.ocr import Ocr
from ingestion.preparation import FilePreparer
from ingestion.progress import Progress, SilentProgress, TqdmProgress
from ingestion.results import FileResult, NotConfigured, file_at_fault, one_line
from ingestion.timelimits import call_with_deadline
from ingestion.writing import BatchWriter, Prepared
from retrievers.catalog import Catalog, Publication
from retrievers.index import ChunkIndex
from retrievers.tracing import stage

__all__ = [
    "IngestionPipeline", "FileResult", "EmbedderLike", "expand_paths", "source_id_for",
    "file_sha256", "one_line", "NotConfigured", "INGEST_SWITCH_INTERVAL_S",
]

log = logging.getLogger(__name__)

# A filled batch queues this many files at most for the reader (see `ingest`).
_MAX_BATCH_READ_AHEAD = 64


class EmbedderLike(Protocol):
    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray: ...


@dataclass
class Streamed:
    """A file too large to hold whole, whose format streams: read, embedded and staged in
    parts by the run itself (`IngestionPipeline._stream`), then published at once."""

    slot: int
    path: Path
    pending: Pending
    stat: os.stat_result


@dataclass
class _Batch:
    items: list[Prepared] = field(default_factory=list)
    n_chunks: int = 0


class IngestionPipeline:
    """Turns files into live chunks in a `ChunkIndex`.

    `executor` runs the per-file work and the writes (default: `ThreadExecutor`, or
    `InlineExecutor` when `read_ahead` is 0); `progress` reports the run (default: tqdm bars
    when `show_progress`, else nothing); `ocr` reads scanned PDF pages and images (None: text
    layers only, images are not read). `file_timeout_s` limits each file's load and chunk
    step (a recording gets `recording_factor` more seconds per second of audio); `loaders`
    maps extensions to loaders (None: the registry's, `ingestion.loaders`). A file over
    `stream_file_bytes` in a format that streams is read a part at a time. `on_embedded(chunks,
    vectors)` is told of every embedded batch (the drift profile samples it). `tracer` (an
    OpenTelemetry `Tracer`) times the stages: hash (change detection), load or transcribe,
    chunk, embed, write (both indexes), flush. `preparer` loads and chunks a file (default: a
    `FilePreparer` here; the Ray engine passes one that does it on the cluster, shaped the same).
    """

    def __init__(
        self, index: ChunkIndex, embedder: EmbedderLike, chunker: Chunker | None, *,
        transcriber: Callable[[], Any] | None = None, max_file_bytes: int = 512 << 20,
        show_progress: bool = True, batch_chunks: int = 256, read_ahead: int = 8,
        executor: Executor | None = None, progress: Progress | None = None,
        ocr: Ocr | None = None, file_timeout_s: float = 0.0, recording_factor: float = 3.0,
        loaders: Mapping[str, Loader] | None = None, stream_file_bytes: int = 32 << 20,
        tracer: Any = None,
        on_embedded: Callable[[Sequence[Any], np.ndarray], None] | None = None,
        preparer: FilePreparer | None = None,
    ):
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        if preparer is None:
            if chunker is None:
                raise ValueError("IngestionPipeline needs a chunker, or a preparer")
            preparer = FilePreparer(chunker, transcriber, ocr=ocr, loaders=loaders,
                                    recording_factor=recording_factor)
        self.preparer = preparer
        self.loaders = loaders
        self.max_file_bytes = max_file_bytes
        self.file_timeout_s = file_timeout_s  # 0: no limit (see ingestion.timelimits)
        # Files larger than this whose format streams (plain text) are read, embedded and
        # staged a batch at a time, so memory does not grow with the file (see `_stream`).
        self.stream_file_bytes = stream_file_bytes
        self.show_progress = show_progress
        self.batch_chunks = max(1, batch_chunks)
        self.read_ahead = max(0, read_ahead)  # 0: read each file only when its turn comes
        if executor is None:
            executor = ThreadExecutor() if self.read_ahead else InlineExecutor()
        self.executor = executor
        if progress is None:
            progress = TqdmProgress() if show_progress else SilentProgress()
        self.progress = progress
        self.tracer = tracer
        # Sees every embedded batch (its chunks and their vectors), e.g. the drift profile.
        self.on_embedded = on_embedded
        # The operation the run's stages belong to: captured when a run starts, passed
        # explicitly because the reader and writer threads do not inherit it.
        self._context: otel_context.Context | None = None

    def _timed(self, name: str, **attributes: Any):
        return stage(self.tracer, name, context=self._context, **attributes)

    # --- the run ------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path],
               on_result: Callable[[FileResult], None] | None = None,
               prune: bool = False) -> list[FileResult]:
        """Ingest files and folders; with `prune`, also delete indexed sources under the given
        paths whose files no longer exist. Returns one result per file, in file order."""
        paths = list(paths)
        files, problems = expand_paths(paths)
        results: list[FileResult | None] = [None] * len(files)

        def emit(slot: int, result: FileResult) -> None:
            results[slot] = result
            if on_result:
                on_result(result)

        self._context = otel_context.get_current()
        # The reader checks files against the catalog on its own connection.
        detector = ChangeDetector(Catalog(self.index.catalog.path))
        self.progress.start(len(files))
        try:
            with self.executor:
                self._run(files, detector, emit)
        finally:
            detector.catalog.close()
            self.progress.close()
            with self._timed("flush"):
                # Flushes Milvus and lets another process write (ChunkIndex.finish_writes).
                self.index.finish_writes()
        out = problems + [r for r in results if r is not None]
        for problem in problems:
            if on_result:
                on_result(problem)
        if prune:
            out.extend(self.prune(paths, on_result))
        return out

    def _run(self, files: list[Path], detector: ChangeDetector,
             emit: Callable[[int, FileResult], None]) -> None:
        writer = BatchWriter(self.index, self.executor, emit, timed=self._timed)
        ahead: ReadAhead[tuple[int, Path], FileResult | Prepared] = ReadAhead(
            self.executor, lambda entry: self._prepare(*entry, detector), enumerate(files),
            self.read_ahead)
        batch = _Batch()
        whole_run = True  # nothing embedded yet: the last batch may then be the run's only one
        ahead.fill()
        while (entry := ahead.pop()) is not None:
            (slot, path), handle = entry
            self.progress.file_started(path.name)
            prepared = handle.result()
            ahead.fill()
            if isinstance(prepared, FileResult):
                emit(slot, prepared)
            elif isinstance(prepared, Streamed):
                self._embed(batch.items, emit, writer)  # in file order: earlier files first
                batch, whole_run = _Batch(), False
                writer.drain()
                emit(slot, self._stream(prepared, detector))
            else:
                batch.items.append(prepared)
                batch.n_chunks += len(prepared.chunks)
                if batch.n_chunks >= self.batch_chunks:
                    # Queue as many files as this batch took, so the reader prepares the
                    # whole next batch while this one is embedded (8 files ahead left the
                    # embedding waiting ~0.15 s per batch on 12-chunk essays).
                    if self.read_ahead:
                        ahead.fill(min(len(batch.items), _MAX_BATCH_READ_AHEAD))
                    self._embed(batch.items, emit, writer)
                    batch, whole_run = _Batch(), False
            self.progress.file_done()
        self._embed(batch.items, emit, writer, whole_run=whole_run)
        writer.drain()

    # --- per file: decide, then load and chunk ----------------------------------------------
    def _prepare(self, slot: int, path: Path, detector: ChangeDetector
                 ) -> FileResult | Prepared | Streamed:
        """The file's result when there is nothing to embed, else its chunks; never raises."""
        shown = str(path)
        pending = None
        try:
            stat = path.stat()
            reason = refusal(path, stat, self.max_file_bytes, self.loaders)
            if reason is not None:
                return FileResult(shown, "failed", error=reason)
            with self._timed("hash"):
                decision = detector.check(path, stat)
            if isinstance(decision, Unchanged):
                return FileResult(shown, "unchanged", chunks=decision.n_chunks)
            if isinstance(decision, KnownFailure):
                return FileResult(shown, "failed", error=decision.error)
            pending = decision
            if stat.st_size > self.stream_file_bytes and self.preparer.streams(path):
                return Streamed(slot, path, pending, stat)
            chunks = call_with_deadline(
                lambda deadline: self.preparer.prepare(
                    path, pending.source_id, pending.content_hash,
                    transcription=self.progress.transcription,
                    pages=getattr(self.progress, "ocr_pages", None), deadline=deadline,
                    timed=self._timed),
                self.file_timeout_s)
            moved = changed_since(path, stat)
            if moved:
                # The chunks may mix two versions; the next run reads the file afresh.
                return FileResult(shown, "failed", error=f"{moved} while it was read; not "
                                  "indexed this time, ingest again once it is complete")
            publication = Publication(
                pending.source_id, str(path.resolve()), pending.content_hash,
                path.suffix.lower().lstrip("."), [c.chunk_id for c in chunks],
                pending.size, pending.mtime, pending.reader)
            return Prepared(slot, path, publication, chunks, updated=pending.updated)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad file must never stop the batch
            log.debug("failed to ingest %s", path, exc_info=True)
            error = one_line(exc)
            if pending is not None and file_at_fault(exc):
                # Remembered, so the unchanged file is reported, not re-read, next time.
                detector.record_failure(path, pending, error)
            return FileResult(shown, "failed", error=error)

    # --- one large file in parts --------------------------------------------------------------
    def _stream(self, item: Streamed, detector: ChangeDetector) -> FileResult:
        """Read, chunk, embed and stage a large file `batch_chunks` chunks at a time, then make
        them live in one transaction (ChunkIndex.publish_staged): memory holds one part, the
        old version stays searchable until the new one is complete, and a failure part-way
        drops what was staged. An interrupted run (kill -9, Ctrl-C) leaves its parts staged:
        the next run of the same bytes reads the file again but embeds only what was not
        staged. Each part is read under the file time limit."""
        path, pending = item.path, item.pending
        publication = Publication(pending.source_id, str(path.resolve()), pending.content_hash,
                                  path.suffix.lower().lstrip("."), [], pending.size, pending.mtime,
                                  pending.reader)
        reading = getattr(self.progress, "reading", None)
        with reading(path, pending.size) if reading else nullcontext(None) as on_read:
            return self._stream_parts(item, detector, publication, on_read)

    def _stream_parts(self, item: Streamed, detector: ChangeDetector, publication: Publication,
                      on_read: Callable[[int], None] | None) -> FileResult:
        path, pending = item.path, item.pending
        chunks = self.preparer.iter_chunks(path, pending.source_id, pending.content_hash,
                                           on_read=on_read)
        staged: list[str] = []
        resumed = 0
        try:
            kept = self.index.begin_staging(publication)
            if kept:
                log.warning("%s: resuming an interrupted ingest; %d chunks were staged", path, kept)
            while True:
                part = call_with_deadline(
                    lambda deadline: list(itertools.islice(chunks, self.batch_chunks)),
                    self.file_timeout_s)
                if not part:
                    break
                done = self.index.staged_texts([c.chunk_id for c in part]) if kept else {}
                todo = [c for c in part if done.get(c.chunk_id) != c.text]
                if todo:
                    with self._timed("embed", **{"rag.tokens.embedded_texts": len(todo)}):
                        vectors = self.embedder.encode(self.index.passage_texts(todo),
                                                       progress=self.progress.embedding(len(todo)))
                    self._observe(todo, vectors)
                    with self._timed("write"):
                        self.index.stage_part(todo, vectors)
                resumed += len(part) - len(todo)
                staged.extend(c.chunk_id for c in part)
            moved = changed_since(path, item.stat)
            if moved:
                raise OSError(f"{moved} while it was read; not indexed this time, ingest again "
                              "once it is complete")
            publication.chunk_ids = staged
            with self._timed("write"):
                self.index.publish_staged(publication)
            status = "updated" if pending.updated else "added"
            return FileResult(str(path), status, chunks=len(staged), resumed=resumed)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.debug("failed to ingest %s", path, exc_info=True)
            try:
                self.index.discard_staged(staged, pending.source_id)
            except Exception:  # the next open's repair() drops pending rows anyway
                log.debug("could not discard the staged chunks of %s", path, exc_info=True)
            error = one_line(exc)
            if file_at_fault(exc):
                detector.record_failure(path, pending, error)
            return FileResult(str(path), "failed", error=error)

    # --- per batch: embed, then hand over to the writer ------------------------------------
    def _embed(self, items: list[Prepared], emit: Callable[[int, FileResult], None],
               writer: BatchWriter, whole_run: bool = False) -> None:
        """Embed and hand over a batch; `whole_run`: it holds every chunk the run embeds, so an
        embedder may serve it from a lighter model (`Embedder.small_ingest_encoder`)."""
        if not items:
            return
        encoder: EmbedderLike = self.embedder
        if whole_run:
            small = getattr(self.embedder, "small_ingest_encoder", None)
            encoder = (small() if small is not None else None) or self.embedder

        def attempt(span: slice) -> np.ndarray:
            texts = self.index.passage_texts([c for item in items[span] for c in item.chunks])
            with self._timed("embed", **{"rag.tokens.embedded_texts": len(texts)}):
                return encoder.encode(texts, progress=self.progress.embedding(len(texts)))

        for outcome in isolate_failures(items, attempt):
            if outcome.error is None:
                self._observe([c for item in outcome.items for c in item.chunks], outcome.value)
                writer.submit(outcome.items, outcome.value)
            else:
                for item in outcome.items:
                    log.debug("failed to embed %s", item.path, exc_info=outcome.error)
                    emit(item.slot, FileResult(str(item.path), "failed", error=one_line(outcome.error)))

    def _observe(self, chunks: Sequence[Any], vectors: np.ndarray) -> None:
        if self.on_embedded is not None:
            try:
                self.on_embedded(chunks, vectors)
            except Exception:  # an observer must never fail the ingest
                log.debug("on_embedded failed", exc_info=True)

    # --- removal --------------------------------------------------------------------------
    def prune(self, paths: Iterable[str | Path],
              on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
        """Delete indexed sources under `paths` whose files no longer exist."""
        roots = [str(Path(p).resolve()) for p in paths]
        out: list[FileResult] = []
        for row in self.index.catalog.sources_under(roots):
            if os.path.exists(row["path"]):
                continue
            removed = self.index.delete_source(row["source_id"])
            result = FileResult(row["path"], "deleted", chunks=removed)
            out.append(result)
            if on_result:
                on_result(result)
        for row in self.index.catalog.failures_under(roots):
            if not os.path.exists(row["path"]):
                self.index.catalog.forget_failure(row["source_id"])
        return out
