"""The pure per-file step: load a file (a format loader, Whisper for audio and video, OCR for
scans and images) and chunk it into `Chunk`s with deterministic ids.

Why pure: no catalog, no index, no threads and no progress bars, only the file, the chunker and
the transcriber and the OCR, so the same step runs in the ingest thread today and in worker processes of a
distributed engine later. Failures are raised (`LoadError` and friends), not reported; the
caller turns them into results. Transcription and OCR progress go out through optional callbacks.
"""

from __future__ import annotations

import itertools
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from ingestion.chunking import Chunker
from ingestion.loaders import AUDIO_EXTENSIONS, LOADERS, STREAMERS, Loader, loader_for, reads_with_ocr
from ingestion.ocr import Ocr, PageProgress
from ingestion.results import NotConfigured
from ingestion.sections import LoadError, Section
from ingestion.timelimits import Deadline
from retrievers.records import Chunk, chunk_id_for

# Opens a report for one recording: given its path and expected seconds, yields a callback
# that takes (seconds done, seconds known in total); see ingestion.progress.
TranscriptionProgress = Callable[[Path, float], AbstractContextManager[Callable[[float, float], None]]]
# Opens a report for one file whose pages OCR may read: yields a `PageProgress` callback.
OcrProgress = Callable[[Path], AbstractContextManager[PageProgress]]
# Times one stage of preparing a file: `with timed("load"): ...` (the pipeline passes a span).
Timed = Callable[[str], AbstractContextManager[Any]]


