"""The incremental ingestion pipeline: find files, skip unchanged ones, load, chunk, embed, index.

Every file gets one result (added / updated / unchanged / failed with a one-line reason, and
`deleted` for pruned sources); a bad file never stops the batch.

Why files are embedded in batches across files: the embedding model is fastest on batches of
similar-length texts, and most files yield only a few chunks. Prepared files queue up until
`batch_chunks` chunks are waiting, then the whole batch is embedded and written with one
Milvus upsert and one catalog transaction (retrievers/index.py). A file is published (made
live) only after its vectors are in Milvus, so kill -9 at any point loses at most the batch
in flight, which the next run redoes.

Files are read, transcribed and chunked one thread ahead (`read_ahead` files, or a whole batch,
with their own catalog connection), and each embedded batch is written to the index by another
thread while the next one is embedded, so that work overlaps the embedding instead of adding to
it: the model's thread only embeds.

Why a size+mtime check comes before hashing: a second run over an unchanged corpus must cost
almost nothing. A file whose size and modification time equal the manifest's is unchanged
without reading it; otherwise its content hash decides. Files that failed to load are
remembered the same way, so an unchanged broken file is reported, not re-read (or re-transcribed).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from ingestion.chunking import Chunker
from ingestion.loaders import AUDIO_EXTENSIONS, loader_for
from ingestion.sections import LoadError, Section
from retrievers.catalog import Catalog, Publication
from retrievers.index import ChunkIndex
from retrievers.records import Chunk, chunk_id_for

log = logging.getLogger(__name__)

UNSUPPORTED_HINTS = {
    ".doc": "legacy Word .doc is not supported; save it as .docx",
    ".xls": "legacy Excel .xls is not supported; save it as .xlsx",
    ".ppt": "legacy PowerPoint .ppt is not supported; save it as .pptx",
    ".jpg": "images are not supported (no OCR)", ".jpeg": "images are not supported (no OCR)",
    ".png": "images are not supported (no OCR)", ".tif": "images are not supported (no OCR)",
    ".tiff": "images are not supported (no OCR)", ".gif": "images are not supported (no OCR)",
}


class EmbedderLike(Protocol):
    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray: ...


@dataclass
class FileResult:
    path: str
    status: str  # added | updated | unchanged | failed | deleted
    chunks: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Prepared:
    """A loaded and chunked file waiting for its vectors."""

    slot: int
    path: Path
    publication: Publication
    chunks: list[Chunk]
    updated: bool


@dataclass
class _Ready:
    """An already computed result, shaped like a future (for `read_ahead=0`)."""

    value: Any

    def result(self) -> Any:
        return self.value


@dataclass
class _Batch:
    items: list[_Prepared] = field(default_factory=list)
    n_chunks: int = 0


class _Writer:
    """Writes embedded batches to the index in one background thread, in order.

    Why a thread: the index writes (BM25 terms, the catalog transaction, pymilvus packing rows
    into protobuf) cost ~0.1 s per 256 chunks of pure Python, which the embedding model's two
    threads leave room for; done in turn they cost ingest ~4% of its throughput. At most one
    batch is in flight, so memory stays bounded and results come out in file order. Each write
    is still one `ChunkIndex.write_sources` call, so kill -9 loses at most that batch.
    """

    def __init__(self, index: ChunkIndex, emit: Callable[[int, FileResult], None],
                 background: bool = True):
        self.index = index
        self.emit = emit
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-write",
                                        initializer=_lower_priority) if background else None
        self._in_flight: Any = None

    def submit(self, items: list[_Prepared], vectors: np.ndarray) -> None:
        self.drain()
        if self._pool is None:
            self._in_flight = _Ready(self._write(items, vectors))
            self.drain()
        else:
            self._in_flight = self._pool.submit(self._write, items, vectors)

    def drain(self) -> None:
        """Wait for the batch in flight and report its files."""
        future, self._in_flight = self._in_flight, None
        if future is not None:
            for item, error in future.result():
                if error is not None:
                    self.emit(item.slot, FileResult(str(item.path), "failed", error=error))
                else:
                    status = "updated" if item.updated else "added"
                    self.emit(item.slot, FileResult(str(item.path), status, chunks=len(item.chunks)))

    def close(self) -> None:
        """Let a write in flight finish (each is atomic anyway), without reporting it."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _write(self, items: list[_Prepared], vectors: np.ndarray) -> list[tuple[_Prepared, str | None]]:
        try:
            self.index.write_sources([(item.publication, item.chunks) for item in items], vectors)
            return [(item, None) for item in items]
        except Exception as exc:
            if len(items) == 1:
                log.debug("failed to index %s", items[0].path, exc_info=True)
                return [(items[0], one_line(exc))]
        # Find the culprit: write file by file, so one bad file does not fail its batch.
        out: list[tuple[_Prepared, str | None]] = []
        row = 0
        for item in items:
            out += self._write([item], vectors[row : row + len(item.chunks)])
            row += len(item.chunks)
        return out


