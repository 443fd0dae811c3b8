"""`rag ingest --engine ray` on a private local Ray (no cluster to start): the fast guard of the
Ray engine. The slow suite (tests/rag/test_scale_out.py) runs it on a two-node cluster into a
Milvus server; this one runs on every change, because the pipeline's calls into the Ray parts
changed once without the slow suite noticing (every file failed with a TypeError)."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the scale extra (Ray) is not installed")

from ingestion.preparation import FilePreparer  # noqa: E402
from ingestion.ray_engine import RayPreparer  # noqa: E402
from retrievers.catalog import LIVE, Catalog  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "tests" / "data" / "documents"


def test_the_ray_preparer_takes_every_argument_the_file_preparer_takes():
    ours = set(inspect.signature(RayPreparer.prepare).parameters)
    theirs = set(inspect.signature(FilePreparer.prepare).parameters)
    assert theirs <= ours, f"RayPreparer.prepare lacks {sorted(theirs - ours)}"


def live_ids(index: Path) -> set[str]:
    catalog = Catalog(index / "catalog.sqlite")
    try:
        return set(catalog.ids_in_state(LIVE))
    finally:
        catalog.close()


def ingest(index: Path, folder: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "rag", "ingest", str(folder), "--index", str(index), "--json",
         *extra],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_ray_ingest_on_a_private_local_ray_gives_the_embedded_runs_chunk_ids(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for name in ("crazyones.pdf", "stanley-cups.csv"):
        shutil.copy(DOCS / name, folder / name)
    embedded = ingest(tmp_path / "embedded", folder)
    on_ray = ingest(tmp_path / "ray", folder, "--engine", "ray")
    assert [f["status"] for f in on_ray["files"]] == ["added", "added"], on_ray["files"]
    assert on_ray["totals"]["chunks"] == embedded["totals"]["chunks"] > 0
    assert live_ids(tmp_path / "ray") == live_ids(tmp_path / "embedded")
