"""Write a dev corpus kept as JSONL (one `{"title", "text"}` paragraph a line) out as the
folder of text files `rag ingest` reads: one file per title, its title on the first line and
its paragraphs after it, blank lines between.

Why: a Wikipedia-style corpus of ~1,800 paragraphs is one reviewable file in git, but a user's
documents are files with names; the folder is what both pipelines ingest (README "Evaluation",
the MuSiQue dev set). File names are made from titles by `file_name`, which the question file's
`source_docs` use too.

    .venv/bin/python -m eval.corpus_files eval/corpora/musique_dev.jsonl OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

UNSAFE = re.compile(r"[^\w .,'()&+-]+")
MAX_STEM = 120


def file_name(title: str) -> str:
    """A portable file name for a title: characters outside a safe set become "_", no leading
    dots, at most MAX_STEM characters before ".txt"."""
    stem = UNSAFE.sub("_", title).strip(" .") or "untitled"
    return stem[:MAX_STEM].rstrip(" .") + ".txt"


def read_paragraphs(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("title"), str) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{n}: a row needs string fields title and text")
            rows.append(row)
    return rows


def files_by_title(rows: list[dict]) -> dict[str, str]:
    """title -> file name, unique even where two titles make the same name (" (2)" added)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for row in rows:
        title = row["title"]
        if title in names:
            continue
        name = file_name(title)
        stem, n = name[:-4], 2
        while name.lower() in taken:
            name, n = f"{stem} ({n}).txt", n + 1
        names[title] = name
        taken.add(name.lower())
    return names


def write_corpus(jsonl: Path, out_dir: Path) -> dict[str, str]:
    """Write the folder (replacing files of the same names) and return title -> file name."""
    rows = read_paragraphs(jsonl)
    names = files_by_title(rows)
    texts: dict[str, list[str]] = {}
    for row in rows:
        texts.setdefault(row["title"], []).append(row["text"].strip())
    out_dir.mkdir(parents=True, exist_ok=True)
    for title, paragraphs in texts.items():
        (out_dir / names[title]).write_text("\n\n".join([title, *paragraphs]) + "\n", encoding="utf-8")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=Path, help="paragraphs, one {title, text} a line")
    parser.add_argument("out_dir", type=Path, help="folder to write the text files to")
    opts = parser.parse_args(argv)
    names = write_corpus(opts.jsonl, opts.out_dir)
    print(f"{len(names)} files written to {opts.out_dir}")


if __name__ == "__main__":
    main()