def _lower_priority() -> None:
    """Initializer of the reader and writer threads: let the model's threads have the CPU.

    Why: torch runs each layer on all cores and waits for its slowest thread, so a helper
    thread that takes a core for a few milliseconds stalls the whole step. Measured on 2 cores
    (256 chunks): a helper busy 25% of the time slowed embedding 29%; at nice 19 with a 0.5 ms
    GIL switch interval, 20%; with GIL-free work at nice 19, 11%. Linux only: elsewhere
    setpriority(PRIO_PROCESS, ...) would renice the whole process.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


# The GIL switch interval while an ingest runs (Python's default is 5 ms): a helper thread
# holding the GIL hands it back to the model's thread sooner.
INGEST_SWITCH_INTERVAL_S = 0.0005


def source_id_for(path: Path) -> str:
    """Stable id of a source: its absolute path."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files under the given paths (recursively, sorted, hidden entries skipped), and problems."""
    files: list[Path] = []
    problems: list[FileResult] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    files.append(child)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(FileResult(str(path), "failed", error="no such file or directory"))
    return files, problems


class NotConfigured(RuntimeError):
    """The file may be fine, but this pipeline cannot read its kind (so it is not remembered)."""


def _file_at_fault(exc: BaseException) -> bool:
    from ingestion.audio import AudioDecodeError

    return isinstance(exc, (LoadError, AudioDecodeError))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (LoadError, OSError, NotConfigured)) and not _file_at_fault(exc):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


