"""Process-wide defaults the framework needs, applied when it is used, never on import.

Why not on import: importing a package must not change the process it is imported into (a
host application may have its own telemetry or threading settings). Each value is only a
default (`setdefault`): what the user exported wins. `RAG.__init__` and the CLI call
`apply_defaults()` before any model library loads.
"""

from __future__ import annotations

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


def apply_defaults() -> None:
    """Set each default that the environment does not already set."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
