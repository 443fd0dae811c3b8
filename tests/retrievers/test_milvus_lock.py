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


@pytest.mark.slow
def test_the_same_index_reopens_in_process_after_a_minute_idle(tmp_path):
    """pymilvus keeps one connection per URI for the process; with its default keepalive Milvus
    Lite sent GOAWAY "too_many_pings" and a store opened on the index 75 s after the last one
    closed failed to connect (an app or notebook that reopens an index)."""
    import time

    import numpy as np

    from retrievers.records import Chunk

    uri = str(tmp_path / "milvus.db")
    store = MilvusDenseStore(uri, "chunks", 8)
    chunk = Chunk("c1", "some text", "doc.txt", "s1", "h1", 0, file_type="txt")
    store.upsert([chunk], np.ones((1, 8), dtype=np.float32))
    store.close()
    time.sleep(75)
    again = MilvusDenseStore(uri, "chunks", 8)
    try:
        assert [hit[0] for hit in again.search(np.ones(8, dtype=np.float32), 1)] == ["c1"]
    finally:
        again.close()