def _untimed(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


class FilePreparer:
    """Loads and chunks files. The transcriber is made on the first recording, and not pickled
    with the preparer, so each worker process loads its own Whisper only when it needs one.
    `ocr` reads scanned pages and images (None: PDFs are read by their text layer only, and
    images are not read); its recogniser loads its models on the first page it reads."""

    def __init__(self, chunker: Chunker, transcriber_factory: Callable[[], Any] | None = None,
                 ocr: Ocr | None = None, loaders: Mapping[str, Loader] | None = None,
                 recording_factor: float = 3.0):
        self.chunker = chunker
        self.transcriber_factory = transcriber_factory
        self.ocr = ocr
        # extension -> loader; None: the registry's (ingestion.loaders). A test or an
        # application passes its own mapping rather than registering into the global one.
        self.loaders = loaders
        # A recording's time limit grows by this many seconds per second of audio.
        self.recording_factor = recording_factor
        self._transcriber: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transcriber": None}

    def prepare(self, path: Path, source_id: str, content_hash: str,
                transcription: TranscriptionProgress | None = None,
                pages: OcrProgress | None = None, deadline: Deadline | None = None,
                timed: Timed | None = None) -> list[Chunk]:
        """The file's chunks, in order; raises (e.g. `LoadError`) when it yields none.
        `deadline` (ingestion.timelimits) is given more time for a recording, by its duration,
        and restarted by each page OCR reads. `timed(stage)` times the `load` (or
        `transcribe`) and `chunk` stages."""
        timed = timed or _untimed
        with timed("transcribe" if path.suffix.lower() in AUDIO_EXTENSIONS else "load"):
            sections, extra = self._sections(path, transcription, pages, deadline)
            sections = list(sections)  # a lazy loader reads here, not while chunking
        with timed("chunk"):
            chunks = list(self._chunks(path, source_id, content_hash, sections, extra))
        if not chunks:
            raise LoadError("no text found")
        return chunks

    def streams(self, path: Path) -> bool:
        """Whether the file's format can be read as a stream (`iter_chunks`)."""
        suffix = path.suffix.lower()
        return suffix in STREAMERS and self.loader_for(path) is LOADERS.get(suffix)

    def iter_chunks(self, path: Path, source_id: str, content_hash: str,
                    on_read: Callable[[int], None] | None = None) -> Iterator[Chunk]:
        """The chunks of a large file as its streaming loader reads it: memory holds a section
        at a time (the caller embeds and stages them in parts). `on_read(bytes)` is told how far
        into the file the reading is, as each section is taken. `LoadError` when none come."""
        sections = STREAMERS[path.suffix.lower()](path)
        if on_read is not None:
            sections = _reporting_reads(sections, on_read)
        found = False
        for chunk in self._chunks(path, source_id, content_hash, sections, {}):
            found = True
            yield chunk
        if not found:
            raise LoadError("no text found")

    def _chunks(self, path: Path, source_id: str, content_hash: str, sections: Iterable[Section],
                extra: dict[str, Any]) -> Iterator[Chunk]:
        now = time.time()
        resolved = str(path.resolve())
        file_type = path.suffix.lower().lstrip(".")
        for position, piece in enumerate(self.chunker.iter_split(sections)):
            yield Chunk(
                chunk_id=chunk_id_for(source_id, content_hash, position), text=piece.text,
                source=resolved, source_id=source_id, content_hash=content_hash,
                position=position, page=piece.page, start=piece.start, end=piece.end,
                section=piece.heading, file_type=file_type, ingested_at=now,
                extra={**extra, **_chunk_extra(piece.meta)},
            )

    def loader_for(self, path: Path) -> Loader | None:
        """The loader for a file's extension, from the loaders given or the registry."""
        if self.loaders is None:
            return loader_for(path)
        return self.loaders.get(path.suffix.lower())

    def _sections(self, path: Path, transcription: TranscriptionProgress | None,
                  pages: OcrProgress | None = None, deadline: Deadline | None = None
                  ) -> tuple[list[Section], dict[str, Any]]:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            return self._transcribe(path, transcription, deadline)
        loader = self.loader_for(path)
        if loader is None:
            raise LoadError(f"unsupported file type '{path.suffix or path.name}'")
        if not reads_with_ocr(path):
            return loader(path), {}
        if (pages is None or self.ocr is None) and deadline is None:
            return loader(path, ocr=self.ocr, progress=None), {}
        with (pages(path) if pages is not None else nullcontext(None)) as shown:
            def progress(done: int, total: int) -> None:
                if deadline is not None:
                    deadline.restart()
                if shown is not None:
                    shown(done, total)

            return loader(path, ocr=self.ocr, progress=progress), {}

    def _transcribe(self, path: Path, transcription: TranscriptionProgress | None,
                    deadline: Deadline | None = None) -> tuple[list[Section], dict[str, Any]]:
        if self.transcriber_factory is None:
            raise NotConfigured("audio ingestion is not configured (no transcriber)")
        from ingestion.audio import audio_duration, iter_audio

        blocks = iter_audio(path)
        first = next(blocks)  # decoding errors surface before Whisper is loaded
        if self._transcriber is None:
            self._transcriber = self.transcriber_factory()
        total = audio_duration(path) or 0.0
        allowed = [0.0]  # seconds of audio the deadline has been extended for

        def allow(seconds: float) -> None:
            # Containers that state no duration: the limit grows as decoding finds more audio.
            if deadline is not None and seconds > allowed[0]:
                deadline.extend(self.recording_factor * (seconds - allowed[0]))
                allowed[0] = seconds

        allow(total)
        blocks = itertools.chain([first], blocks)
        with (transcription(path, total) if transcription is not None else nullcontext(None)) as shown:
            def progress(done: float, known_total: float) -> None:
                allow(max(done, known_total))
                if shown is not None:
                    shown(done, known_total)

            transcript = self._transcriber.transcribe_blocks(blocks, total, progress=progress)
        if not transcript.segments:
            raise LoadError("no speech found in the recording")
        sections = [Section(s.text, start=s.start, end=s.end) for s in transcript.segments]
        return sections, {"language": transcript.language}


def _reporting_reads(sections: Iterable[Section], on_read: Callable[[int], None]
                     ) -> Iterator[Section]:
    for section in sections:
        if section.meta and "read_bytes" in section.meta:
            on_read(section.meta["read_bytes"])
        yield section


def _chunk_extra(meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a chunk keeps of its section's metadata: for OCR, the page's confidence and turn
    (the per-line confidences stay on the `Section`; a chunk does not map onto lines)."""
    if not meta or "ocr" not in meta:
        return {}
    ocr = meta["ocr"]
    return {"ocr": True, "ocr_confidence": ocr.get("confidence"), "ocr_rotation": ocr.get("rotation")}
