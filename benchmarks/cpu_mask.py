"""Run a benchmark as if on an AVX2-only CPU: AVX-512, AVX-VNNI, AMX and AVX10 masked from CPUID.

Why: the embedding choice for CPUs without AVX-512 has to be measured, and the machines here have
AVX-512. torch can be limited by environment variables (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA,
MKL_ENABLE_INSTRUCTIONS, FBGEMM_ENABLE_INSTRUCTIONS) but onnxruntime's MLAS reads CPUID itself.
`avx2only.c` (beside this file) is an LD_PRELOAD library that turns on Linux CPUID faulting
(arch_prctl ARCH_SET_CPUID; the CPU must list `cpuid_fault`) and answers every CPUID with those
feature bits cleared, so every library picks its AVX2 kernels and runs them on real silicon. An
emulator (Intel SDE, QEMU) would instead change the speed being measured.

What it cannot mask: /proc/cpuinfo (the project's own CPU report still lists AVX-512, so pass
the backend to measure explicitly) and the silicon's caches and clocks (an AVX2-era CPU differs
there: report ratios between runs under the same mask, not absolute speeds).

    from benchmarks.cpu_mask import reexec_avx2_only
    reexec_avx2_only()   # first thing in main(): re-runs this process under the mask, once
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("avx2only.c")
MARK = "RAG_BENCH_AVX2_ONLY"


def build(folder: Path) -> Path:
    """Compile the preload library into `folder` (gcc); raises SystemExit saying what is missing."""
    if "cpuid_fault" not in Path("/proc/cpuinfo").read_text():
        raise SystemExit("--emulate-avx2: this CPU/kernel has no CPUID faulting (cpuid_fault)")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("--emulate-avx2: needs a C compiler (apt install gcc)")
    library = folder / "avx2only.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(SOURCE)],
                   check=True)
    return library


def masked() -> bool:
    """True inside a process started under the mask."""
    return os.environ.get(MARK) == "1"


def reexec_avx2_only(folder: Path | None = None) -> None:
    """Replace this process by the same command under the mask (a no-op once masked)."""
    if masked():
        return
    import tempfile

    library = build(folder or Path(tempfile.mkdtemp(prefix="avx2only-")))
    env = dict(os.environ, LD_PRELOAD=str(library), **{MARK: "1"})
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def cpu_capability() -> str:
    """What torch's kernels dispatch to in this process (e.g. "AVX2"), for the printed header."""
    import torch

    return torch.backends.cpu.get_cpu_capability()
