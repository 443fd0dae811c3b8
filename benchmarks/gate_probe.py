"""Every question file through retrieval and the decline gate, with no answer written.

Why: a change to retrieval or to the BM25 tokenizer moves two things a user notices, the contexts
served and the questions declined before the model is asked, and both can be read off one
`rag.stream` call per question without generating (~0.5 s a question on 2 cores: the dev and
batch files of the four corpora, 1,472 questions, in ~10 min, where writing the answers takes
hours). For each question it records the served chunks, Recall@5 of the served top 5 against
the reference contexts (the evaluation suite's own `is_hit`; the suite's recall@5 equals its
served_recall unless a setting swaps hits at serve time, as `cover_names` does), whether the
gate declines, and the names no served context or document holds.

Run once per side (each corpus's index by name; `--set KEY=VALUE` for a side's setting), then
compare the two JSON files:
    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/gate_probe.py run --out BEFORE.json \\
        --index paul_graham=IDX_PG --index blockchain_solana=IDX_SOLANA --index aragog_arxiv=IDX_ARAGOG
    .venv/bin/python benchmarks/gate_probe.py compare BEFORE.json AFTER.json [--write DIR]

`--write DIR` puts the questions whose gate decision or served contexts changed in one question
file per corpus (DIR/changed_CORPUS.jsonl), to answer end to end on both sides with `rag eval`.
For a setting that acts before generation this measures its whole end-to-end effect in minutes
where every file takes hours: a question whose gate and served chunks are the same on both sides
gets the same prompt, so the same answer (generation is greedy). Not for settings that change
the prompt or the generation itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa"
CORPORA = ("paul_graham", "blockchain_solana", "aragog_arxiv", "musique")


def question_files(corpus: str) -> list[Path]:
    """The committed question files about `corpus`, and its shared long set where it has one
    (MuSiQue's corpus is in the repository: eval/corpora/README.md)."""
    files = sorted((REPO / "eval" / "questions").glob(f"*_{corpus}.jsonl"))
    shared = QA / corpus / "normalized.jsonl"
    return files + [shared] if shared.is_file() else files


def file_key(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.name == "normalized.jsonl" else path.name


def run(indexes: dict[str, str], out: Path, overrides: dict[str, str] | None = None) -> None:
    from eval.retrieval_metrics import is_hit, recall_at
    from rag.api import RAG

    results: dict[str, list[dict]] = {}
    started = time.perf_counter()
    for corpus, index in indexes.items():
        with RAG.open(index, **(overrides or {})) as rag:
            for path in question_files(corpus):
                rows = []
                for line in path.read_text().splitlines():
                    if not line.strip():
                        continue
                    case = json.loads(line)
                    stream = rag.stream(case["question"])
                    refs = case.get("reference_contexts") or []
                    hits = [[is_hit(h.chunk.text, ref) for ref in refs] for h in stream.hits]
                    recall = recall_at(hits, 5, len(refs)) if refs else None
                    rows.append({"id": case["id"], "corpus": corpus,
                                 "answerable": case.get("answerable", True) is not False,
                                 "declined": bool(stream.gated),
                                 "missing_names": list(stream.evidence.missing_names),
                                 "recall@5": recall, "served": [h.chunk.chunk_id for h in stream.hits]})
                results[file_key(path)] = rows
                print(f"{file_key(path)}: {len(rows)} questions, {sum(r['declined'] for r in rows)} "
                      f"declined ({time.perf_counter() - started:.0f} s)", flush=True)
    out.write_text(json.dumps(results))


def paired(b_all: dict, a_all: dict) -> Iterator[tuple[str, dict, dict]]:
    """(file key, before row, after row) for each question both runs probed, files in order."""
    for key in sorted(set(b_all) & set(a_all)):
        after_rows = {r["id"]: r for r in a_all[key]}
        for b in b_all[key]:
            if b["id"] in after_rows:
                yield key, b, after_rows[b["id"]]


def changed_questions(b_all: dict, a_all: dict) -> dict[str, set[str]]:
    """File key -> ids of the questions whose gate decision or served chunks differ."""
    changed: dict[str, set[str]] = defaultdict(set)
    for key, b, a in paired(b_all, a_all):
        if (b["declined"], b["served"]) != (a["declined"], a["served"]):
            changed[key].add(b["id"])
    return changed


def write_changed(b_all: dict, a_all: dict, out: Path) -> dict[str, int]:
    """DIR/changed_CORPUS.jsonl: the changed questions as their files hold them; corpus -> count."""
    changed = changed_questions(b_all, a_all)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for corpus in CORPORA:
        rows = [line for path in question_files(corpus) for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["id"] in changed.get(file_key(path), ())]
        if rows:
            (out / f"changed_{corpus}.jsonl").write_text("\n".join(rows) + "\n")
            written[corpus] = len(rows)
    return written


def compare(before: Path, after: Path, write: Path | None = None) -> None:
    b_all, a_all = json.loads(before.read_text()), json.loads(after.read_text())
    pooled = defaultdict(lambda: [0.0, 0.0, 0])  # corpus -> before, after, questions (short batches)
    declined = {True: [0, 0], False: [0, 0]}  # answerable -> before, after
    changed = []
    for key, b, a in paired(b_all, a_all):
        if key.startswith("short_answers") and b["recall@5"] is not None:
            sums = pooled[b["corpus"]]
            sums[0] += b["recall@5"]
            sums[1] += a["recall@5"]
            sums[2] += 1
        declined[b["answerable"]][0] += b["declined"]
        declined[b["answerable"]][1] += a["declined"]
        if (b["declined"], b["missing_names"], b["recall@5"]) != (
                a["declined"], a["missing_names"], a["recall@5"]):
            changed.append(f"{key} {b['id']}: declined {b['declined']} -> {a['declined']}, "
                           f"names {b['missing_names']} -> {a['missing_names']}, "
                           f"recall@5 {b['recall@5']} -> {a['recall@5']}")
    for corpus, (x, y, n) in pooled.items():
        print(f"short batches, pooled recall@5, {corpus} ({n}): {x / n:.4f} -> {y / n:.4f}")
    print(f"declined before generation: answerable {declined[True][0]} -> {declined[True][1]}, "
          f"unanswerable {declined[False][0]} -> {declined[False][1]}")
    print(f"{len(changed)} questions changed:", *changed, sep="\n  ")
    if write is not None:
        for corpus, count in write_changed(b_all, a_all, write).items():
            print(f"{write / f'changed_{corpus}.jsonl'}: {count} questions whose gate or served "
                  f"contexts changed (answer both sides: rag eval FILE --index IDX --no-judge [--set ...])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="probe every question file of the corpora given")
    go.add_argument("--index", action="append", default=[], metavar="CORPUS=DIR",
                    help=f"a corpus ({', '.join(CORPORA)}) and its index (repeatable)")
    go.add_argument("--out", type=Path, required=True)
    go.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting, as `rag --set` (repeatable)")
    both = sub.add_parser("compare", help="what changed between two runs")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    both.add_argument("--write", type=Path, metavar="DIR",
                      help="write the questions whose gate or served contexts changed, per corpus")
    args = parser.parse_args()
    if args.command == "compare":
        compare(args.before, args.after, args.write)
        return
    indexes = dict(item.split("=", 1) for item in args.index)
    unknown = set(indexes) - set(CORPORA)
    if unknown or not indexes:
        parser.error(f"--index CORPUS=DIR with CORPUS one of {', '.join(CORPORA)}")
    run(indexes, args.out, dict(item.split("=", 1) for item in args.set))


if __name__ == "__main__":
    main()
