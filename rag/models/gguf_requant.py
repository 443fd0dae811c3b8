"""Faster copies of the packaged answer model, made once per machine in the model cache.

Why: the packaged "Q4_K_M" GGUF of Qwen2.5-0.5B holds most of its matrices in Q5_0, because
rows of 896 values do not split into K-quant blocks of 256. llama.cpp's CPU backend reads Q5_0
more slowly than Q8_0 (llamafile's tinyBLAS) or Q4_0 (repacked into interleaved blocks with
fast AVX2/AVX-512 kernels, as are IQ4_NL ones). Three copies (`llm_weights`):
- `q8_0`: every Q5_0 matrix of the layers rewritten as Q8_0 with the same scale
  and the same integers (a Q5_0 value is scale x (q - 16), q < 32, and Q8_0 holds scale x any
  int8): the very same numbers, read faster. On a 2-core Intel VM a Paul Graham question's
  first token came 7-11% sooner, with all 18 answers of a probe identical to the shipped
  file's (README "A faster answer model"). Token embeddings stay Q5_0: they are looked up, not
  multiplied. ~20 s, +123 MB in the cache.
- `ffn-iq4_nl` (the default): as `q8_0`, and the feed-forward up/gate matrices in IQ4_NL
  (`quantize_iq4_nl`): Paul Graham first token 2.85 -> 2.16 s p50 on that VM, token F1
  +0.004 / +0.016 / -0.010 on Paul Graham / Solana / ARAGOG, the same declines. ~54 s.
- `ffn-q4_0` (the `fast` preset): also the feed-forward up/gate matrices (~60% of the
  arithmetic) in Q4_0: the first token 1.5x sooner on that VM, at token F1 0.337 against 0.346
  on Paul Graham and 0.259 against 0.277 on ARAGOG (0.566 against 0.539 on Solana), so opt-in.
  Its blocks are written by `quantize_q4_0` here rather than gguf-py's reference quantiser,
  which scales each block of 32 by its largest value: searching 41 scales per block for the
  least squared error cut the error by 19% (an ffn_up matrix) and took back half of what the
  reference lost on Paul Graham (F1 0.325 -> 0.337). ~1.5 min on 2 cores.

How: gguf-py (ggml-org's own GGUF reader/writer) reads the shipped file; the chosen tensors are
converted and every other tensor and metadata key is copied as it is. The copy is written to a
temporary file and renamed into place, and a sidecar (written last) records the source's hash,
the versions and the result's size, so a half-written or stale copy is made again.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.errors import ModelFileError
from rag.models.cache import cache_dir, remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

FFN_UP_GATE = re.compile(r"\.ffn_(up|gate)\.weight$")
LAYER = re.compile(r"^blk\.")  # the layers' tensors (not the token embeddings, only looked up)
BLOCK = 32  # values per Q4_0, Q5_0 and Q8_0 block
Q4_0_BYTES = 18  # bytes per Q4_0 block (an fp16 scale and 32 4-bit values)
Q5_0_BYTES = 22  # an fp16 scale, 32 high bits, 32 low nibbles
Q8_0_BYTES = 34  # an fp16 scale and 32 int8 values
# llm_weights -> (file suffix, format version of the conversion); 1 of ffn-q4_0 used gguf-py's
# reference Q4_0 scales.
WEIGHTS = {"q8_0": ("q8_0", 1), "ffn-q4_0": ("ffn-q4_0", 2), "ffn-iq4_nl": ("ffn-iq4_nl", 1)}
IQ4_NL_BYTES = 18  # an fp16 scale and 32 4-bit indices into IQ4_NL_VALUES
IQ4_NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                         dtype=np.float32)  # ggml's kvalues_iq4nl
IQ4_NL_STEPS = np.arange(-10, 11)  # candidate scales: the block's largest value maps to -127 +- 10
_GRID = 8  # the nearest-value table's bins per unit; every midpoint of IQ4_NL_VALUES is a bin edge
_NEAREST = np.searchsorted((IQ4_NL_VALUES[1:] + IQ4_NL_VALUES[:-1]) / 2,
                           (np.arange(-160 * _GRID, 160 * _GRID) - 0.5) / _GRID).astype(np.uint8)
_NEAREST_VALUE = IQ4_NL_VALUES[_NEAREST]
SCALE_FACTORS = np.linspace(0.70, 1.10, 41, dtype=np.float32)  # x the reference scale
_SLICE = 4096  # blocks per slice of the IQ4_NL search: 512 KB of float32, stays in cache


def converted(source: Path, source_sha256: str, weights: str, out_dir: Path | None = None) -> Path:
    """The copy of `source` that `weights` (a key of WEIGHTS) names, made on first use; `source`
    itself when the conversion would change no tensor (e.g. a GGUF without Q5_0 matrices).

    Raises ModelFileError (with the install step) when gguf-py is missing or the copy fails."""
    if weights not in WEIGHTS:
        raise ValueError(f"llm_weights must be shipped or one of {sorted(WEIGHTS)}, "
                         f"not {weights!r}")
    suffix, version = WEIGHTS[weights]
    target = (out_dir or cache_dir()) / f"{source.stem}-{suffix}.gguf"
    sidecar = target.with_name(target.name + ".json")
    stamp = {"format": version, "source_sha256": source_sha256, "gguf": _gguf_version()}
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        recorded = {}
    if {k: recorded.get(k) for k in stamp} == stamp:
        if recorded.get("tensors_converted") == 0:
            return source
        if target.is_file() and target.stat().st_size == recorded.get("size"):
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    remove_stale_temporaries(target)  # up to ~600 MB each, left by a conversion killed mid-write
    started = time.monotonic()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    try:
        count = requantize(source, Path(temporary), _plan(weights))
        if count:
            os.replace(temporary, target)
        else:
            Path(temporary).unlink()
    except Exception as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{source}: could not make its {weights} copy ({type(exc).__name__}: "
                             f"{exc}); set llm_weights = shipped") from exc
    size = target.stat().st_size if count else 0
    write_json_atomic(sidecar, {**stamp, "size": size, "tensors_converted": count})
    log.info("%s: %d tensors converted for llm_weights = %s in %.0f s", target, count, weights,
             time.monotonic() - started)
    return target if count else source


def _plan(weights: str):
    """tensor -> the type it becomes under `weights`, or None to copy it."""
    import gguf

    types = gguf.GGMLQuantizationType

    def plan(tensor):
        row = int(tensor.shape[0])  # values in a row (GGUF lists the fastest-varying first)
        if row % BLOCK or not LAYER.search(tensor.name):
            return None
        if (weights == "ffn-q4_0" and FFN_UP_GATE.search(tensor.name)
                and tensor.tensor_type not in (types.F32, types.F16, types.Q4_0)):
            return types.Q4_0
        if (weights == "ffn-iq4_nl" and FFN_UP_GATE.search(tensor.name)
                and tensor.tensor_type not in (types.F32, types.F16)):
            return types.IQ4_NL
        if weights in ("q8_0", "ffn-iq4_nl") and tensor.tensor_type == types.Q5_0:
            return types.Q8_0
        return None

    return plan


def requantize(source: Path, target: Path, plan) -> int:
    """Write `target`: `source` with each tensor for which `plan(tensor)` names a type (Q4_0,
    Q8_0 or IQ4_NL) converted to it and all else copied; returns how many tensors were converted."""
    try:
        import gguf
        from gguf.quants import dequantize
    except ImportError as exc:
        raise ModelFileError("llm_weights other than shipped needs gguf-py: pip install "
                             "gguf==0.19.0 (or set llm_weights = shipped)") from exc

    types = gguf.GGMLQuantizationType
    block_bytes = {types.Q4_0: Q4_0_BYTES, types.Q8_0: Q8_0_BYTES, types.IQ4_NL: IQ4_NL_BYTES}
    reader = gguf.GGUFReader(source)
    planned = [plan(tensor) for tensor in reader.tensors]
    if not any(planned):
        return 0
    architecture = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(target, arch=architecture, endianess=reader.endianess)
    for field in reader.fields.values():
        # the architecture and the GGUF.* header fields are the writer's own
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        item = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=item)
    for tensor, kind in zip(reader.tensors, planned):
        if kind is None:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                                   tensor.data.nbytes, tensor.tensor_type)
            continue
        outer = [int(n) for n in reversed(tensor.shape[1:])]
        byte_shape = (*outer, int(tensor.shape[0]) // BLOCK * block_bytes[kind])
        writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8),
                               int(np.prod(byte_shape)), kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor, kind in zip(reader.tensors, planned):
        if kind is None:
            data = tensor.data
        elif kind == types.Q8_0 and tensor.tensor_type == types.Q5_0:
            data = q5_0_as_q8_0(np.asarray(tensor.data))
        elif kind == types.IQ4_NL:
            data = quantize_iq4_nl(dequantize(tensor.data, tensor.tensor_type))
        else:
            data = quantize_q4_0(dequantize(tensor.data, tensor.tensor_type))
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    return sum(kind is not None for kind in planned)


def q5_0_as_q8_0(raw: np.ndarray) -> np.ndarray:
    """Q5_0 blocks (..., n x 22 bytes) as Q8_0 blocks of the same numbers: the same fp16 scale,
    and each 5-bit code q (low nibble + one bit of the 32-bit high mask) as the int8 q - 16."""
    blocks = raw.reshape(-1, Q5_0_BYTES)
    high = np.unpackbits(blocks[:, 2:6], axis=1, bitorder="little")  # bit j: value j's 5th bit
    nibbles = blocks[:, 6:]
    low = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1)  # values 0-15, then 16-31
    codes = (low | (high << 4)).astype(np.int16) - 16
    out = np.concatenate([blocks[:, :2], codes.astype(np.int8).view(np.uint8)], axis=1)
    return out.reshape(*raw.shape[:-1], raw.shape[-1] // Q5_0_BYTES * Q8_0_BYTES)


def quantize_q4_0(values: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of `values` (..., n; n a multiple of 32), in ggml's layout (an fp16 scale,
    then 16 bytes: values 0-15 in the low nibbles, 16-31 in the high ones), each block's scale
    the one of `SCALE_FACTORS` x (largest value / -8) with the least squared error."""
    blocks = values.reshape(-1, BLOCK).astype(np.float32)
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
    out = _pack_blocks(best_scale, (_codes(blocks, best_scale) + 8).astype(np.uint8))
    return out.reshape(*values.shape[:-1], values.shape[-1] // BLOCK * Q4_0_BYTES)


def quantize_iq4_nl(values: np.ndarray) -> np.ndarray:
    """IQ4_NL blocks of `values` (..., n; n a multiple of 32), in ggml's layout (an fp16 scale,
    then 16 bytes of 4-bit indices into IQ4_NL_VALUES laid out as Q4_0's nibbles). For each of
    21 trial scales every value takes its nearest table entry, the scale is refitted by least
    squares to those entries, and the block keeps the trial with the least squared error (as
    llama.cpp's quantiser does, unweighted and with more trials). Slices of blocks small enough
    to stay in cache go to one thread per core (numpy releases the GIL): ~3x faster."""
    blocks = values.reshape(-1, BLOCK).astype(np.float32)
    slices = [blocks[start:start + _SLICE] for start in range(0, len(blocks), _SLICE)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        out = np.concatenate(list(pool.map(_iq4_nl_blocks, slices)))
    return out.reshape(*values.shape[:-1], values.shape[-1] // BLOCK * IQ4_NL_BYTES)


def _iq4_nl_blocks(blocks: np.ndarray) -> np.ndarray:
    largest = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=-1)[:, None], axis=-1)
    safe = np.where(largest == 0, 1, largest)
    best_error = np.full((len(blocks), 1), np.inf, dtype=np.float32)
    best_scale = np.zeros_like(largest)
    best_bin = np.zeros(blocks.shape, dtype=np.intp)
    ones = np.ones((BLOCK, 1), dtype=np.float32)
    work = np.empty_like(blocks)
    scaled = np.empty(blocks.shape, dtype=np.float64)  # float64, as the evaluated copy was made
    for step in IQ4_NL_STEPS:
        np.multiply(blocks, (IQ4_NL_VALUES[0] + step) / safe, out=scaled)
        scaled *= _GRID
        np.ceil(scaled, out=scaled)
        scaled += 160 * _GRID
        bins = scaled.astype(np.intp)
        chosen = _NEAREST_VALUE[bins]
        dot = np.multiply(chosen, blocks, out=work).sum(axis=-1, keepdims=True)
        norm = np.square(chosen) @ ones  # integers below 2**24: exact in any order
        scale = np.where(norm > 0, dot / np.where(norm > 0, norm, 1), 0)
        scale = scale.astype(np.float16).astype(np.float32)  # as stored
        np.multiply(chosen, scale, out=work)
        np.subtract(blocks, work, out=work)
        error = np.square(work, out=work).sum(axis=-1, keepdims=True)
        better = error < best_error
        np.copyto(best_error, error, where=better)
        np.copyto(best_scale, scale, where=better)
        np.copyto(best_bin, bins, where=better)
    return _pack_blocks(best_scale, _NEAREST[best_bin])


def _pack_blocks(scale: np.ndarray, nibbles: np.ndarray) -> np.ndarray:
    """Blocks of 18 bytes in the layout Q4_0 and IQ4_NL share: the fp16 `scale` (n, 1), then the
    32 4-bit `nibbles` (n, 32) of a block, values 0-15 in the low nibbles and 16-31 in the high."""
    halves = nibbles.reshape(-1, 2, BLOCK // 2)
    packed = halves[:, 0, :] | (halves[:, 1, :] << np.uint8(4))
    return np.concatenate([scale.astype(np.float16).view(np.uint8), packed], axis=-1)


def _codes(blocks: np.ndarray, scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(scale == 0, 0, 1 / scale)
    return np.clip(np.rint(blocks * inverse), -8, 7)


def _gguf_version() -> str | None:
    try:
        return importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """`python -m rag.models.gguf_requant prepare`: make the packaged answer model's copy for
    the default `llm_weights` now (`make install` runs it beside the kernel build), so the first
    answer does not wait for it. Never fails an install: the first answer would make it too."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    if args[:1] != ["prepare"]:
        print("usage: python -m rag.models.gguf_requant prepare", file=sys.stderr)
        return 2
    from rag.config import Settings
    from rag.models.gguf import QWEN_05B, packaged_gguf

    weights = Settings().llm_weights
    if weights == "shipped":
        return 0
    started = time.monotonic()
    try:
        path = converted(packaged_gguf(), QWEN_05B.sha256, weights)
    except (ModelFileError, OSError) as exc:
        print(f"answer model: no {weights} copy made now, the first answer makes it ({exc})",
              file=sys.stderr)
        return 0
    print(f"answer model: {path} ({weights}, {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
