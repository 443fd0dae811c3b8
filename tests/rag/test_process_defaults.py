"""Process-wide defaults (rag/process.py) take effect in a real `rag` process, and what the
user exported wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, sys; from rag.cli import main; "
    "code = main(['ingest', sys.argv[1], '--index', sys.argv[2], '--quiet']); "
    "import pyarrow; print(json.dumps({'code': code, "
    "'pool': pyarrow.default_memory_pool().backend_name}))"
)


def run_probe(tmp_path: Path, **env: str) -> dict:
    note = tmp_path / "note.txt"
    note.write_text("Green tea steeps for two minutes in water at eighty degrees.\n")
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(note), str(tmp_path / "index")],
                          capture_output=True, text=True, cwd=REPO, env={**environ, **env},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_milvus_lite_runs_on_the_system_allocator_in_a_rag_process(tmp_path):
    """Arrow's mimalloc kept freed parquet buffers: ~210 MB more at the peak of a process
    that opened an 80k-chunk collection."""
    assert run_probe(tmp_path) == {"code": 0, "pool": "system"}


def test_an_allocator_the_user_chose_wins(tmp_path):
    assert run_probe(tmp_path, ARROW_DEFAULT_MEMORY_POOL="mimalloc")["pool"] == "mimalloc"
