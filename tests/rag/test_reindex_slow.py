"""`rag reindex` under load and under kill -9, on real corpora (slow: run with -m slow).

- Four query threads run while the index re-embeds ~450 chunks of Paul Graham essays with
  MiniLM: every query must succeed and return hits, before, during and after the switch.
- Another process queries the same index through a shared Milvus (a `milvus-lite server`,
  and a Milvus 2.3.5 server) while `rag reindex` runs: zero errors, and it follows the switch.
- `rag reindex` is killed with SIGKILL half-way: the old index still answers, `rag stats`
  shows the unfinished run, and the next `rag reindex` resumes (embeds only the rest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.api import RAG

from tests.conftest import REPO, SHARED_DATA
from tests.support.progress import kill_at_progress

ESSAYS = SHARED_DATA / "qa" / "paul_graham" / "essays"
QUERIES = ["how to start a startup", "what makes a good essay", "programming languages and lisp",
           "raising money from investors", "hackers and painters"]
N_ESSAYS = 30

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not ESSAYS.is_dir(), reason="../shared/data is absent")]


@pytest.fixture(scope="module")
def essays(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("essays")
    for path in sorted(ESSAYS.iterdir())[:N_ESSAYS]:
        shutil.copy(path, folder / path.name)
    return folder


def static_index(tmp_path: Path, essays: Path, static_model: Path, **settings) -> Path:
    """The essays indexed with the static model (fast), to be re-indexed with MiniLM (slow).
    A copy is returned: Milvus Lite stays locked to this process once opened here, a copy does
    not, so a child process can open it."""
    built = tmp_path / "built"
    rag = RAG.open(built, embedding_model=str(static_model), ocr="never", **settings)
    assert all(r.status == "added" for r in rag.ingest([essays]))
    rag.close()
    return shutil.copytree(built, tmp_path / "index")


def rag_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag", *args]


def test_query_threads_get_no_errors_while_the_index_is_reindexed(tmp_path, essays, static_model,
                                                                  embedder):
    index = static_index(tmp_path, essays, static_model)
    rag = RAG.open(index)
    stop = threading.Event()
    counts = {"queries": 0, "empty": 0}
    errors: list[str] = []

    def loop(worker: int) -> None:
        n = worker
        while not stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            try:
                hits = rag.retrieve(query, mode=["hybrid", "dense"][n % 2])
            except Exception as exc:  # noqa: BLE001 - every error is a failure
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            counts["queries"] += 1
            counts["empty"] += not hits

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        report = rag.reindex("packaged")
        after = counts["queries"]
        deadline = time.monotonic() + 30
        while counts["queries"] < after + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    print(f"\n{counts['queries']} queries during/after a {report.seconds:.1f} s re-index of "
          f"{report.chunks} chunks: {len(errors)} errors, {counts['empty']} empty")
    assert report.switched and report.embedded == report.chunks > 300
    assert not errors, errors[:3]
    assert counts["empty"] == 0 and counts["queries"] > 40
    assert rag.embedder.fingerprint == embedder.fingerprint
    assert rag.index.check().ok
    rag.close()


def test_kill_9_mid_reindex_leaves_the_old_index_serving_and_the_next_run_resumes(
        tmp_path, essays, static_model):
    index = static_index(tmp_path, essays, static_model)
    proc = subprocess.Popen(
        rag_cmd("reindex", "--index", str(index), "--embedding-model", "packaged",
                "--set", "reindex_batch_chunks=16"),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    done, total, seen = kill_at_progress(proc, 1 / 3)  # a third embedded
    assert 0 < done < total, seen[-2000:].decode(errors="replace")

    # The old index answers, with its own model, and says a re-index was left unfinished.
    answered = subprocess.run(rag_cmd("retrieve", QUERIES[0], "--index", str(index), "--json"),
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["results"]
    stats = json.loads(subprocess.run(rag_cmd("stats", "--json", "--index", str(index)),
                                      cwd=REPO, capture_output=True, text=True,
                                      timeout=300).stdout)
    assert stats["index_settings"]["dimension"] == 256
    assert stats["unfinished_reindex"]["collection"] == "rag_chunks_v2"

    again = subprocess.run(rag_cmd("reindex", "--index", str(index), "--embedding-model",
                                   "packaged", "--json"),
                           cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    print(f"\nkilled at {done}/{total}; the next run found {report['already']} rows and "
          f"embedded {report['embedded']} in {report['seconds']} s")
    assert report["switched"] and report["note"] == "resuming an interrupted re-index"
    assert report["already"] >= done - 16 and report["already"] + report["embedded"] == total


READER = r"""
import json, sys, time
from pathlib import Path
from rag.api import RAG
index, uri, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
rag = RAG.open(index, milvus_uri=uri, ocr="never")
queries = ["how to start a startup", "what makes a good essay", "raising money from investors"]
n = errors = empty = 0
seen = set()
first_error = ""
while not stop.exists():
    try:
        hits = rag.retrieve(queries[n % 3], mode="hybrid")
        empty += not hits
        seen.add(rag.index.dense.collection)
    except Exception as exc:
        errors += 1
        first_error = first_error or f"{type(exc).__name__}: {exc}"
    n += 1
print(json.dumps({"queries": n, "errors": errors, "empty": empty, "first_error": first_error,
                  "collections": sorted(seen), "final": rag.index.dense.collection}))
rag.close()
"""


@pytest.mark.parametrize("server", ["lite_server", "milvus_server"])
def test_another_process_queries_through_the_reindex_and_follows_the_switch(
        request, tmp_path, essays, static_model, server):
    uri = request.getfixturevalue(server)
    # A collection name of its own: the servers are shared by the module's tests.
    settings = {"milvus_uri": uri, "collection": f"pg_{server}"}
    index = static_index(tmp_path, essays, static_model, **settings)
    stop = tmp_path / "stop"
    env = {**os.environ, "RAG_COLLECTION": settings["collection"]}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(index), uri, str(stop)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    time.sleep(5)
    out = subprocess.run(rag_cmd("reindex", "--index", str(index), "--embedding-model", "packaged",
                                 "--set", f"milvus_uri={uri}", "--json"),
                         cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    time.sleep(5)  # the reader follows the switch within a second of its next query
    stop.touch()
    stdout, stderr = reader.communicate(timeout=120)
    assert reader.returncode == 0, stderr[-2000:]
    seen = json.loads(stdout.strip().splitlines()[-1])
    report = json.loads(out.stdout)
    print(f"\n{server}: {seen['queries']} queries in another process during a "
          f"{report['seconds']} s re-index: {seen['errors']} errors, {seen['empty']} empty; "
          f"served from {seen['collections']}")
    assert report["switched"]
    assert seen["errors"] == 0 and seen["empty"] == 0, seen
    assert seen["queries"] > 20
    assert seen["final"] == report["collection"] == f"pg_{server}_v2"

    # Rollback through the server as well.
    back = subprocess.run(rag_cmd("reindex", "--index", str(index), "--rollback", "--json",
                                  "--set", f"milvus_uri={uri}"),
                          cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert back.returncode == 0, back.stderr[-2000:]
    rolled = json.loads(back.stdout)
    assert rolled["switched"] and rolled["collection"] == f"pg_{server}" and rolled["embedded"] == 0
