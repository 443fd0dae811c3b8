"""`engine = "ray"`: the parts a Ray cluster builds for an ingest, and the run itself.

Why here and not in `ingestion`: the actors build their models from the settings with the
factories of `rag.parts` (the same embedder, chunking, Whisper and OCR as an embedded run, so
the same chunk ids), and `ingestion` must not import `rag`. The functions below are plain
module functions of picklable arguments (`Settings`), so Ray ships them to the workers by name.
Ray itself is imported only by `ingestion.ray_engine`, and that only by `ray_ingest`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from rag import parts
from rag.config import Settings

if TYPE_CHECKING:
    from ingestion.preparation import FilePreparer
    from ingestion.ray_engine import RayConfig


def make_preparer(settings: Settings, audio: bool) -> "FilePreparer":
    """The embedded run's `FilePreparer`, built on a Ray worker: the embedding model's
    tokenizer (not the model) for chunk sizes, OCR as configured, and Whisper for `audio`."""
    from ingestion.chunking import Chunker
    from ingestion.preparation import FilePreparer
    from rag.process import apply_defaults

    apply_defaults()
    s = settings
    chunker = Chunker(parts.default_embedder(s).count_tokens, s.chunk_size, s.chunk_overlap)
    transcriber = functools.partial(parts.default_transcriber, s) if audio else None
    return FilePreparer(chunker, transcriber, ocr=parts.default_ocr(s),
                        recording_factor=s.recording_timeout_factor)


def make_embedder(settings: Settings) -> Any:
    """The embedded run's embedder, loaded on a Ray worker."""
    from rag.process import apply_defaults

    apply_defaults()
    embedder = parts.default_embedder(settings)
    embedder.load_passage_model()  # in the actor's constructor, not on its first batch
    return embedder


def ray_config(settings: Settings) -> "RayConfig":
    from ingestion.ray_engine import RayConfig

    s = settings
    return RayConfig(address=s.ray_address, parsers=s.ray_parsers, transcribers=s.ray_transcribers,
                     encoders=s.ray_encoders, actor_cpus=s.ray_actor_cpus,
                     model_threads=s.ray_model_threads, object_store_mb=s.ray_object_store_mb)


def ray_ingest(index: Any, settings: Settings, paths: Iterable[str | Path], *,
               show_progress: bool = False, on_result: Callable[[Any], None] | None = None,
               prune: bool = False) -> list:
    """`RAG.ingest` on a Ray cluster: this process checks files against the catalog and
    writes every batch (one writer); parsing, transcription and embedding run in actors."""
    from ingestion.pipeline import IngestionPipeline
    from rag.errors import ConfigError

    try:
        from ingestion.ray_engine import RayEngine
    except ImportError as exc:
        raise ConfigError(f"ingest_engine = \"ray\" needs Ray ({exc}): "
                          "pip install 'rag-offline[scale]'") from exc
    s = settings
    engine = RayEngine(ray_config(s), functools.partial(make_preparer, s),
                       functools.partial(make_embedder, s), file_timeout_s=s.file_timeout_s)
    try:
        engine.__enter__()
    except ConnectionError as exc:  # no cluster at the address, or it refused us
        where = s.ray_address or "a private Ray"
        raise ConfigError(f"Ray ({where}): {' '.join(str(exc).split())[:240]}") from exc
    with _exiting(engine):
        pipeline = IngestionPipeline(
            index, engine.embedder, None, max_file_bytes=int(s.max_file_mb * 2**20),
            show_progress=show_progress,
            # one batch is split over the encoders: each gets a batch's worth
            batch_chunks=s.ingest_batch_chunks * max(1, s.ray_encoders),
            read_ahead=max(s.ingest_read_ahead, engine.executor.readers * 2),
            executor=engine.executor, preparer=engine.preparer,
            file_timeout_s=0.0,  # applied on the workers, where the time is spent
        )
        return pipeline.ingest(paths, on_result=on_result, prune=prune)


@contextmanager
def _exiting(engine: Any) -> Iterator[None]:
    """Leave an engine entered by hand (its start gets its own error message above)."""
    try:
        yield
    finally:
        engine.__exit__(None, None, None)
