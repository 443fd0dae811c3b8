"""Process-wide defaults the framework needs, applied when it is used, never on import.

Why not on import: importing a package must not change the process it is imported into (a
host application may have its own telemetry or threading settings). Each value is only a
default (`setdefault`): what the user exported wins. `RAG.__init__` and the CLI call
`apply_defaults()` before any model library loads.
"""

from __future__ import annotations

import ctypes
import os

DEFAULTS = {
    # Nothing in the default path may phone home.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    # OpenMP threads that sleep instead of spinning: on 2 shared cores, spinning made whisper
    # 7x slower whenever another process was busy (must be set before torch loads).
    "OMP_WAIT_POLICY": "PASSIVE",
    # Milvus Lite keeps its segments as Arrow tables; Arrow's default allocator (mimalloc) kept
    # the memory of every parquet read and compaction it had freed. With the system allocator a
    # process that opened an 80k-chunk collection held 540 MB at its peak instead of 752 MB
    # (must be set before pyarrow loads).
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


# glibc gives each thread that allocates its own heap ("arena"), up to 8 per core, and a heap
# keeps what its thread freed. An ingest runs a loader, an embedder, a writer and Milvus Lite's
# background index builds in threads, so freed batches piled up in many heaps: a 40 MB text
# (39,739 chunks, stand-in embedder) peaked at 871 MB with the default and 649 MB with two
# arenas, and held 675 against 538 MB afterwards (benchmarks/huge_inputs.py). The environment
# variable MALLOC_ARENA_MAX is read only when a process starts, so the limit is set with
# mallopt, which governs the arenas created from then on; an exported MALLOC_ARENA_MAX wins.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _mallopt(parameter: int, value: int, environment_name: str) -> bool:
    """glibc's mallopt(parameter, value), unless the user exported `environment_name` (glibc's
    own variable for it, which wins); False where there is no glibc or the user chose."""
    if environment_name in os.environ:
        return False
    try:  # the symbols the process already has: no library search on every RAG and Embedder
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False
    return bool(mallopt(parameter, value))


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (see MALLOC_ARENAS); False where there is no glibc or the
    user chose a value."""
    return _mallopt(_M_ARENA_MAX, arenas, "MALLOC_ARENA_MAX")


# glibc serves a request of at least its "mmap threshold" with a mapping of its own, returned to
# the system when freed; smaller ones come from the heap, whose freed pages it keeps. The
# threshold starts at 128 KB but rises to the size of any such mapping freed (up to 32 MB), so
# once Milvus Lite had freed a few merged segments, the Arrow buffers of later flushes and merges
# (1-25 MB) came from the heap and stayed there when freed: before a 100 MB text file was
# published, 272 MB of the ingest's 790 MB resident were free heap. A fixed threshold keeps
# large buffers in their own mappings. An exported MALLOC_MMAP_THRESHOLD_ wins.
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (see MMAP_THRESHOLD); False where there is no glibc or the
    user chose a value."""
    return _mallopt(_M_MMAP_THRESHOLD, threshold, "MALLOC_MMAP_THRESHOLD_")


# With the mmap threshold fixed, glibc no longer raises its "trim threshold" either: it stays at
# 128 KB, so every time the top of the heap held more than that free (a query's score arrays,
# 0.1-1 MB at 100k chunks, just freed) the heap was shrunk, and the next query's arrays were
# faulted in again page by page. BM25 at 100k chunks, inside hybrid queries: p50 2.3-2.6 ms with
# 128 KB, 1.05-1.1 ms with this (benchmarks/retrieval_latency.py's corpus). What it costs: up
# to this much free memory kept at the top of a heap. An exported MALLOC_TRIM_THRESHOLD_ wins.
TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter number


def fix_trim_threshold(threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's trim threshold (see TRIM_THRESHOLD); False where there is no glibc or the
    user chose a value."""
    return _mallopt(_M_TRIM_THRESHOLD, threshold, "MALLOC_TRIM_THRESHOLD_")


def apply_defaults() -> None:
    """Set each default that the environment does not already set, cap malloc arenas, fix
    the mmap threshold and raise the trim threshold."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    limit_malloc_arenas()
    fix_mmap_threshold()
    fix_trim_threshold()