class IngestionPipeline:
    """Turns files into live chunks in a `ChunkIndex`."""

    def __init__(
        self, index: ChunkIndex, embedder: EmbedderLike, chunker: Chunker, *,
        transcriber: Callable[[], Any] | None = None, max_file_bytes: int = 512 << 20,
        show_progress: bool = True, batch_chunks: int = 256, read_ahead: int = 8,
    ):
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self._transcriber_factory = transcriber
        self._transcriber = None
        self.max_file_bytes = max_file_bytes
        self.show_progress = show_progress
        self.batch_chunks = max(1, batch_chunks)
        self.read_ahead = max(0, read_ahead)  # 0: read each file only when its turn comes

    # --- the run ------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path],
               on_result: Callable[[FileResult], None] | None = None,
               prune: bool = False) -> list[FileResult]:
        """Ingest files and folders; with `prune`, also delete indexed sources under the given
        paths whose files no longer exist. Returns one result per file, in file order."""
        paths = list(paths)
        files, problems = expand_paths(paths)
        results: list[FileResult | None] = [None] * len(files)
        batch = _Batch()
        bars = self._bars(len(files))
        emit = self._emitter(results, on_result)
        # Files are read and chunked one thread ahead of the embedding (with their own catalog
        # connection), so loading overlaps the model's work instead of adding to it.
        reader = Catalog(self.index.catalog.path)
        pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-read", initializer=_lower_priority)
        writer = _Writer(self.index, emit, background=self.read_ahead > 0)
        queue: deque = deque()
        upcoming = iter(enumerate(files))

        def read_ahead(at_least: int = 0) -> None:
            while len(queue) < max(1, self.read_ahead, at_least):
                try:
                    slot, path = next(upcoming)
                except StopIteration:
                    return
                if self.read_ahead:
                    queue.append((slot, path, pool.submit(self._prepare, slot, path, bars, reader)))
                else:
                    queue.append((slot, path, _Ready(self._prepare(slot, path, bars, reader))))

        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, INGEST_SWITCH_INTERVAL_S))
        try:
            read_ahead()
            while queue:
                slot, path, future = queue.popleft()
                bars["files"].set_postfix_str(path.name[-40:])
                prepared = future.result()
                read_ahead()
                if isinstance(prepared, FileResult):
                    emit(slot, prepared)
                else:
                    batch.items.append(prepared)
                    batch.n_chunks += len(prepared.chunks)
                    if batch.n_chunks >= self.batch_chunks:
                        # Queue as many files as this batch took, so the reader prepares the
                        # whole next batch while this one is embedded (8 files ahead left the
                        # embedding waiting ~0.15 s per batch on 12-chunk essays).
                        if self.read_ahead:
                            read_ahead(min(len(batch.items), 64))
                        self._commit(batch, emit, bars, writer)
                        batch = _Batch()
                bars["files"].update(1)
            self._commit(batch, emit, bars, writer)
            writer.drain()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            writer.close()
            sys.setswitchinterval(switch_interval)
            reader.close()
            for bar in bars.values():
                bar.close()
            self.index.flush()
        out = problems + [r for r in results if r is not None]
        for problem in problems:
            if on_result:
                on_result(problem)
        if prune:
            out.extend(self.prune(paths, on_result))
        return out

    def _bars(self, n_files: int) -> dict[str, Any]:
        from tqdm import tqdm

        quiet = not self.show_progress
        return {
            "files": tqdm(total=n_files, desc="files", unit="file", disable=quiet,
                          file=sys.stderr, dynamic_ncols=True, position=0),
            "embed": tqdm(total=0, desc="embed", unit="chunk", disable=quiet,
                          file=sys.stderr, dynamic_ncols=True, position=1),
        }

    @staticmethod
    def _emitter(results: list[FileResult | None],
                 on_result: Callable[[FileResult], None] | None) -> Callable[[int, FileResult], None]:
        def emit(slot: int, result: FileResult) -> None:
            results[slot] = result
            if on_result:
                on_result(result)
        return emit

    # --- per file: decide, load, chunk --------------------------------------------------
    def _prepare(self, slot: int, path: Path, bars: dict[str, Any],
                 catalog: Catalog) -> FileResult | _Prepared:
        shown = str(path)
        source_id = None
        stat = None
        try:
            stat = path.stat()
            if stat.st_size == 0:
                return FileResult(shown, "failed", error="empty file (0 bytes)")
            if stat.st_size > self.max_file_bytes:
                return FileResult(shown, "failed", error=(
                    f"file is {stat.st_size / 2**20:.1f} MiB, over the max_file_mb limit of "
                    f"{self.max_file_bytes / 2**20:.0f} MiB"))
            suffix = path.suffix.lower()
            if suffix not in AUDIO_EXTENSIONS and loader_for(path) is None:
                hint = UNSUPPORTED_HINTS.get(suffix)
                return FileResult(shown, "failed", error=hint or (
                    f"unsupported file type '{path.suffix or path.name}'"))
            source_id = source_id_for(path)
            known = catalog.source(source_id)
            if known and known["size"] == stat.st_size and known["mtime"] == stat.st_mtime:
                return FileResult(shown, "unchanged", chunks=known["n_chunks"])
            failed = catalog.failure(source_id)
            if failed and failed["size"] == stat.st_size and failed["mtime"] == stat.st_mtime:
                return FileResult(shown, "failed", error=failed["error"])
            content_hash = file_sha256(path)
            if known and known["content_hash"] == content_hash:
                catalog.touch(source_id, stat.st_size, stat.st_mtime)
                return FileResult(shown, "unchanged", chunks=known["n_chunks"])
            chunks = self._chunks(path, source_id, content_hash, bars)
            publication = Publication(
                source_id, str(path.resolve()), content_hash, suffix.lstrip("."),
                [c.chunk_id for c in chunks], stat.st_size, stat.st_mtime)
            return _Prepared(slot, path, publication, chunks, updated=known is not None)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad file must never stop the batch
            log.debug("failed to ingest %s", path, exc_info=True)
            error = one_line(exc)
            if source_id is not None and stat is not None and _file_at_fault(exc):
                # Remembered, so the unchanged file is reported, not re-read, next time.
                catalog.record_failure(source_id, str(path.resolve()), stat.st_size,
                                       stat.st_mtime, error)
            return FileResult(shown, "failed", error=error)

    def _sections(self, path: Path, bars: dict[str, Any]) -> tuple[list[Section], dict[str, Any]]:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            return self._transcribe(path, bars)
        loader = loader_for(path)
        if loader is None:
            raise LoadError(f"unsupported file type '{path.suffix or path.name}'")
        return loader(path), {}

    def _transcribe(self, path: Path, bars: dict[str, Any]) -> tuple[list[Section], dict[str, Any]]:
        if self._transcriber_factory is None:
            raise NotConfigured("audio ingestion is not configured (no transcriber)")
        from tqdm import tqdm

        from ingestion.audio import audio_duration, iter_audio

        blocks = iter_audio(path)
        first = next(blocks)  # decoding errors surface before Whisper is loaded
        if self._transcriber is None:
            self._transcriber = self._transcriber_factory()
        total = audio_duration(path) or 0.0
        with tqdm(total=round(total, 1), desc=f"transcribe {path.name[-30:]}", unit="s",
                  disable=not self.show_progress, file=sys.stderr, dynamic_ncols=True,
                  position=2, leave=False) as bar:
            def progress(done: float, known_total: float) -> None:
                if known_total > (bar.total or 0):
                    bar.total = round(known_total, 1)
                bar.update(round(done - bar.n, 1))

            transcript = self._transcriber.transcribe_blocks(
                itertools.chain([first], blocks), total, progress=progress)
        if not transcript.segments:
            raise LoadError("no speech found in the recording")
        sections = [Section(s.text, start=s.start, end=s.end) for s in transcript.segments]
        return sections, {"language": transcript.language}

    def _chunks(self, path: Path, source_id: str, content_hash: str,
                bars: dict[str, Any]) -> list[Chunk]:
        sections, extra = self._sections(path, bars)
        pieces = self.chunker.split(sections)
        if not pieces:
            raise LoadError("no text found")
        now = time.time()
        resolved = str(path.resolve())
        file_type = path.suffix.lower().lstrip(".")
        return [
            Chunk(
                chunk_id=chunk_id_for(source_id, content_hash, position), text=piece.text,
                source=resolved, source_id=source_id, content_hash=content_hash,
                position=position, page=piece.page, start=piece.start, end=piece.end,
                section=piece.heading, file_type=file_type, ingested_at=now, extra=dict(extra),
            )
            for position, piece in enumerate(pieces)
        ]

    # --- per batch: embed, then hand over to the writer ------------------------------------
    def _commit(self, batch: _Batch, emit: Callable[[int, FileResult], None],
                bars: dict[str, Any], writer: _Writer) -> None:
        if not batch.items:
            return
        texts = [c.text for item in batch.items for c in item.chunks]
        bar = bars["embed"]
        if bar.n == 0:
            bar.reset(total=len(texts))  # the rate counts from the first batch, not from start-up
        else:
            bar.total = (bar.total or 0) + len(texts)
            bar.refresh()
        try:
            vectors = self.embedder.encode(texts, progress=bar.update)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if len(batch.items) == 1:
                item = batch.items[0]
                log.debug("failed to embed %s", item.path, exc_info=True)
                emit(item.slot, FileResult(str(item.path), "failed", error=one_line(exc)))
                return
            # Find the culprit: retry file by file, so one bad file does not fail its batch.
            for item in batch.items:
                self._commit(_Batch([item], len(item.chunks)), emit, bars, writer)
            return
        writer.submit(batch.items, vectors)

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
