"""What this CPU is and which instruction-set extensions it has, read once from /proc/cpuinfo.

Why one reader: the embedder picks bfloat16, llama.cpp's kernels pick AVX-512, and the benchmarks
name the machine from the same facts; three parsers of one file could disagree. Linux lists the
extensions that both the CPU and the kernel enable (a hypervisor may hide some), which is what a
process can use. Elsewhere nothing is listed, and every caller falls back to its portable path.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU listed."""
    model, flags = "", frozenset()
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model or platform.processor() or platform.machine(), flags


def cpu_flags() -> frozenset[str]:
    """The extensions /proc/cpuinfo lists for the first CPU (e.g. "avx2", "avx512_bf16")."""
    return _cpuinfo()[1]


def cpu_model() -> str:
    """The CPU's model name, e.g. "Intel(R) Xeon(R) Processor"."""
    return _cpuinfo()[0]


def cpu_has_bf16() -> bool:
    """True when the CPU has a bfloat16 vector or matrix extension (AVX-512 BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
