"""Odd names and places: names with newlines, quotes and bytes that are not UTF-8, very long
paths, link loops, FIFOs, unreadable files, files that change or vanish while being read. Each
file ingests or fails alone with one line naming it; the CLI prints every result on one line;
the index from before is intact (same chunk ids, `rag stats --check` clean)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

from ingestion.chunking import Chunker
from ingestion.loaders import LOADERS, load_text
from ingestion.pipeline import IngestionPipeline
from rag.api import RAG
from rag.cli import main

TEA = "Green tea steeps for two minutes in water at eighty degrees.\n"


def indexed(tmp_path: Path, embedder) -> tuple[str, set[str]]:
    """An index over one good note, and its chunk ids."""
    good = tmp_path / "good"
    good.mkdir()
    (good / "tea.md").write_text(TEA)
    index = str(tmp_path / "index")
    assert main(["ingest", str(good), "--index", index, "--quiet"],
                open_rag=partial(RAG.open, embedder=embedder)) == 0
    rag = RAG.open(index, embedder=embedder)
    ids = rag.index.live_ids()
    rag.close()
    return index, ids


def assert_intact(index: str, ids: set[str], embedder) -> None:
    assert main(["stats", "--check", "--index", index], open_rag=partial(RAG.open, embedder=embedder)) == 0
    rag = RAG.open(index, embedder=embedder)
    assert ids <= rag.index.live_ids()
    rag.close()


def ingest_lines(index: str, paths: list[str], embedder, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["ingest", *paths, "--index", index, "--quiet"],
                open_rag=partial(RAG.open, embedder=embedder))
    return code, capsys.readouterr().out.splitlines()


def test_names_with_newlines_quotes_and_other_scripts_ingest_and_print_on_one_line(
        tmp_path, embedder, capsys):
    index, ids = indexed(tmp_path, embedder)
    odd = tmp_path / "odd"
    odd.mkdir()
    names = ["two\nlines.md", "it's \"quoted\".md", "tab\there.md", "naïve café 茶.md",
             "escape \x1b[31mred.md"]
    for k, name in enumerate(names):
        (odd / name).write_text(f"# Note {k}\n\nOolong number {k} steeps for {k + 2} minutes.\n")
    code, lines = ingest_lines(index, [str(odd)], embedder, capsys)
    assert code == 0
    assert len(lines) == len(names) + 1 and lines[-1].startswith("done: 5 files")
    assert all(line.startswith("added") for line in lines[:-1])
    assert any(r"'" + str(odd) + r"/two\nlines.md'" in line for line in lines)
    assert any(r"escape \x1b[31mred.md" in line for line in lines)
    assert any("naïve café 茶.md (1 chunks)" in line for line in lines)  # printable: as it is
    assert_intact(index, ids, embedder)


def test_a_name_that_is_not_utf8_fails_alone_with_its_bytes_shown(tmp_path, embedder, capsys):
    index, ids = indexed(tmp_path, embedder)
    odd = tmp_path / "odd"
    odd.mkdir()
    latin1 = os.path.join(os.fsencode(odd), b"caf\xe9.md")
    with open(latin1, "wb") as handle:
        handle.write(TEA.encode())
    (odd / "fine.md").write_text("Black tea steeps for four minutes.\n")
    code, lines = ingest_lines(index, [str(odd)], embedder, capsys)
    assert code == 3
    assert f"failed     '{odd}/caf\\xe9.md': file name is not valid UTF-8 (byte 0xe9); " \
           "rename it to index it" in lines
    assert any(line.startswith("added") and "fine.md" in line for line in lines)
    code, json_lines = ingest_lines(index, [str(odd), "--json"], embedder, capsys)
    assert code == 3 and '"status": "failed"' in "\n".join(json_lines)  # JSON escapes it too
    assert_intact(index, ids, embedder)


def test_links_loops_fifos_and_paths_too_long_each_fail_alone(tmp_path, embedder, capsys):
    index, ids = indexed(tmp_path, embedder)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "real.md").write_text("White tea steeps for five minutes at seventy degrees.\n")
    (odd / "link-to-real.md").symlink_to(odd / "real.md")  # the same file: read once
    (odd / "loop-a.md").symlink_to(odd / "loop-b.md")
    (odd / "loop-b.md").symlink_to(odd / "loop-a.md")
    (odd / "gone.md").symlink_to(odd / "missing.md")
    (odd / "up").symlink_to(odd)  # a folder loop: not followed
    os.mkfifo(odd / "pipe.txt")  # reading it would block for ever
    deep = os.open(odd, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 250 characters: past PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=deep)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=deep)
            os.close(deep)
            deep = inner
        fd = os.open("deep.md", os.O_CREAT | os.O_WRONLY, dir_fd=deep)
        os.write(fd, TEA.encode())
        os.close(fd)
    finally:
        os.close(deep)
    longest = odd / ("n" * 252 + ".md")  # the longest name Linux allows (255 bytes)
    longest.write_text("Pu-erh steeps for three minutes.\n")
    fifo_given = str(odd / "pipe.txt")
    code, lines = ingest_lines(index, [str(odd), fifo_given, str(odd / "loop-a.md")], embedder,
                               capsys)
    assert code == 3, lines
    by_name: dict[str, list[str]] = {}
    for line in lines[:-1]:
        name = line.split(str(odd) + "/", 1)[1].split(":", 1)[0].split(" (", 1)[0]
        by_name.setdefault(name.split("/")[0], []).append(line)
    assert by_name["real.md"][0].startswith("added"), lines
    assert "link-to-real.md" not in by_name  # same file as real.md, read once
    assert by_name["loop-a.md"] == [f"failed     {odd}/loop-a.md: symbolic link loop (the link "
                                    "leads back to itself)"] * 2  # in the folder, and given
    assert by_name["loop-b.md"][0].endswith("symbolic link loop (the link leads back to itself)")
    assert by_name["gone.md"][0].endswith(f"broken link: its target '{odd}/missing.md' does not exist")
    assert all(line.endswith("not a regular file (a FIFO); only regular files are read")
               for line in by_name["pipe.txt"]) and len(by_name["pipe.txt"]) == 2
    assert "up" not in by_name
    [deep_line] = by_name["d" * 250]
    assert deep_line.startswith("failed") and deep_line.endswith("cannot list folder: File name too long")
    assert by_name["n" * 252 + ".md"][0].startswith("added")
    assert_intact(index, ids, embedder)


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as root here: root reads a chmod 000 file, so "
                    "the permission error cannot happen (the FIFO test covers unreadable files)")
def test_an_unreadable_file_fails_alone_naming_it(tmp_path, embedder, capsys):
    index, ids = indexed(tmp_path, embedder)
    odd = tmp_path / "odd"
    odd.mkdir()
    locked = odd / "locked.md"
    locked.write_text(TEA)
    locked.chmod(0)
    code, lines = ingest_lines(index, [str(odd)], embedder, capsys)
    assert code == 3
    assert lines[0] == f"failed     {locked}: [Errno 13] Permission denied: '{locked}'"
    assert_intact(index, ids, embedder)


def test_files_that_change_or_vanish_while_read_fail_alone_and_come_in_next_time(tmp_path, embedder):
    """Loaders passed to the pipeline stand in for another process writing or deleting files
    while the ingest reads them (a race no real file can be made to lose on cue)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    (folder / "tea.md").write_text(TEA)
    assert rag.ingest([folder])[0].status == "added"
    before = rag.index.live_ids()

    def growing(path: Path):  # a log still being written
        sections = load_text(path)
        with open(path, "a") as handle:
            handle.write("One more line written while the ingest read the file.\n")
        return sections

    def deleting(path: Path):  # reads, then another process removes this file and a later one
        sections = load_text(path)
        path.unlink()
        (folder / "z_later.md").unlink()
        return sections

    (folder / "a_growing.grow").write_text("Rooibos steeps for six minutes.\n")
    (folder / "b_deleted.del").write_text("Mate steeps for five minutes.\n")
    (folder / "z_later.md").write_text("Chai simmers for ten minutes.\n")
    loaders = {**LOADERS, ".grow": growing, ".del": deleting}
    chunker = Chunker(embedder.count_tokens, 254, 32)
    pipeline = IngestionPipeline(rag.index, embedder, chunker, show_progress=False, loaders=loaders,
                                 read_ahead=0)
    results = {Path(r.path).name: r for r in pipeline.ingest([folder])}
    grown = results["a_growing.grow"]
    assert grown.status == "failed" and grown.error.startswith("file changed size (")
    assert "while it was read; not indexed this time, ingest again" in grown.error
    assert results["b_deleted.del"].error.startswith("file vanished while it was read")
    assert results["z_later.md"].status == "failed"
    assert results["z_later.md"].error == (f"[Errno 2] No such file or directory: "
                                           f"'{folder / 'z_later.md'}'")
    assert results["tea.md"].status == "unchanged"
    assert before == rag.index.live_ids() and rag.index.check().ok
    again = {Path(r.path).name: r.status for r in
             IngestionPipeline(rag.index, embedder, chunker, show_progress=False,
                               loaders={**LOADERS, ".grow": load_text}).ingest([folder])}
    assert again == {"a_growing.grow": "added", "tea.md": "unchanged"}
    rag.close()
