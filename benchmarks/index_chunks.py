"""The shared start of the embedding benchmarks that encode an index's own chunks
(`embed_roofline.py`, `passage_paths.py`): `--index/--chunks/--mask` parsed, the process re-run
under the AVX2 mask when asked (before torch or onnxruntime is imported), and the chunk texts read
from the index's catalog."""
from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Callable

from cpu_mask import reexec_avx2_only


def options(description: str, more: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> argparse.Namespace:
    """Parse the common options (and `more`'s); re-run masked with `--mask`. Call it first."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--index", type=Path, required=True,
                        help="an index folder (its chunks are encoded)")
    parser.add_argument("--chunks", type=int, default=320)
    parser.add_argument("--mask", action="store_true", help="as on an AVX2-only CPU")
    if more:
        more(parser)
    opts = parser.parse_args()
    if opts.mask:
        reexec_avx2_only()
    return opts


def live_chunk_texts(index: Path, limit: int) -> list[str]:
    """The first `limit` live chunks of `index`, in chunk-id order (read-only)."""
    catalog = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return [text for (text,) in catalog.execute(
            "select text from chunks where state='live' order by chunk_id limit ?", (limit,))]
    finally:
        catalog.close()
