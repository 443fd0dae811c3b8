"""Does fine-tuning the embedding model pay? Issue 22's acceptance figures on the shared dev sets.

For each dev set: `rag models finetune` on a copy of its prepared index (questions written by the
local LLM from the index's own chunks, never the set's labelled questions), then `rag models
compare` of the base model (`minilm-bf16`: the packaged MiniLM as the fine-tuned folders run
here, in bfloat16 where the CPU has it; its rankings equal fp32's) and every fine-tuned model
on the set's labelled questions, dense and hybrid. Each set's table therefore also shows how
the models tuned on the other sets do on it (what a model forgets).

ARAGOG's labelled questions carry no reference contexts: as in `benchmarks/tune_retrieval.py`
(`--answer-as-reference`), a chunk holding most (60%) of the reference answer's words counts as
relevant; the derived dataset is written to OUT/aragog_arxiv.answer_as_reference.jsonl and the
report says so. Questions about papers missing from the corpus stay unscored.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/finetune.py --out OUT \
        [--set paul_graham=/work/evalstate/idx_pg ...] [--questions-dir DIR] [--budget-min 8]

`--questions-dir DIR` reuses `DIR/gen_<set>.jsonl` (`rag eval generate` output) instead of
generating; each stage is skipped when its output exists (`--again` redoes them), so an
interrupted run resumes. Writes OUT/ft_<set>/ (the models), OUT/compare_<set>.{json,txt} and
OUT/summary.json, and prints the summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QA = REPO.parent / "shared" / "data" / "qa"
EVALSTATE = REPO.parent / "evalstate"
SETS = {  # name: (labelled questions, corpus folder, prepared index)
    "paul_graham": (QA / "paul_graham" / "normalized.jsonl", QA / "paul_graham" / "essays",
                    EVALSTATE / "idx_pg"),
    "blockchain_solana": (QA / "blockchain_solana" / "normalized.jsonl",
                          QA / "blockchain_solana" / "source_files", EVALSTATE / "idx_solana"),
    "aragog_arxiv": (QA / "aragog_arxiv" / "normalized.jsonl", QA / "aragog_arxiv" / "papers",
                     EVALSTATE / "idx_aragog"),
}
ANSWER_AS_REFERENCE = {"aragog_arxiv"}
BASE = "minilm-bf16"


def answer_as_reference(dataset: Path, target: Path) -> Path:
    """The dataset with each answerable case's reference answer as its reference context,
    where it has none (tune_retrieval's rule)."""
    rows = []
    for line in dataset.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        answerable = row.get("answerable", True) and not row.get("source_doc_missing")
        if not row.get("reference_contexts") and answerable and row.get("reference_answer"):
            row["reference_contexts"] = [row["reference_answer"]]
        rows.append(row)
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                      encoding="utf-8")
    return target


