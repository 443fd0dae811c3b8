"""A float32 ONNX copy of a sentence-transformers model, so a process that only embeds queries
never imports torch.

Why: torch, sentence-transformers and transformers are ~550 MB of a query process's resident
memory (issue 17 measured a 100k-chunk query process at 1,200 MB against stock llama-index's
1,741 MB). onnxruntime is installed anyway (OCR, the reranker), and its vectors are the torch
float32 model's to ~1e-6. The export runs once per machine and model, in a process that has
torch loaded anyway (an ingest) or on the first query; it is checked against torch's vectors
before it is used, written to a temporary folder and renamed into place, so a half-written
export is never read. A sidecar (`export.json`, written last) records the files' sizes and
mtimes, so later processes trust them without re-hashing 90 MB. The weights are kept in a
separate file (ONNX external data), which onnxruntime maps instead of parsing them out of the
graph: the process peaks at ~100 MB for the model instead of ~190 MB.

Only plain models qualify: a Transformer module, mean or CLS pooling, optionally Normalize
(vectors are L2-normalised either way, as `Embedder` asks sentence-transformers to do).
Hand-written because `optimum`, the library that exports sentence-transformers models, does not
import against transformers 5.x here (MODELS.md); torch's own exporter does the work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from rag.models.cache import cache_dir, move_into_place, sha256_of, staging_folder

SIDECAR = "export.json"
DATA = "model.onnx.data"  # the weights, beside the graph: onnxruntime maps them from the file
FORMAT = 2  # 1 kept the weights inside model.onnx (read into memory twice while loading)
PROBES = ("What did the author work on before college?",
          "A longer passage: " + "the quick brown fox jumps over the lazy dog. " * 40,
          "Kurz.")
TOLERANCE = 1e-4  # largest |difference| of a vector component allowed between ONNX and torch


class NotExportable(Exception):
    """The model cannot be exported here (its shape, or a missing package); the message says why."""


def export_plan(folder: str | Path) -> dict:
    """Pooling, sequence limit and dimension of a plain sentence-transformers folder.

    Raises NotExportable naming what is not plain (extra modules, max or weighted pooling)."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling_config = json.loads((folder / pooling_dir / "config.json").read_text())
        limit = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        dimension = json.loads((folder / "config.json").read_text())["hidden_size"]
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise NotExportable(f"{folder}: not a plain sentence-transformers folder ({exc})") from exc
    if types not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise NotExportable(f"{folder}: modules {types} (only Transformer, Pooling, Normalize)")
    modes = [k for k, v in pooling_config.items() if k.startswith("pooling_mode_") and v]
    pooling = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(
        modes[0] if len(modes) == 1 else "")
    if pooling is None:
        raise NotExportable(f"{folder}: pooling {modes} (only mean or CLS)")
    if not (folder / "tokenizer.json").is_file():
        raise NotExportable(f"{folder}: no tokenizer.json")
    return {"pooling": pooling, "max_seq_length": int(limit), "dimension": int(dimension)}


def export_folder(fingerprint: str) -> Path:
    """Where the export of the model with this fingerprint lives (one per model, per machine)."""
    return cache_dir() / f"onnx-fp32-{fingerprint.split(':')[-1][:24]}"


def cached_export(fingerprint: str) -> tuple[Path, dict] | None:
    """The finished export and its sidecar, or None when there is none (or it was altered)."""
    folder = export_folder(fingerprint)
    try:
        meta = json.loads((folder / SIDECAR).read_text())
        files = {name: (folder / name).stat() for name in ("model.onnx", DATA)}
    except (OSError, ValueError):
        return None
    recorded = meta.get("files", {})
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint \
            or not (folder / "tokenizer.json").is_file():
        return None
    for name, stat in files.items():
        if recorded.get(name) != [stat.st_size, stat.st_mtime_ns]:
            return None
    return folder, meta


def export(source: str | Path, fingerprint: str) -> tuple[Path, dict]:
    """Export `source` (a sentence-transformers folder) to ONNX float32, verify it against torch
    on a few probes and put it in the cache. Raises NotExportable with the reason."""
    plan = export_plan(source)
    try:
        import onnx  # torch's exporter needs it too
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise NotExportable(f"cannot export to ONNX: {exc}") from exc
    final = export_folder(fingerprint)
    work = staging_folder(final)
    try:
        # Eager attention, and an example batch with padding: traced with an all-ones mask,
        # transformers skips building the attention mask and the export ignores padding.
        model = AutoModel.from_pretrained(str(source), dtype=torch.float32,
                                          attn_implementation="eager").eval()

        class LastHiddenState(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        names = ["input_ids", "attention_mask", "token_type_ids"]
        example = torch.ones(2, 8, dtype=torch.long)
        mask = example.clone()
        mask[1, 5:] = 0
        with torch.no_grad():
            torch.onnx.export(LastHiddenState(model).eval(), (example, mask, torch.zeros_like(example)),
                              str(work / "model.onnx"), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"}
                                            for n in names + ["last_hidden_state"]})
        graph = onnx.load(str(work / "model.onnx"))
        onnx.save_model(graph, str(work / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=DATA, size_threshold=1024)
        del graph
        shutil.copy2(Path(source) / "tokenizer.json", work / "tokenizer.json")
        difference = _largest_difference(work, plan, model.eval())  # eval: no dropout
        if difference > TOLERANCE:
            raise NotExportable(f"{source}: the ONNX export differs from torch by {difference:.2g}")
        stats = {name: (work / name).stat() for name in ("model.onnx", DATA)}
        meta = {**plan, "format": FORMAT, "fingerprint": fingerprint, "source": str(source),
                "sha256": {name: sha256_of([work / name]) for name in stats},
                "files": {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()},
                "largest_difference": difference}
        (work / SIDECAR).write_text(json.dumps(meta, indent=2))
        return move_into_place(work, final, lambda: cached_export(fingerprint), NotExportable) \
            or (final, meta)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _largest_difference(folder: Path, plan: dict, model) -> float:
    """max |ONNX - torch| over the probes' pooled, normalised vectors (float32 both)."""
    import torch

    from rag.models.onnx_embedder import OnnxEmbedder

    onnx_embedder = OnnxEmbedder("probe", folder, pooling=plan["pooling"],
                                 max_tokens=plan["max_seq_length"], threads=1)
    ours = onnx_embedder.encode(list(PROBES))
    tokenizer = onnx_embedder.tokenizer
    encodings = tokenizer.encode_batch(list(PROBES))
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask,
                       token_type_ids=torch.zeros_like(ids)).last_hidden_state
    if plan["pooling"] == "cls":
        pooled = hidden[:, 0]
    else:
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    reference = torch.nn.functional.normalize(pooled, dim=1).numpy()
    return float(np.abs(ours - reference).max())
