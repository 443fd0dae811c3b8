"""`rag ingest --json`, `--prune`, `rag delete` and `rag stats --check` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rag.cli import main

DOCS = Path(__file__).resolve().parents[1] / "data" / "documents"


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_ingest_prune_delete_and_check(tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("crazyones.pdf", "fake-email.eml", "stanley-cups.csv"):
        shutil.copy(DOCS / name, notes / name)
    index = str(tmp_path / "index")

    code, out = run(capsys, "ingest", str(notes), "--index", index, "--json")
    report = json.loads(out)
    assert code == 0
    assert [Path(f["path"]).name for f in report["files"]] == ["crazyones.pdf", "fake-email.eml", "stanley-cups.csv"]
    assert {f["status"] for f in report["files"]} == {"added"} and report["totals"]["added"] == 3
    pdf_chunks = next(f["chunks"] for f in report["files"] if f["path"].endswith(".pdf"))

    (notes / "broken.docx").write_bytes(b"not a zip")
    (notes / "crazyones.pdf").unlink()
    code, out = run(capsys, "ingest", str(notes), "--index", index, "--prune", "--quiet")
    assert code == 3  # one file failed, the rest went through
    lines = out.splitlines()
    assert any(line.startswith("failed") and "broken.docx" in line and "not a DOCX" in line for line in lines)
    assert any(line.startswith("deleted") and "crazyones.pdf" in line and f"({pdf_chunks} chunks)" in line
               for line in lines)

    code, out = run(capsys, "delete", str(notes / "fake-email.eml"), "--index", index)
    assert code == 0 and "deleted" in out
    code, out = run(capsys, "stats", "--check", "--json", "--index", index)
    stats = json.loads(out)
    assert code == 0 and stats["sources"] == 1 and stats["check"]["ok"]
    assert stats["check"]["bm25"] == stats["check"]["dense"] == stats["chunks"] > 0
