"""How many rows one of Milvus Lite's background merges may read at once.

Why this exists: Milvus Lite 3.2.2 merges its Parquet files by *size in bytes* (tiers under
1, 10 and 100 MB; four files of one tier merge) up to 2 x `MAX_SEGMENT_ROWS` (100,000) rows in
one merge, and a merge holds its input about four times over for a moment (read, sorted, de-
duplicated, sorted again: ~7 KB a 384-d row), next to every segment it already keeps in memory.
With float32 vectors from a float32 model a file of 64k rows is ~100 MB, the last tier, and
merges stop at 64k rows (+~450 MB for a second). Vectors from a bfloat16 model (the default on
CPUs with avx512_bf16) have the low 16 bits of each float zero, so Parquet compresses them
~3.7x: the 64k-row files stay in the 10-100 MB tier and merge on, up to 200k rows at once.
That is what took the real-model 500 MB ingest to 2.1 GB at 156k chunks (spikes of 0.8-0.95
GB) where the stand-in, with incompressible vectors, peaked 0.5 GB lower.

Lite has no setting for it, so `bound_merges` sets the two module constants its compaction
reads (pinned to the version this was written against, like `lite_search`): segments of at
most `segment_rows` rows, so a merge reads at most twice that; and the file count past which
Lite merges whatever is smallest raised in proportion (32 x 100k rows before, the same product
now), so that an index of many full segments is not merged over and over for nothing.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)
SUPPORTED_VERSIONS = {"3.2.2"}
LITE_OWN_SEGMENT_ROWS = 100_000  # Lite's own MAX_SEGMENT_ROWS
LITE_OWN_MAX_FILES = 32  # Lite's own MAX_DATA_FILES
# The default bound (`lite_segment_rows`): a merge then reads at most 65,536 rows (~450 MB for a
# moment), which kept the 500 MB text file's ingest at 2.1 GB with a bfloat16 model.
DEFAULT_SEGMENT_ROWS = 32_768


def bound_merges(segment_rows: int) -> bool:
    """Make embedded Milvus Lite's merges read at most 2 x `segment_rows` rows (0 = Lite's own
    bound); whether it took effect. Process-wide: every Lite collection of this process."""
    try:
        from milvus_lite import __version__ as version
        from milvus_lite.engine import compaction
    except ImportError:  # no embedded Lite installed: a server needs none of this
        return False
    if version not in SUPPORTED_VERSIONS:
        log.debug("milvus-lite %s: its merges are left as they are", version)
        return False
    rows = segment_rows or LITE_OWN_SEGMENT_ROWS
    compaction.MAX_SEGMENT_ROWS = rows
    compaction.MAX_DATA_FILES = max(LITE_OWN_MAX_FILES,
                                    math.ceil(LITE_OWN_MAX_FILES * LITE_OWN_SEGMENT_ROWS / rows))
    return True
