"""Every index file that can be damaged has a defined reaction: rebuilt from the catalog (the
record everything else is checked against), or one line naming the file and the fix, which
then works. The catalog itself is covered in test_cli_errors.py."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from rag.api import RAG
from rag.cli import main

MILVUS = Path("milvus.db")
COLLECTION = MILVUS / "collections" / "rag_chunks"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def first(index: Path, pattern: str) -> Path:
    return sorted(index.glob(pattern))[0]


# name -> (damage done to the index folder, what a read command then does: "rebuilt" or
# "one line" naming the file and `rag stats --check --repair`)
DAMAGE = {
    "milvus folder deleted": (lambda i: shutil.rmtree(i / MILVUS), "rebuilt"),
    "segment truncated": (lambda i: truncate(first(i, f"{COLLECTION}/partitions/_default/data/*")),
                          "one line"),
    "vector index truncated": (lambda i: truncate(first(i, f"{COLLECTION}/partitions/_default/indexes/*")),
                               "one line"),
    "schema not JSON": (lambda i: (i / COLLECTION / "schema.json").write_text("{"), "one line"),
    "manifest not JSON": (lambda i: (i / COLLECTION / "manifest.json").write_text("garbage"),
                          "rebuilt"),
    "bm25 snapshot garbage": (lambda i: (i / "bm25.npz").write_bytes(b"garbage"), "rebuilt"),
}


@pytest.fixture(scope="module")
def built_index(tmp_path_factory, embedder) -> tuple[Path, set[str]]:
    sample = Path(__file__).resolve().parents[2] / "rag" / "sample"
    docs = tmp_path_factory.mktemp("docs")
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt"):
        shutil.copy(sample / name, docs / name)
    index = tmp_path_factory.mktemp("base") / "index"
    with RAG.open(index, embedder=embedder) as rag:
        rag.ingest([docs])
        ids = set(rag.index.catalog.ids_in_state("live"))
    return index, ids


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_index_files_are_rebuilt_or_named_with_a_fix_that_works(
        name, built_index, tmp_path, embedder, capsys):
    base, ids = built_index
    index = tmp_path / "index"
    shutil.copytree(base, index)
    damage, reaction = DAMAGE[name]
    damage(index)
    shared = partial(RAG.open, embedder=embedder)
    capsys.readouterr()
    code = main(["retrieve", "green tea steeping", "--index", str(index)], open_rag=shared)
    out, err = capsys.readouterr()
    if reaction == "rebuilt":
        assert code == 0 and "tea_brewing_guide.md" in out, err
    else:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, err
        assert str(index / MILVUS) in lines[0] and "damaged" in lines[0]
        assert f"rag stats --check --repair --index {index}" in lines[0]
    assert "Traceback" not in err
    assert main(["stats", "--check", "--repair", "--index", str(index)], open_rag=shared) == 0
    assert main(["stats", "--check", "--index", str(index)], open_rag=shared) == 0
    with RAG.open(index, embedder=embedder) as rag:
        assert set(rag.index.catalog.ids_in_state("live")) == ids  # nothing was lost
        assert rag.index.dense.all_ids() == ids
        assert rag.retrieve("green tea steeping", top_k=1)[0].chunk.source.endswith(
            "tea_brewing_guide.md")
    if reaction == "one line":  # the damaged files are kept aside, not deleted
        assert list(index.glob("milvus.db.damaged-*"))


def test_a_garbled_settings_record_in_the_catalog_is_one_line(built_index, tmp_path, embedder, capsys):
    """The catalog opens but the record of how the index was built (model, dimension) is not
    JSON: one line naming the catalog, not a JSONDecodeError traceback."""
    import sqlite3

    index = tmp_path / "index"
    shutil.copytree(built_index[0], index)
    with sqlite3.connect(index / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = '{not json' WHERE key = 'index_settings'")
    capsys.readouterr()
    assert main(["retrieve", "green tea", "--index", str(index)],
                open_rag=partial(RAG.open, embedder=embedder)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(index / "catalog.sqlite") in err and "'index_settings'" in err
