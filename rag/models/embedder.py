"""Sentence embeddings with sentence-transformers, in bfloat16 where the CPU supports it.

MODELS.md measured bfloat16 at 2.3-2.5x the float32 speed on CPUs with avx512_bf16/AMX, with
a mean cosine of 0.99998 to float32 vectors; elsewhere float32 is used. Batch 16 was fastest.

Queries are embedded by an ONNX float32 export of the same model where one can be made
(rag/models/onnx_export.py), so a process that only retrieves and answers never imports torch
(~550 MB less resident memory). Passages (ingest) run on torch in its dtype, on the same export
("onnx": an ingest without torch, for machines where memory is short), or on an int8 copy of it
("onnx-int8", rag/models/onnx_int8.py; queries stay float32). "auto" picks per CPU at run time:
torch where the CPU has AVX-512 (bfloat16, or float32 AVX-512 kernels, which beat onnxruntime's
on the Intel VM measured), the int8 copy on a CPU with AVX2 and no AVX-512 or VNNI, one text per
onnxruntime call: there it ingests 2.1x torch float32 and kept every dev set's Recall@10 (README
"Embedding on AVX2-only CPUs", rules 43 and 44). Batched, int8 vectors had depended on the texts
sharing a call and one batching lost a question (rule 24); one text per call each vector is its
own text's. VNNI int8 kernels round otherwise and lost a question (rule 22), so an AVX2 CPU with
AVX-VNNI takes the float32 export (the same vectors as torch float32).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from rag.errors import ModelFileError
from rag.models.cpu import cpu_flags, cpu_has_bf16
from rag.models.embedding import embedding_fingerprint, is_static_folder, resolve_embedding_model

logger = logging.getLogger(__name__)
QUERY_BACKENDS = ("auto", "onnx", "torch")
PASSAGE_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# Texts per forward pass when none is asked for. Torch: 16 was fastest (MODELS.md). The ONNX
# paths take 1: one text per call, one call per core at once (`OnnxEmbedder`), which embedded
# 1.59x torch float32 on the float32 export under the AVX2 mask against 1.45x in batches of 8
# (2-core Intel VM, 2026-12-06, README rule 43), with no padding and one text's activations
# per core in memory (batches of 8 had been chosen over 16 for memory: 302 against 442 MB).
DEFAULT_BATCH = {"torch": 16, "onnx": 1, "onnx-int8": 1}

if TYPE_CHECKING:
    from rag.config import Settings


def choose_dtype(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


def choose_passage_backend(requested: str, device: str,
                            flags: frozenset[str] | None = None) -> tuple[str, str]:
    """(backend, why) for passages: `requested` unless it is "auto", which picks per CPU (`flags`
    defaults to this CPU's, from /proc/cpuinfo). An unknown CPU keeps torch, the long-standing
    path; an export is taken only where it was measured faster."""
    if requested != "auto":
        return requested, f"embedding_passage_backend = {requested}"
    if not device.startswith("cpu"):
        return "torch", f"auto: {device} embeds passages"
    flags = cpu_flags() if flags is None else flags
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "torch", "auto: this CPU has bfloat16, torch's fastest path"
    if "avx512f" in flags:
        return "torch", "auto: AVX-512 without bfloat16, where torch float32 beat onnxruntime"
    if "avx2" in flags and "avx_vnni" in flags:
        # VNNI int8 kernels round otherwise than AVX2's: on AVX-512 VNNI they lost a Paul Graham
        # question from the top 10 (rule 22), so only the float32 export is sure here.
        return "onnx", ("auto: AVX2 with AVX-VNNI, no AVX-512: the float32 export (torch "
                        "float32's vectors); int8 with VNNI kernels lost recall")
    if "avx2" in flags:
        return "onnx-int8", ("auto: AVX2 without AVX-512, where int8 passages one text per call "
                             "(queries float32) ingested 2.1x torch float32 with every dev set's "
                             "Recall@10 kept (README rules 43 and 44)")
    return "torch", "auto: CPU extensions unknown"


def encode_longest_first(texts: Sequence[str], batch_size: int,
                         embed: Callable[[list[str]], np.ndarray],
                         progress: Callable[[int], None] | None = None) -> np.ndarray:
    """`embed` over batches of `texts`, longest first, as sentence-transformers does inside one
    call (batches of similar length waste less padding); rows come back in the caller's order.
    `progress(n_done)` after each batch. `texts` must not be empty."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = []
    for start in range(0, len(order), batch_size):
        batch = [texts[i] for i in order[start:start + batch_size]]
        out.append(np.asarray(embed(batch), dtype=np.float32))
        if progress:
            progress(len(batch))
    vectors = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(out)
    return vectors


class Embedder:
    """Loads the model once and turns texts into L2-normalised float32 vectors."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "auto",
                 batch_size: int | None = None, query_backend: str = "auto",
                 passage_backend: str = "auto"):
        if query_backend not in QUERY_BACKENDS:
            raise ValueError(f"query_backend must be one of {QUERY_BACKENDS}, not {query_backend!r}")
        if passage_backend not in PASSAGE_BACKENDS:
            raise ValueError(f"passage_backend must be one of {PASSAGE_BACKENDS}, "
                             f"not {passage_backend!r}")
        self.name = model
        self.path = resolve_embedding_model(model)
        self.device = device
        self.dtype = choose_dtype(dtype, device)
        self.query_backend = query_backend
        self._passage_asked = passage_backend
        # (backend, why) as asked or as "auto" picks for this CPU; the export is looked at later
        self._passage_choice = choose_passage_backend(passage_backend, device)
        self._batch_size_asked = batch_size
        self._lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        return embedding_fingerprint(self.path)

    @cached_property
    def model(self):
        from rag.process import apply_defaults

        apply_defaults()  # before torch loads (an Embedder may be used without a RAG)
        if Path(self.path).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if is_static_folder(self.path):
            # A model2vec folder (token vectors + tokenizer): sentence-transformers' StaticEmbedding
            # reads it as saved, so the model2vec package is not needed to use one.
            from sentence_transformers.sentence_transformer.modules import StaticEmbedding

            return SentenceTransformer(modules=[StaticEmbedding.load(self.path)], device=self.device)
        kwargs = {}
        if self.dtype in ("bfloat16", "float16"):
            kwargs["model_kwargs"] = {"torch_dtype": getattr(torch, self.dtype)}
        return SentenceTransformer(self.path, device=self.device, **kwargs)

    @cached_property
    def dimension(self) -> int:
        if (export := self._export_meta) is not None:
            return int(export["dimension"])  # known without loading torch
        getter = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension"
        )
        return int(getter())

    @cached_property
    def max_tokens(self) -> int | None:
        """The most tokens the model reads of a text; None when it reads all (a static model)."""
        if (export := self._export_meta) is not None:
            return int(export["max_seq_length"])
        limit = self.model.max_seq_length
        return None if limit is None or limit == float("inf") else int(limit)

    @cached_property
    def tokenizer(self):
        """The model's fast tokenizer, for counting tokens when chunking (no torch needed)."""
        from tokenizers import Tokenizer

        file = Path(self.path) / "tokenizer.json"
        tokenizer = Tokenizer.from_file(str(file)) if file.is_file() else Tokenizer.from_pretrained(self.path)
        # The shipped tokenizer.json pads to 128 tokens, which would make every count >= 128.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer

    def count_tokens(self, text: str) -> int:
        # len() of the Encoding, not of `.ids`: building the Python list of ids made chunking
        # 2.6x slower (2.64 s vs 1.02 s for 1052 chunks of Paul Graham essays).
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Vectors for `texts` (n x dim, float32, unit length); `progress(n_done)` after each batch."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if (onnx := self._onnx_passages) is not None:
            return onnx.encode(texts, progress)
        with self._lock:
            return encode_longest_first(texts, self.batch_size, lambda batch: self.model.encode(
                batch, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False), progress)

    def load_passage_model(self) -> None:
        """Load what embeds passages now (a worker does it before its first batch)."""
        if (onnx := self._onnx_passages) is not None:
            onnx.passage_session
        else:
            self.model

    @property
    def passage_runtime(self) -> str:
        """What embeds passages and why, in words (for `rag config`)."""
        if (onnx := self._onnx_passages) is not None:
            int8 = self.passage_backend == "onnx-int8"
            kind = "int8, per-channel weights" if int8 else "float32"
            if onnx.batch_size == 1:
                calls = f"one text per call, {onnx.calls_at_once} calls at once"
            else:
                calls = f"{onnx.batch_size} texts per call" + (
                    ": int8 vectors vary with the texts embedded beside them (README rule 24)"
                    if int8 else "")
            return f"onnxruntime {kind} ({onnx.path}; {self.passage_backend_reason}; {calls})"
        runtime = f"torch {self.dtype} ({self.passage_backend_reason})"
        if self._may_embed_small_ingests_on_export():
            runtime += ("; an ingest whose chunks fit in one batch: onnxruntime float32, the "
                        "export queries use (no torch to load)")
        return runtime

    def small_ingest_encoder(self):
        """What embeds an ingest small enough to be one batch: the float32 export (torch float32's
        vectors to 1e-5) where `auto` chose torch and the model has an export, else None (the
        passage path as usual). Why: loading torch and sentence-transformers takes ~6 s on 2
        cores, longer than the export takes for a batch of 256 chunks, so a one-note `rag
        ingest` or a watched folder's edit waited for imports (7.1 s -> 2.4 s here). The choice
        depends only on what is ingested, never on what this process loaded before."""
        if not self._may_embed_small_ingests_on_export():
            return None
        return self._onnx_encoder

    def _may_embed_small_ingests_on_export(self) -> bool:
        """`auto` settled on torch (torch by name keeps every vector on it), on the CPU, and the
        model has an export (none where `auto` wanted one for passages and found none)."""
        return (self._passage_asked == "auto" and self.passage_backend == "torch"
                and self.device.startswith("cpu") and self._export_meta is not None)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's vector: from the ONNX float32 export when there is one (no torch in a
        process that only asks), else from the torch model."""
        if (onnx := self._query_encoder) is not None:
            return onnx.encode_query(text)
        return self.encode([text])[0]

    @property
    def query_runtime(self) -> str:
        """What embeds queries, in words (for `rag config` and logs)."""
        if self._query_encoder is not None:
            return f"onnxruntime float32 ({self._query_encoder.path})"
        reason = f": {self.query_backend_reason}" if self.query_backend_reason else ""
        return f"torch {self.dtype}{reason}"

    @property
    def passage_backend(self) -> str:
        """"torch", "onnx" or "onnx-int8": what embeds passages, once "auto" and a missing export
        are settled."""
        return self._passages.backend

    @property
    def passage_backend_reason(self) -> str:
        return self._passages.reason

    @property
    def batch_size(self) -> int:
        """Texts per forward pass of the passage path."""
        return self._passages.batch_size

    @property
    def query_backend_reason(self) -> str:
        """Why queries run on torch, when they do ("" when they run on the export)."""
        if self.query_backend == "torch":
            return "embedding_query_backend = torch"
        return self._export[1]

    @cached_property
    def _export(self) -> tuple[dict | None, str]:
        """(the sidecar of this model's finished ONNX export, or None; why there is none)."""
        if self.query_backend == "torch" and not self._passage_choice[0].startswith("onnx"):
            return None, ""  # nothing runs on the export
        if not self.device.startswith("cpu") or is_static_folder(self.path):
            reason = "only a transformer model on the CPU is exported"
        else:
            from rag.models.onnx_export import NotExportable, cached_export, export

            if (found := cached_export(self.fingerprint)) is not None:
                return found[1], ""
            try:
                return export(self.path, self.fingerprint)[1], ""
            except NotExportable as exc:
                reason = str(exc)
            except Exception as exc:  # an exporter failure must not stop queries: torch serves them
                reason = f"ONNX export failed: {type(exc).__name__}: {exc}"
        if self.query_backend == "onnx":
            raise ModelFileError(f"{self.path}: no ONNX query model ({reason}); "
                                 "set embedding_query_backend = auto or torch")
        logger.info("queries are embedded with torch: %s", reason)
        return None, reason

    @property
    def _export_meta(self) -> dict | None:
        return self._export[0]

    @cached_property
    def _passages(self) -> "_PassagePlan":
        """What embeds passages, settled once: the chosen export when present; when "auto" chose
        one this model lacks, the next one down (int8 copy, float32 export, torch); an error when
        the missing one was asked for by name."""
        backend, reason = self._passage_choice
        encoder = None
        while backend in _ONNX_FALLBACK:
            needs, fallen_back, instead, settings = _ONNX_FALLBACK[backend]
            encoder, why_not = self._int8_encoder if backend == "onnx-int8" else (
                self._onnx_encoder, self._export[1])
            if encoder is not None:
                break
            if self._passage_asked != "auto":
                raise ModelFileError(f"{self.path}: embedding_passage_backend = {backend} needs "
                                     f"{needs} ({why_not}); set embedding_passage_backend = "
                                     f"{settings}")
            backend, reason = instead, fallen_back.format(why_not)
        return _PassagePlan(backend, reason, self._batch_for(backend), encoder)

    def _batch_for(self, backend: str) -> int:
        """Texts per forward pass on `backend`: the asked size, else that backend's default."""
        return self._batch_size_asked or DEFAULT_BATCH[backend]

    @cached_property
    def _int8_encoder(self):
        """(the OnnxEmbedder over the int8 copy of the export, or None; why there is none)."""
        if (meta := self._export_meta) is None:
            return None, self._export[1] or "no ONNX export"
        from rag.models.onnx_export import NotExportable, export_folder
        from rag.models.onnx_int8 import make_int8

        try:
            folder = make_int8(export_folder(self.fingerprint), meta, self.fingerprint, self.path)
        except NotExportable as exc:
            return None, str(exc)
        return self._onnx_over(folder, meta, "onnx-int8", "int8 (onnx, per-channel weights)"), ""

    @property
    def _onnx_passages(self):
        """The export's embedder when passages run on it, else None (torch embeds them)."""
        return self._passages.onnx

    @cached_property
    def _query_encoder(self):
        return None if self.query_backend == "torch" else self._onnx_encoder

    @cached_property
    def _onnx_encoder(self):
        """The OnnxEmbedder over this model's float32 export (queries and, if asked, passages)."""
        if (meta := self._export_meta) is None:
            return None
        from rag.models.onnx_export import export_folder

        return self._onnx_over(export_folder(self.fingerprint), meta, self._passage_choice[0],
                               "float32 (onnx)")

    def _onnx_over(self, folder, meta: dict, backend: str, dtype: str):
        """An OnnxEmbedder over `folder`, shaped as the export's sidecar `meta` says, batched as
        `backend` is."""
        from rag.models.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(self.name, folder, pooling=meta["pooling"],
                            max_tokens=meta["max_seq_length"], batch_size=self._batch_for(backend),
                            dtype=dtype)


# Each ONNX passage backend: (what it needs, in words; the reason "auto" gives when it falls
# back, "{}" the cause; what "auto" falls back to; what to set instead when it was asked by name).
_ONNX_FALLBACK = {
    "onnx-int8": ("an int8 copy of the model's ONNX export",
                  "auto: no int8 copy ({}), the float32 export", "onnx", "onnx or torch"),
    "onnx": ("an ONNX export of the model", "auto: no ONNX export ({})", "torch", "torch"),
}


@dataclass(frozen=True)
class _PassagePlan:
    """What embeds passages: `onnx` is the export's embedder, or None when torch does."""
    backend: str
    reason: str
    batch_size: int
    onnx: object | None


def embedder_for(model: str, settings: "Settings | None" = None) -> Embedder:
    """The embedder for a model name or path ("packaged", a sentence-transformers or model2vec
    folder, a hub id), run as the settings say (device, dtype, batch size). One function for
    every place that turns a name into a model: the index's own, `rag reindex`, comparisons."""
    if settings is None:
        return Embedder(model)
    s = settings
    return Embedder(model, s.embedding_device, s.embedding_dtype, s.embedding_batch_size or None,
                    s.embedding_query_backend, s.embedding_passage_backend)
