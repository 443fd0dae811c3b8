"""A faster copy of the packaged answer model: its feed-forward up/gate matrices in Q4_0.

Why: the packaged "Q4_K_M" GGUF of Qwen2.5-0.5B holds most of its matrices in Q5_0, because
rows of 896 values do not split into K-quant blocks of 256. llama.cpp's CPU backend repacks
Q4_0 weights into interleaved blocks with fast AVX2/AVX-512 kernels and has no such kernels for
Q5_0. The feed-forward up and gate matrices are ~60% of the model's arithmetic; in Q4_0 the
first token of a Paul Graham question came after 1.99 s instead of 2.93 s (p50, 2-core Intel
VM), at token F1 0.337 against 0.346 (README "A faster answer model"). So this is an opt-in
(`llm_weights = ffn-q4_0`, the `fast` preset), not the default.

How: gguf-py (ggml-org's own GGUF reader/writer) dequantises the 48 chosen tensors; every
other tensor and every metadata key is copied as it is. The Q4_0 blocks are written by
`quantize_q4_0` here rather than gguf-py's reference quantiser, which scales each block of 32 by
its largest value: searching 41 scales per block for the least squared error cut the error by
19% (an ffn_up matrix) and took back half of what the reference lost on Paul Graham (token
F1 0.325 -> 0.337, declines 3 -> 2 of 55; shipped 0.346 and 2), though not on ARAGOG (0.259
and 4 of 98 declined, shipped 0.277 and 2). Once per machine, into the
model cache (~1.5 min on 2 cores): written to a temporary file, renamed into place, and a
sidecar (written last) records the source's hash, the versions and the result's size, so a
half-written or stale copy is made again.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.errors import ModelFileError
from rag.models.cache import cache_dir, remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

FFN_UP_GATE = re.compile(r"\.ffn_(up|gate)\.weight$")
Q4_0_BLOCK = 32  # values per Q4_0 block
Q4_0_BYTES = 18  # bytes per Q4_0 block (an fp16 scale and 32 4-bit values)
FORMAT = 2  # 1: gguf-py's reference Q4_0 scales
SCALE_FACTORS = np.linspace(0.70, 1.10, 41, dtype=np.float32)  # x the reference scale


def ffn_q4_0(source: Path, source_sha256: str, out_dir: Path | None = None) -> Path:
    """The copy of `source` with its feed-forward up/gate matrices in Q4_0, made on first use.

    Raises ModelFileError (with the install step) when gguf-py is missing or the copy fails."""
    target = (out_dir or cache_dir()) / f"{source.stem}-ffn-q4_0.gguf"
    sidecar = target.with_name(target.name + ".json")
    stamp = {"format": FORMAT, "source_sha256": source_sha256, "gguf": _gguf_version()}
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        recorded = {}
    if (target.is_file() and {k: recorded.get(k) for k in stamp} == stamp
            and target.stat().st_size == recorded.get("size")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    remove_stale_temporaries(target)  # ~430 MB each, left by a conversion killed mid-write
    started = time.monotonic()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    try:
        converted = requantize(source, Path(temporary), FFN_UP_GATE)
        os.replace(temporary, target)
    except Exception as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{source}: could not make its Q4_0 copy ({type(exc).__name__}: "
                             f"{exc}); set llm_weights = shipped") from exc
    write_json_atomic(sidecar, {**stamp, "size": target.stat().st_size,
                                "tensors_converted": converted})
    log.info("made %s (%d tensors in Q4_0) in %.0f s", target, converted,
             time.monotonic() - started)
    return target


def requantize(source: Path, target: Path, pattern: re.Pattern[str]) -> int:
    """Write `target`: `source` with the float-convertible tensors whose names match `pattern`
    in Q4_0 and all else copied; returns how many tensors were converted."""
    try:
        import gguf
        from gguf.quants import dequantize
    except ImportError as exc:
        raise ModelFileError("llm_weights = ffn-q4_0 needs gguf-py: pip install gguf==0.19.0 "
                             "(or set llm_weights = shipped)") from exc

    q4_0 = gguf.GGMLQuantizationType.Q4_0
    plain = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    reader = gguf.GGUFReader(source)
    architecture = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(target, arch=architecture, endianess=reader.endianess)
    for field in reader.fields.values():
        # the architecture and the GGUF.* header fields are the writer's own
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        item = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=item)
    chosen = []
    for tensor in reader.tensors:
        row = int(tensor.shape[0])  # values in a row (GGUF lists the fastest-varying first)
        convert = (bool(pattern.search(tensor.name)) and tensor.tensor_type not in plain
                   and tensor.tensor_type != q4_0 and row % Q4_0_BLOCK == 0)
        chosen.append(convert)
        if convert:
            outer = [int(n) for n in reversed(tensor.shape[1:])]
            byte_shape = (*outer, row // Q4_0_BLOCK * Q4_0_BYTES)
            writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8),
                                   int(np.prod(byte_shape)), q4_0)
        else:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                                   tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor, convert in zip(reader.tensors, chosen):
        data = quantize_q4_0(dequantize(tensor.data, tensor.tensor_type)) if convert else tensor.data
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    return sum(chosen)


def quantize_q4_0(values: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of `values` (..., n; n a multiple of 32), in ggml's layout (an fp16 scale,
    then 16 bytes: values 0-15 in the low nibbles, 16-31 in the high ones), each block's scale
    the one of `SCALE_FACTORS` x (largest value / -8) with the least squared error."""
    blocks = values.reshape(-1, Q4_0_BLOCK).astype(np.float32)
    largest = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=-1)[:, None], axis=-1)
    best_error = np.full((len(blocks), 1), np.inf, dtype=np.float32)
    best_scale = np.zeros_like(largest)
    for factor in SCALE_FACTORS:
        scale = (largest / -8 * factor).astype(np.float16).astype(np.float32)  # as stored
        codes = _codes(blocks, scale)
        error = np.square(blocks - codes * scale).sum(axis=-1, keepdims=True)
        better = error < best_error
        best_error = np.where(better, error, best_error)
        best_scale = np.where(better, scale, best_scale)
    nibbles = (_codes(blocks, best_scale) + 8).astype(np.uint8).reshape(-1, 2, Q4_0_BLOCK // 2)
    packed = nibbles[:, 0, :] | (nibbles[:, 1, :] << np.uint8(4))
    out = np.concatenate([best_scale.astype(np.float16).view(np.uint8), packed], axis=-1)
    return out.reshape(*values.shape[:-1], values.shape[-1] // Q4_0_BLOCK * Q4_0_BYTES)


def _codes(blocks: np.ndarray, scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(scale == 0, 0, 1 / scale)
    return np.clip(np.rint(blocks * inverse), -8, 7)


def _gguf_version() -> str | None:
    try:
        return importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        return None
