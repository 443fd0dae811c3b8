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


ARENAS = """
import ctypes, os, sys, tempfile, threading
if sys.argv[1] == "apply":
    from rag.process import apply_defaults
    apply_defaults()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
held, ready = [], threading.Barrier(6)
def work():
    ready.wait()  # all six allocate at once: glibc hands new threads new arenas
    held.append([libc.malloc(1 << 16) for _ in range(50)])
threads = [threading.Thread(target=work) for _ in range(6)]
[t.start() for t in threads]; [t.join() for t in threads]
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp)); libc.fclose(ctypes.c_void_p(fp))
print(open(path).read().count("<heap nr="))
"""


def probe(script: str, how: str, unset: str, **env: str) -> int:
    """The number `script` prints last, run in a fresh interpreter without `unset` in its
    environment (plus `env`)."""
    environ = {k: v for k, v in os.environ.items() if k != unset}
    done = subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True,
                          cwd=REPO, env={**environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def heaps(how: str, **env: str) -> int:
    return probe(ARENAS, how, "MALLOC_ARENA_MAX", **env)


def test_threads_share_two_malloc_arenas_in_a_rag_process():
    """Freed batches stayed in per-thread heaps: a 40 MB text peaked at 871 MB instead of 677."""
    assert heaps("plain") > 2  # what glibc does by default, so the check below can fail
    assert heaps("apply") <= 2


def test_malloc_arenas_the_user_chose_win():
    assert heaps("apply", MALLOC_ARENA_MAX="4") > 2


MMAP = """
import ctypes, sys
if sys.argv[1] == "apply":
    from rag.process import apply_defaults
    apply_defaults()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = Info
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(20 << 20))  # a freed 20 MB mapping raises glibc's threshold by default
big, pins = [], []
for _ in range(20):  # a 4 MB buffer, then a small one that outlives it: freed, holes are left
    big.append(libc.malloc(4 << 20))
    pins.append(libc.malloc(64 << 10))
for block in big:
    libc.free(block)
print(libc.mallinfo2().fordblks >> 20)
"""


def free_heap_mb(how: str, **env: str) -> int:
    return probe(MMAP, how, "MALLOC_MMAP_THRESHOLD_", **env)


def test_large_freed_buffers_go_back_to_the_system_in_a_rag_process():
    """Milvus Lite's freed Arrow buffers (1-25 MB) stayed in the heap once glibc had raised its
    mmap threshold: 272 of 790 MB resident were free heap before a 100 MB text was published."""
    assert free_heap_mb("plain") >= 40  # what glibc does by default, so the check below can fail
    assert free_heap_mb("apply") < 8


def test_an_mmap_threshold_the_user_chose_wins():
    assert free_heap_mb("apply", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) >= 40


TRIM = """
import ctypes, resource, sys
from rag import process
if sys.argv[1] == "apply":
    process.apply_defaults()
else:  # what the defaults did before the trim threshold was raised
    process.fix_mmap_threshold()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # a query's score array: 800 KB, written, freed
    block = libc.malloc(800 << 10)
    libc.memset(block, 1, 800 << 10)
    libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(how: str, **env: str) -> int:
    return probe(TRIM, how, "MALLOC_TRIM_THRESHOLD_", **env)


def test_freed_query_arrays_are_not_faulted_in_again_in_a_rag_process():
    """With the heap shrunk after every query, BM25 at 100k chunks took 2.3-2.6 ms instead of
    1.05-1.1 ms inside hybrid queries: most of it page faults."""
    assert page_faults("mmap-only") > 10_000  # 200 pages a round: the check below can fail
    assert page_faults("apply") < 2_000


def test_a_trim_threshold_the_user_chose_wins():
    assert page_faults("apply", MALLOC_TRIM_THRESHOLD_=str(128 << 10)) > 10_000
