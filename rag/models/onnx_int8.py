"""An int8 copy of the float32 ONNX export, for embedding passages on CPUs without AVX-512.

Why: on a CPU with AVX2 and no AVX-512 the float32 export embeds ~1.4x torch float32's chunks/s
and cannot go much further (README "Why 2x is out of reach in float32"); int8 matrix products
run at about twice float32's rate there. Only passages use it: queries stay on the float32
export, so a passage vector moves a little (cosine ~0.99 to float32) and a query vector not at
all. `auto` picks it on CPUs with AVX2 and no AVX-512 or VNNI, where it runs one text per
onnxruntime call (`OnnxEmbedder`, batch 1): dynamic quantisation takes one activation scale per
call, so batched vectors depended on the texts sharing the call and one batching of the dev
corpora lost a question from the top 10 (rule 24); alone in its call a passage's vector is its
own text's, and every dev set kept its Recall@10 (README "Embedding on AVX2-only CPUs", rule 43).

The recipe is onnxruntime's own tools, not hand-written kernels: the BERT graph fusions
(`onnxruntime.transformers.optimizer`, so attention runs as one quantised operator), then
dynamic quantisation with one scale per output channel of each weight (per-tensor scales moved
vectors ten times as far: cosine 0.94). A model the optimiser cannot fuse is quantised unfused
(same scales, a few percent slower). The residual additions stay Add + LayerNormalization
instead of the fused SkipLayerNormalization, whose CPU kernel is scalar: 7% more chunks/s under
the AVX2 mask (README rule 44; the sessions are opened without that fusion). The copy is made
once per machine and model next to the float32 export, checked against it on a few probes,
written to a temporary folder and renamed into place, as the float32 export is. Making it
imports torch (the optimiser does), as making the float32 export does; using it does not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from rag.models.cache import cache_dir, move_into_place, staging_folder
from rag.models.onnx_export import PROBES, NotExportable

SIDECAR = "int8.json"
RECIPE = ("bert-fused without skip-layer-norm, dynamic int8, per-channel weights "
          "(MatMul, Attention)")
FORMAT = 2  # 1: with SkipLayerNormalization (slower; remade as 2 on first use)
MIN_COSINE = 0.95  # a probe further than this from the float32 export means a broken copy


def int8_folder(fingerprint: str) -> Path:
    """Where the int8 copy of the model with this fingerprint lives (one per model, per machine)."""
    return cache_dir() / f"onnx-int8-{fingerprint.split(':')[-1][:24]}"


def cached_int8(fingerprint: str) -> Path | None:
    """The finished int8 copy, or None when there is none (or it was altered)."""
    folder = int8_folder(fingerprint)
    try:
        meta = json.loads((folder / SIDECAR).read_text())
        stat = (folder / "model.onnx").stat()
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint \
            or meta.get("file") != [stat.st_size, stat.st_mtime_ns] \
            or not (folder / "tokenizer.json").is_file():
        return None
    return folder


def make_int8(export: Path, plan: dict, fingerprint: str, source: str | Path) -> Path:
    """The int8 copy of the float32 export in `export` (made now if missing). `plan` is the
    export's sidecar (pooling, token limit); `source` the model folder (its config.json gives
    the attention shape the fusions need). Raises NotExportable saying why it cannot be made."""
    if (found := cached_int8(fingerprint)) is not None:
        return found
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise NotExportable(f"cannot quantise to int8: {exc}") from exc
    final = int8_folder(fingerprint)
    work = staging_folder(final)
    try:
        model_folder, source, fused = Path(source), export / "model.onnx", work / "fused.onnx"
        if not _fuse(source, fused, _shape(model_folder)):
            fused = source
        with _without_preprocessing_advice():
            quantize_dynamic(str(fused), str(work / "model.onnx"), per_channel=True,
                             weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Attention"],
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        if fused != source:
            os.unlink(fused)
        shutil.copy2(export / "tokenizer.json", work / "tokenizer.json")
        cosine = _closest_cosine(export, work, plan)
        if cosine < MIN_COSINE:
            raise NotExportable(f"the int8 copy of {export} drifts from float32 (cosine {cosine:.3f})")
        stat = (work / "model.onnx").stat()
        meta = {"format": FORMAT, "fingerprint": fingerprint, "recipe": RECIPE,
                "fused": fused != source, "file": [stat.st_size, stat.st_mtime_ns],
                "lowest_probe_cosine": cosine}
        (work / SIDECAR).write_text(json.dumps(meta, indent=2))
        return move_into_place(work, final, lambda: cached_int8(fingerprint), NotExportable) \
            or final
    except NotExportable:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as exc:  # onnxruntime's tools failing on an unusual graph: say so, go on
        shutil.rmtree(work, ignore_errors=True)
        raise NotExportable(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _without_preprocessing_advice():
    """Drop the quantiser's root-logger advice to pre-process the graph (shape inference for
    image models): the fusions above are this model's pre-processing, and a user ingesting
    files should not read advice meant for whoever quantises."""
    def advice(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _fuse(source: Path, target: Path, shape: tuple[int, int]) -> bool:
    """onnxruntime's BERT fusions of `source` into `target`; False when nothing was fused."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = shape
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = fusions.enable_bias_skip_layer_norm = False
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = optimize_model(str(source), model_type="bert", num_heads=heads,
                               hidden_size=hidden, optimization_options=fusions, opt_level=1)
    finally:
        quiet.setLevel(level)
    if not any(node.op_type == "Attention" for node in model.model.graph.node):
        return False
    model.save_model_to_file(str(target), use_external_data_format=False)
    return True


def _shape(model_folder: Path) -> tuple[int, int]:
    """(attention heads, hidden width) from the model's config.json; (0, 0) lets the optimiser
    try to read them off the graph."""
    try:
        config = json.loads((model_folder / "config.json").read_text())
        return int(config["num_attention_heads"]), int(config["hidden_size"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0, 0


def _closest_cosine(export: Path, int8: Path, plan: dict) -> float:
    """The lowest cosine between the float32 export's and the int8 copy's probe vectors."""
    from rag.models.onnx_embedder import OnnxEmbedder

    def vectors(folder: Path) -> np.ndarray:
        return OnnxEmbedder("probe", folder, pooling=plan["pooling"],
                            max_tokens=plan["max_seq_length"], threads=1).encode(list(PROBES))

    return float((vectors(export) * vectors(int8)).sum(axis=1).min())
