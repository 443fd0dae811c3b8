"""Embedding model choice on the shared dev sets: `rag models compare` with every offline
candidate on Paul Graham (212 essays, 55 questions) and Solana (one PDF, 58 questions).

Writes, per dataset, `<name>.json`, `<name>.png` and `<name>.txt` (the printed table) into
--out, and prints the tables. The candidates' files come from `make models`; a missing one is
skipped with the line that says how to add it.

Run (heavy: every candidate embeds 2,948 Paul Graham chunks: 61 minutes on 2 idle cores, 44 of
them nomic's llama.cpp embedding; Solana takes 2.5 minutes idle):
    make models
    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/models_compare.py \
        --out ../evalstate/models_compare [--dataset paul_graham] [--model ID ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "qa"
DATASETS = {
    "paul_graham": (DATA / "paul_graham" / "normalized.jsonl", DATA / "paul_graham" / "essays"),
    "blockchain_solana": (DATA / "blockchain_solana" / "normalized.jsonl",
                          DATA / "blockchain_solana" / "source_files"),
}


def main() -> int:
    from rag.cli import main as rag_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for JSON, PNG and tables")
    parser.add_argument("--dataset", action="append", choices=sorted(DATASETS),
                        help="only these datasets (default: both)")
    parser.add_argument("--model", action="append", help="only these candidates")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    code = 0
    for name in args.dataset or list(DATASETS):
        dataset, corpus = DATASETS[name]
        command = ["models", "compare", str(dataset), "--corpus", str(corpus),
                   "--json", str(args.out / f"{name}.json"), "--plot", str(args.out / f"{name}.png"),
                   "--table", str(args.out / f"{name}.txt")]
        for model in args.model or []:
            command += ["--model", model]
        started = time.perf_counter()
        print(f"== {name}: rag {' '.join(command)}", flush=True)
        code = max(code, rag_main(command))
        print(f"== {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
