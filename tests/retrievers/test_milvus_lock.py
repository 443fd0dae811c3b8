"""A second process opening the same Milvus Lite index is told who holds it and how to share it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from retrievers.errors import IndexLockedError
from retrievers.milvus_store import MilvusDenseStore

HOLDER = textwrap.dedent("""
    import sys, time
    from retrievers.milvus_store import MilvusDenseStore
    store = MilvusDenseStore(sys.argv[1], "chunks", 8)
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
""")


def test_second_process_gets_a_clear_lock_message(tmp_path):
    uri = str(tmp_path / "milvus.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, uri], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(IndexLockedError) as caught:
            MilvusDenseStore(uri, "chunks", 8)
        message = str(caught.value)
        assert uri in message
        assert f"pid {holder.pid}" in message
        assert "milvus-lite server --data-dir" in message and "milvus_uri=http://" in message
    finally:
        holder.communicate("\n", timeout=60)
    # once the holder has gone, the index opens normally
    MilvusDenseStore(uri, "chunks", 8).close()
