"""A static (model2vec) embedding model distilled locally from a sentence-transformers model.

Why: it is a real, different embedding model that needs no download (distilled from the
packaged MiniLM in seconds, ~95x faster to embed, 256-d by default; MODELS.md), so it is the
offline "other model" for switching an index (`rag reindex`) and a candidate when comparing
models. Distilling needs the `model2vec[distill]` extra (`pip install -e ".[static]"`); using
a distilled folder does not (sentence-transformers reads it: rag/models/embedder.py).
The folder is cached per source model fingerprint and size, so it is distilled once a machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from rag.errors import ModelFileError
from rag.models.cache import cache_dir
from rag.models.embedding import embedding_fingerprint, resolve_embedding_model


def distilled_static_model(source: str = "packaged", pca_dims: int = 256) -> Path:
    """The model2vec folder distilled from `source` to `pca_dims` dimensions (cached)."""
    resolved = resolve_embedding_model(source)
    tag = embedding_fingerprint(resolved).split(":")[-1][:12]
    target = cache_dir() / f"model2vec-{tag}-{pca_dims}d"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ModelFileError(
            f"distilling a static model needs model2vec: run `pip install -e \".[static]\"` "
            f"(it would be cached in {target})") from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = distill(model_name=resolved, pca_dims=pca_dims)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        model.save_pretrained(str(work))
        if target.exists():  # another process finished first
            return target
        work.rename(target)  # whole folder or nothing: a killed run leaves only the temporary
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def narrowed_static_model(source: Path, dims: int, target: Path) -> Path:
    """A copy of a model2vec folder keeping only its first `dims` dimensions. Its dimensions
    are PCA components in order of variance, so this is the model distilled with `pca_dims=dims`
    (up to the distiller's normalisation), without distilling again; with 2 it is a real but
    useless model (it cannot tell passages apart), which the re-index smoke evaluation refuses."""
    from safetensors.numpy import load_file, save_file

    if (target / "model.safetensors").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(source / "model.safetensors"))
    weights["embeddings"] = weights["embeddings"][:, :dims].copy()
    save_file(weights, str(target / "model.safetensors"))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(source / name, target / name)
    return target
