"""Mistakes a new user makes get one line and exit 2, and change nothing on disk: a typo in
--index, a folder that holds no index, an empty question, a damaged catalog."""

from __future__ import annotations

from functools import partial

import pytest

from rag.api import RAG
from rag.cli import main


@pytest.mark.parametrize("argv", [["ask", "How long should green tea steep?"],
                                  ["retrieve", "green tea"], ["stats"], ["chat"],
                                  ["delete", "notes.md"]])
def test_read_only_commands_refuse_a_folder_without_an_index(tmp_path, capsys, argv):
    typo = tmp_path / "rag_idnex"
    assert main([*argv, "--index", str(typo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and "rag ingest" in err
    assert not typo.exists()  # nothing was created
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*argv, "--index", str(empty)]) == 2
    assert "holds no index" in capsys.readouterr().err
    assert list(empty.iterdir()) == []


def test_set_index_dir_is_the_same_as_index(tmp_path, capsys):
    typo = tmp_path / "rag_idnex"
    assert main(["stats", "--set", f"index_dir={typo}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rag: error: {typo}: does not exist; create one with `rag ingest PATH... " \
                  f"--index {typo}`"
    assert main(["stats", "--index", str(tmp_path / "a"), "--set", f"index_dir={typo}"]) == 2
    assert "name two indexes; give one" in capsys.readouterr().err
    assert main(["config", "--set", f"index_dir={typo}"]) == 0
    assert str(typo) in capsys.readouterr().out and not typo.exists()


@pytest.mark.parametrize("argv", [["ask", ""], ["ask", "   \t"], ["retrieve", " "]])
def test_an_empty_question_is_a_usage_error(tmp_path, capsys, argv):
    assert main([*argv, "--index", str(tmp_path / "index")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rag: error: the ") and "is empty" in err and "\n" not in err


def test_a_damaged_catalog_is_one_line_naming_the_file(tmp_path, embedder, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "tea.md").write_text("Green tea steeps for two minutes in water at eighty degrees.\n")
    shared = partial(RAG.open, embedder=embedder)
    assert main(["ingest", str(notes), "--index", str(tmp_path / "index"), "--quiet"],
                open_rag=shared) == 0
    catalog = tmp_path / "index" / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        catalog.with_name(catalog.name + suffix).unlink(missing_ok=True)
    catalog.write_bytes(b"this is not a database" * 100)
    capsys.readouterr()
    for argv in (["retrieve", "green tea"], ["stats"]):
        assert main([*argv, "--index", str(tmp_path / "index")], open_rag=shared) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(catalog) in err and "damaged" in err, err
