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


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (see MALLOC_ARENAS); False where there is no glibc or the
    user chose a value."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:  # the symbols the process already has: no library search on every RAG and Embedder
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def apply_defaults() -> None:
    """Set each default that the environment does not already set, and cap malloc arenas."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    limit_malloc_arenas()
