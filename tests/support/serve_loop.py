"""A serving process for the shared-index test: open one index, answer retrievals in a loop.

Usage: python -m tests.support.serve_loop OUT_JSONL STOP_FILE QUERY INDEX_DIR KEY=VALUE...
It answers until STOP_FILE exists (at most an hour). Each retrieval writes one line
{"t": wall time, "sources": [...], "error": str|null}; the
settings (milvus_uri, sparse, collection) come as KEY=VALUE like `rag --set`. It is the
Python API a UI or an assistant process holds open for hours, not a one-shot CLI call.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    out, stop, query, index_dir, *pairs = argv
    settings = dict(pair.split("=", 1) for pair in pairs)
    from rag.api import RAG

    rag = RAG.open(index_dir, **settings)
    end = time.monotonic() + 3600
    with open(out, "a", buffering=1) as handle:
        while time.monotonic() < end and not os.path.exists(stop):
            record: dict = {"t": time.time(), "sources": [], "error": None}
            try:
                record["sources"] = sorted({hit.chunk.source for hit in rag.retrieve(query, top_k=5)})
            except Exception as exc:  # counted by the test: must stay zero
                record["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            handle.write(json.dumps(record) + "\n")
            time.sleep(0.1)
    rag.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
