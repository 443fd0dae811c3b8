"""kill -9 during `rag ingest` at 10 random moments, then a normal run: nothing lost, nothing doubled.

The corpus is real (the bundled sample with its speech clip, plus the document fixtures). Before
each run every text file gets a new line, so each run has real work: new chunks to add and old
ones to replace. Small embedding batches make a run publish many times, so the kills land
between and inside writes. The whole process group is killed, as a power cut would stop it.
The final index is compared with a clean run over the same final files.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "tests" / "data" / "documents"
SAMPLE = REPO / "rag" / "sample"
KILLS = 10


def rag_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag", *args]


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def live_ids(index: Path) -> tuple[list[str], list[str], int]:
    """(catalog live ids, Milvus ids, Milvus row count) read straight from the stores."""
    script = (
        "import json, sys\n"
        "from rag.api import RAG\n"
        "r = RAG.open(sys.argv[1])\n"
        "ix = r.index\n"
        "print(json.dumps({'live': ix.catalog.ids_in_state('live'), 'dense': sorted(ix.dense.all_ids()),"
        " 'count': ix.dense.count()}))\n"
        "r.close()\n"
    )
    out = run([sys.executable, "-c", script, str(index)])
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["live"], data["dense"], data["count"]


def revise(corpus: Path, revision: int) -> None:
    """Change every text file, so each run has real work (and replaces chunks) to be killed in."""
    for path in sorted(corpus.iterdir()):
        if path.suffix in EDITABLE:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"\nRevision {revision} of {path.stem}.\n")


EDITABLE = {".md", ".txt", ".csv", ".eml", ".html"}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kill_9_at_ten_random_points_then_rerun_equals_a_clean_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for item in list(DOCS.iterdir()) + list(SAMPLE.iterdir()):
        shutil.copy(item, corpus / item.name)
    settings = ["--set", "ingest_batch_chunks=6", "--quiet", "--json"]

    # How long a full run takes here, to spread the kills over it.
    started = time.monotonic()
    first = run(rag_cmd("ingest", str(corpus), "--index", str(tmp_path / "timing"), *settings))
    full_seconds = time.monotonic() - started
    assert first.returncode == 3, first.stderr[-2000:]  # the fixtures include files that must fail

    crashed = tmp_path / "crashed"
    rng = random.Random(20261123)
    outcomes = []
    revision = 0
    while sum(kind == "killed" for kind, _ in outcomes) < KILLS and len(outcomes) < 3 * KILLS:
        revision += 1
        revise(corpus, revision)
        delay = rng.uniform(0.3 * full_seconds, full_seconds)
        proc = subprocess.Popen(
            rag_cmd("ingest", str(corpus), "--index", str(crashed), *settings),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=delay)
            outcomes.append(("finished", round(delay, 1)))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            outcomes.append(("killed", round(delay, 1)))
    assert sum(kind == "killed" for kind, _ in outcomes) == KILLS, outcomes

    # The crashed index opens and answers before anything repairs it by re-ingesting.
    answer = run(rag_cmd("retrieve", "how hot should the water be for green tea", "--index",
                         str(crashed), "--mode", "bm25", "--json"))
    assert answer.returncode == 0, answer.stderr[-2000:]
    json.loads(answer.stdout)

    final = run(rag_cmd("ingest", str(corpus), "--index", str(crashed), *settings))
    assert final.returncode == 3, final.stderr[-2000:]
    clean = tmp_path / "clean"
    reference = run(rag_cmd("ingest", str(corpus), "--index", str(clean), *settings))
    assert reference.returncode == 3, reference.stderr[-2000:]
    clean_live, clean_dense, _ = live_ids(clean)
    assert clean_live and sorted(clean_live) == clean_dense

    live, dense, count = live_ids(crashed)
    assert len(live) == len(set(live)) and count == len(dense) == len(set(dense))  # no duplicates
    assert sorted(live) == sorted(clean_live)  # same chunks as a clean run: none lost, none extra
    assert dense == sorted(live)  # Milvus holds exactly the live ids

    check = run(rag_cmd("stats", "--check", "--json", "--index", str(crashed)))
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    report = json.loads(check.stdout)["check"]
    assert report["ok"] and report["bm25"] == report["dense"] == len(clean_live)
    print(f"full run {full_seconds:.1f} s; {len(clean_live)} chunks; runs: {outcomes}")
