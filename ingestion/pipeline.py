"""The incremental ingestion pipeline: find files, skip unchanged ones, load, chunk, embed, index.

Every file gets one result (added / updated / unchanged / failed with a one-line reason); a bad
file never stops the batch, and the index write for each file is atomic (see retrievers/index.py).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from ingestion.chunking import Chunker
from ingestion.loaders import AUDIO_EXTENSIONS, loader_for
from ingestion.sections import LoadError, Section
from retrievers.index import ChunkIndex
from retrievers.records import Chunk, chunk_id_for

log = logging.getLogger(__name__)


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


def source_id_for(path: Path) -> str:
    """Stable id of a source: its absolute path."""
    return hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


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


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (LoadError, OSError)):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


class IngestionPipeline:
    """Turns files into live chunks in a `ChunkIndex`."""

    def __init__(
        self, index: ChunkIndex, embedder: EmbedderLike, chunker: Chunker, *,
        transcriber: Callable[[], Any] | None = None, max_file_bytes: int = 512 << 20,
        show_progress: bool = True,
    ):
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self._transcriber_factory = transcriber
        self._transcriber = None
        self.max_file_bytes = max_file_bytes
        self.show_progress = show_progress

    def ingest(self, paths: Iterable[str | Path],
               on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
        files, results = expand_paths(paths)
        from tqdm import tqdm

        bar = tqdm(files, desc="ingest", unit="file", disable=not self.show_progress,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            for path in bar:
                bar.set_postfix_str(path.name[-40:])
                result = self.ingest_file(path)
                results.append(result)
                if on_result:
                    on_result(result)
        finally:
            bar.close()
            self.index.flush()
        return results

    def ingest_file(self, path: Path) -> FileResult:
        shown = str(path)
        try:
            stat = path.stat()
            if stat.st_size == 0:
                return FileResult(shown, "failed", error="empty file (0 bytes)")
            if stat.st_size > self.max_file_bytes:
                return FileResult(shown, "failed", error=(
                    f"file is {stat.st_size / 2**20:.1f} MiB, over the max_file_mb limit of "
                    f"{self.max_file_bytes / 2**20:.0f} MiB"))
            source_id = source_id_for(path)
            content_hash = file_sha256(path)
            known = self.index.catalog.source(source_id)
            if known and known["content_hash"] == content_hash:
                return FileResult(shown, "unchanged", chunks=known["n_chunks"])
            chunks = self._chunks(path, source_id, content_hash)
            vectors = self.embedder.encode([c.text for c in chunks])
            self.index.write_source(
                chunks, vectors, source_id=source_id, path=str(path.resolve()),
                content_hash=content_hash, file_type=path.suffix.lower().lstrip("."),
                size=stat.st_size, mtime=stat.st_mtime,
            )
            return FileResult(shown, "updated" if known else "added", chunks=len(chunks))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad file must never stop the batch
            log.debug("failed to ingest %s", path, exc_info=True)
            return FileResult(shown, "failed", error=one_line(exc))

    def _sections(self, path: Path) -> tuple[list[Section], dict[str, Any]]:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            return self._transcribe(path)
        loader = loader_for(path)
        if loader is None:
            raise LoadError(f"unsupported file type '{path.suffix or path.name}'")
        return loader(path), {}

    def _transcribe(self, path: Path) -> tuple[list[Section], dict[str, Any]]:
        if self._transcriber_factory is None:
            raise LoadError("audio ingestion is not configured (no transcriber)")
        from ingestion.audio import decode_audio

        audio = decode_audio(path)
        if self._transcriber is None:
            self._transcriber = self._transcriber_factory()
        transcript = self._transcriber.transcribe(audio)
        if not transcript.segments:
            raise LoadError("no speech found in the recording")
        sections = [Section(s.text, start=s.start, end=s.end) for s in transcript.segments]
        return sections, {"language": transcript.language}

    def _chunks(self, path: Path, source_id: str, content_hash: str) -> list[Chunk]:
        sections, extra = self._sections(path)
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
