"""A disk that fills up during an ingest: one line saying so, the index opens and answers while
the disk is still full, and once there is room it cleans up and the ingest completes.

The index lives on a small tmpfs mounted for the test (needs root, as in CI here; skipped
elsewhere), filled up to a few hundred kilobytes before the second ingest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest

from rag.api import RAG
from rag.cli import main

ESSAYS = Path(__file__).resolve().parents[3] / "shared" / "data" / "qa" / "paul_graham" / "essays"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    stat = os.statvfs(disk)
    filler = disk / "filler"
    subprocess.run(["fallocate", "-l", str(stat.f_bavail * stat.f_frsize - leave_bytes), str(filler)],
                   check=True)
    return filler


def test_a_full_disk_stops_the_ingest_with_one_line_and_loses_nothing(small_disk, tmp_path,
                                                                      embedder, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "rag" / "sample" / "tea_brewing_guide.md", first)
    for essay in sorted(ESSAYS.glob("*.txt"))[:12]:
        shutil.copy(essay, second)
    index = small_disk / "index"
    shared = partial(RAG.open, embedder=embedder)
    assert main(["ingest", str(first), "--index", str(index), "--quiet"], open_rag=shared) == 0
    with RAG.open(index, embedder=embedder) as rag:
        before = set(rag.index.catalog.ids_in_state("live"))
    filler = fill(small_disk, 300 << 10)
    capsys.readouterr()

    assert main(["ingest", str(second), "--index", str(index), "--quiet"], open_rag=shared) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the disk is full" in err[0] and str(index) in err[0], err

    # still full: the index opens and answers from what was there before
    assert main(["retrieve", "green tea", "--index", str(index), "--top-k", "1"], open_rag=shared) == 0
    assert "tea_brewing_guide.md" in capsys.readouterr().out

    filler.unlink()  # room again: the leftovers are cleaned up and the ingest completes
    assert main(["stats", "--check", "--index", str(index)], open_rag=shared) == 0
    with RAG.open(index, embedder=embedder) as rag:
        assert set(rag.index.catalog.ids_in_state("live")) == before
    assert main(["ingest", str(second), "--index", str(index), "--quiet"], open_rag=shared) == 0
    assert main(["stats", "--check", "--index", str(index)], open_rag=shared) == 0