def main() -> int:
    from rag.cli import main as rag_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", metavar="NAME[=INDEX]",
                        help=f"dev sets (default: all of {', '.join(SETS)}), optionally with "
                             "the prepared index to copy")
    parser.add_argument("--questions-dir", type=Path, help="reuse DIR/gen_<set>.jsonl")
    parser.add_argument("--questions", type=int, default=150)
    parser.add_argument("--budget-min", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--no-hard-negatives", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--again", action="store_true", help="redo stages whose output exists")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for item in args.set or list(SETS):
        name, _, index = item.partition("=")
        chosen[name] = Path(index) if index else SETS[name][2]

    code = 0
    for name, index in chosen.items():
        model = out / f"ft_{name}"
        if model.is_dir() and not args.again:
            print(f"== {name}: {model} exists", flush=True)
            continue
        copy = out / f"index_{name}"
        if not copy.is_dir():  # never open the shared index itself: other processes use it
            shutil.copytree(index, copy)
        command = ["models", "finetune", "--index", str(copy), "--out", str(model),
                   "--budget-min", str(args.budget_min), "--seed", str(args.seed),
                   "--epochs", str(args.epochs), "--lr", str(args.lr),
                   "--questions", str(args.questions), "--quiet"]
        if args.no_hard_negatives:
            command.append("--no-hard-negatives")
        questions = args.questions_dir / f"gen_{name}.jsonl" if args.questions_dir else None
        if questions is not None and questions.is_file():
            command += ["--questions-file", str(questions)]
        started = time.perf_counter()
        print(f"== {name}: rag {' '.join(command)}", flush=True)
        code = max(code, rag_main(command))
        print(f"== {name}: {time.perf_counter() - started:.0f} s", flush=True)

    models = {name: out / f"ft_{name}" for name in SETS if (out / f"ft_{name}").is_dir()}
    if not args.skip_compare:
        for name in chosen:
            dataset, corpus, _ = SETS[name]
            if name in ANSWER_AS_REFERENCE:
                dataset = answer_as_reference(dataset, out / f"{name}.answer_as_reference.jsonl")
            result = out / f"compare_{name}.json"
            if result.is_file() and not args.again:
                continue
            command = ["models", "compare", str(dataset), "--corpus", str(corpus), "--model", BASE,
                       "--json", str(result), "--table", str(out / f"compare_{name}.txt")]
            for path in models.values():
                command += ["--model", str(path)]
            started = time.perf_counter()
            print(f"== compare {name}: rag {' '.join(command)}", flush=True)
            code = max(code, rag_main(command))
            print(f"== compare {name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(summarise(out, list(chosen), models))
    return code


def summarise(out: Path, names: list[str], models: dict[str, Path]) -> str:
    """A markdown table (and OUT/summary.json) of every scored set x model."""
    trained = {}
    for name, path in models.items():
        record = json.loads((path / "finetune.json").read_text())
        trained[str(path)] = {"set": name, "training": record["training"],
                              "validation": record["validation"], "data": record["data"]}
    rows = []
    for name in names:
        result = out / f"compare_{name}.json"
        if not result.is_file():
            continue
        candidates = json.loads(result.read_text())["candidates"]
        base = next((c for c in candidates if c["candidate"] == BASE and not c.get("failed")), None)
        for row in candidates:
            if row.get("failed") or row.get("skipped"):
                rows.append({"set": name, "model": row["candidate"],
                             "failed": row.get("failed") or row.get("skipped")})
                continue
            info = trained.get(row["candidate"], {})
            rows.append({"set": name, "model": "base" if row["candidate"] == BASE
                         else f"tuned on {info.get('set', row['candidate'])}",
                         "candidate": row["candidate"], "scored": row["dense"]["scored"],
                         **{f"{mode} {m}": row[mode][m] for mode in ("dense", "hybrid")
                            for m in ("recall@10", "mrr@10")},
                         "train_s": info.get("training", {}).get("seconds"),
                         "steps": info.get("training", {}).get("steps"),
                         "questions better/worse than base": paired(base, row)})
    (out / "summary.json").write_text(json.dumps({"rows": rows, "trained": trained,
                                                  "answer_as_reference": sorted(ANSWER_AS_REFERENCE)},
                                                 indent=1) + "\n")
    lines = ["| dev set | model | dense R@10 | dense MRR@10 | hybrid R@10 | hybrid MRR@10 | "
             "questions better/worse than base: dense R@10, dense MRR, hybrid R@10, hybrid MRR |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['set']} | {r['model']} | failed: {r['failed']} | | | |")
            continue
        label = r["set"] + (" (answer as reference)" if r["set"] in ANSWER_AS_REFERENCE else "")
        moved = r["questions better/worse than base"]
        lines.append(f"| {label} | {r['model']} | {r['dense recall@10']:.3f} | "
                     f"{r['dense mrr@10']:.3f} | {r['hybrid recall@10']:.3f} | "
                     f"{r['hybrid mrr@10']:.3f} | "
                     + (", ".join(f"+{u}/-{d}" for u, d in moved.values()) if moved else "-")
                     + " |")
    lines += ["", "| model | training pairs / validation | steps | training s | validation "
              "R@10 before -> after | MRR@10 before -> after |", "|---|---|---|---|---|---|"]
    for info in trained.values():
        v0, v1, t, d = (info["validation"]["before"], info["validation"]["after"],
                        info["training"], info["data"])
        lines.append(f"| tuned on {info['set']} | {d['train']} / {d['val']} | {t['steps']}/"
                     f"{t['planned']} | {t['seconds']:.0f} | {v0['recall@10']} -> "
                     f"{v1['recall@10']} | {v0['mrr@10']} -> {v1['mrr@10']} |")
    return "\n".join(lines)


def paired(base: dict | None, row: dict) -> dict[str, tuple[int, int]]:
    """Per metric, how many questions the row ranks better and worse than the base model
    (figures of a few dozen questions move by whole questions: this says how many)."""
    if base is None or row is base:
        return {}
    out = {}
    for mode in ("dense", "hybrid"):
        for metric in ("recall@10", "mrr@10"):
            ours, theirs = row[mode]["per_case"], base[mode]["per_case"]
            pairs = [(ours[k][metric], theirs[k][metric]) for k in ours
                     if k in theirs and ours[k][metric] is not None and theirs[k][metric] is not None]
            out[f"{mode} {metric}"] = (sum(1 for a, b in pairs if a > b + 1e-9),
                                       sum(1 for a, b in pairs if a < b - 1e-9))
    return out


if __name__ == "__main__":
    sys.exit(main())
