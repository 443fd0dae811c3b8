"""Upload names, sizes and types are checked before anything is written, and nothing is ever
written outside the collection's upload area."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ui.upload import UploadRejected, ingest_files, safe_name, store

BAD_NAMES = ["../../etc/passwd", "/etc/passwd", "..", ".", "a/b.txt", "..\\..\\win.ini",
             "C:\\x.txt", "notes\x00.txt", "bell\x07.txt", ".bashrc", "x" * 200 + ".txt"]


def tree(root: Path) -> set[str]:
    """Every path under `root` (files and folders), relative, to compare before and after."""
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(folder, name), root))
    return out


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused(name):
    with pytest.raises(UploadRejected):
        safe_name(name)


def test_nothing_is_written_outside_the_upload_area(tmp_path):
    area = tmp_path / "root" / "c1" / "files"
    area.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    good = tmp_path / "in" / "notes.md"
    good.parent.mkdir()
    good.write_text("# Notes\nThe kettle whistles at 100 degrees.\n")
    empty = tmp_path / "in" / "empty.txt"
    empty.write_bytes(b"")
    big = tmp_path / "in" / "big.txt"
    big.write_bytes(b"a" * 4096)
    exe = tmp_path / "in" / "tool.exe"
    exe.write_bytes(b"MZ")
    before = tree(tmp_path)

    messages = {}
    for name, path in [*[(n, good) for n in BAD_NAMES], ("empty.txt", empty), ("big.txt", big),
                       ("tool.exe", exe)]:
        with pytest.raises(UploadRejected) as refused:
            store(area, path, name, max_bytes=1024)
        messages[name] = str(refused.value)
    assert "empty (0 bytes)" in messages["empty.txt"]
    assert "over the" in messages["big.txt"] and "MB limit" in messages["big.txt"]
    assert "type '.exe'" in messages["tool.exe"]
    assert "a path, not a file name" in messages["../../etc/passwd"]
    assert "a path, not a file name" in messages["/etc/passwd"]
    assert "NUL or control character" in messages["notes\x00.txt"]
    assert tree(tmp_path) == before  # nothing written anywhere, not even a partial file

    stored = store(area, good, "notes.md", max_bytes=1024)
    assert stored == area.resolve() / "notes.md"
    assert tree(tmp_path) == before | {"root/c1/files/notes.md"}


class FakeRag:
    """Stands in for the index here: this test is about the upload area, not ingestion."""

    def ingest(self, paths):
        from ingestion.results import FileResult

        return [FileResult(str(p), "added", 1) for p in paths]


def test_a_refused_file_among_good_ones_gets_its_own_line(tmp_path):
    area = tmp_path / "files"
    good = tmp_path / "ok.txt"
    good.write_text("fine")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    lines = [str(line) for _, _, line in ingest_files(
        FakeRag(), area, [("ok.txt", good), ("../evil.txt", good), ("empty.txt", empty)],
        max_bytes=1024, lock=threading.Lock(), cancel=threading.Event())]
    assert lines[0].startswith("added") and "ok.txt" in lines[0]
    assert lines[1].startswith("rejected") and "a path, not a file name" in lines[1]
    assert lines[2].startswith("rejected") and "0 bytes" in lines[2]
    assert tree(tmp_path) == {"ok.txt", "empty.txt", "files", "files/ok.txt"}


def test_cancel_stops_before_the_next_file(tmp_path):
    good = tmp_path / "ok.txt"
    good.write_text("fine")
    cancel = threading.Event()

    class PressedCancel(FakeRag):
        def ingest(self, paths):
            cancel.set()  # the user presses Cancel while the first file is being indexed
            return super().ingest(paths)

    lines = [line.status for _, _, line in ingest_files(
        PressedCancel(), tmp_path / "files", [("a.txt", good), ("b.txt", good), ("c.txt", good)],
        max_bytes=1024, lock=threading.Lock(), cancel=cancel)]
    assert lines == ["added", "cancelled", "cancelled"]
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["a.txt"]
