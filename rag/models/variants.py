"""Lighter variants of a sentence-transformers model: int8 dynamic quantisation and a static
model2vec distillation (MODELS.md measured both on the packaged MiniLM).

- `QuantizedEmbedder`: torch's dynamic int8 quantisation of every `Linear` layer after loading
  (about 3x faster on 2 cores, mean cosine 0.935 to fp32: lossy, so measure recall first).
- `StaticEmbedder`: a model2vec static model (one vector per token, averaged; ~95x faster),
  distilled offline from a local model folder once and cached in the model cache as safetensors.
Both keep the interface of `rag.models.embedder.Embedder`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.errors import ModelFileError
from rag.models.cache import cache_dir
from rag.models.embedder import Embedder
from rag.models.embedding import embedding_fingerprint

MODEL2VEC_INSTALL = "pip install -e '.[models]' (or `make models`)"


class QuantizedEmbedder(Embedder):
    """An `Embedder` whose model runs with int8 dynamic quantisation of its Linear layers.

    `per_channel` gives each output row of a weight its own scale: on MiniLM the mean cosine to
    fp32 rises from 0.922 (one scale per tensor) to 0.977 at the same speed, since a few rows
    with large weights no longer coarsen every other row's steps. `keep_float` holds regular
    expressions; Linear layers whose module name matches one stay in float32.
    """

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 16,
                 per_channel: bool = False, keep_float: Sequence[str] = ()):
        super().__init__(model, device, "float32", batch_size)
        self.per_channel, self.keep_float = per_channel, tuple(keep_float)
        self.dtype = "int8 (dynamic" + (", per channel" if per_channel else "") + (
            ", some layers float32" if self.keep_float else "") + ")"

    @cached_property
    def fingerprint(self) -> str:
        kept = hashlib.sha1("\n".join(self.keep_float).encode()).hexdigest()[:8]
        scope = ("pc" if self.per_channel else "") + (f"-f{kept}" if self.keep_float else "")
        return embedding_fingerprint(self.path) + "+int8" + scope

    @cached_property
    def model(self):
        import torch
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

        base = Embedder.model.func(self)  # the float32 model, loaded as the parent does
        qconfig = per_channel_dynamic_qconfig if self.per_channel else default_dynamic_qconfig
        spec = {name: qconfig for name, module in base.named_modules()
                if isinstance(module, torch.nn.Linear)
                and not any(re.search(pattern, name) for pattern in self.keep_float)}
        return torch.quantization.quantize_dynamic(base, spec, dtype=torch.qint8)


def distilled_folder(source: str, pca_dims: int = 256) -> Path:
    """The model2vec static model distilled from the local model folder `source` (done once
    per machine and model, ~15 s; cached under the model cache keyed by the source's fingerprint)."""
    # The same folder name as the reindex branch's rag/models/static.py, so one distillation
    # serves both.
    fingerprint = embedding_fingerprint(source).split(":")[-1][:12]
    folder = cache_dir() / f"model2vec-{fingerprint}-{pca_dims}d"
    if (folder / "model.safetensors").is_file():
        return folder
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ModelFileError(f"model2vec is not installed ({exc.name}); {MODEL2VEC_INSTALL}"
                             ) from None
    model = distill(model_name=source, pca_dims=pca_dims)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(str(tmp))
    if folder.exists():  # another process finished the same distillation first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(folder)
    return folder


class StaticEmbedder:
    """A model2vec static model; `source` is the folder it was distilled from (or is)."""

    def __init__(self, name: str, folder: str | Path, batch_size: int = 1024):
        self.name = name
        self.path = str(folder)
        self.batch_size = batch_size
        self.dtype = "float32 (static)"
        self.max_tokens = 512
        self._lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        return embedding_fingerprint(self.path)

    @cached_property
    def model(self):
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise ModelFileError(f"model2vec is not installed ({exc.name}); {MODEL2VEC_INSTALL}"
                                 ) from None
        return StaticModel.from_pretrained(self.path)

    @cached_property
    def dimension(self) -> int:
        return int(self.model.dim)

    @cached_property
    def _counter(self):
        from rag.models.onnx_embedder import counting_tokenizer

        return counting_tokenizer(self.path)

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False))

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start:start + self.batch_size])
                out.append(np.asarray(self.model.encode(batch, max_length=self.max_tokens),
                                      dtype=np.float32))
                if progress:
                    progress(len(batch))
        vectors = np.concatenate(out)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
