"""`rag models`: registered with the `rag` command line through the `rag.commands` entry point.

    rag models compare DATASET --corpus DIR [--model NAME_OR_PATH ...] [--budget-ms N ...]
                       [--json [FILE]] [--plot FILE] [--limit N]
    rag models finetune --index DIR [--base MODEL] [--out DIR] [--budget-min N]
                        [--questions N | --questions-file FILE] [--seed S]

Importing this module stays cheap (`rag --help` loads every plugin); the comparison's modules
load when the command runs. Exit codes as for every `rag` command: 0 ok, 2 usage error (a bad
dataset or corpus), 1 when no candidate could be scored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_BUDGETS_MS = (20.0, 5.0)

EPILOG = """candidates (default: all of them; see rag/models/candidates.py and MODELS.md):
  minilm-fp32, minilm-bf16, minilm-int8   the packaged all-MiniLM-L6-v2 (core install)
  minilm-int8pc, minilm-int8pc-attn   int8 with per-channel scales; -attn quantises only the
                  attention layers (not in the default set: name them)
  minilm-static   a model2vec static model distilled from it (`make models` installs model2vec)
  bge-small-int8, e5-small-int8, mpnet, nomic-gguf   packaged alternatives (`make models`)
  bm25            BM25 alone, the baseline row
  or any sentence-transformers folder or model id, an ONNX folder (model.onnx +
  tokenizer.json) or a .gguf embedding model file. A candidate whose files are missing is
  skipped with the command that adds them.

without a labelled dataset: index the corpus and let the local model write questions,
  rag ingest DIR --index /tmp/idx && rag eval generate --index /tmp/idx --n 50 --out qa.jsonl
  rag models compare qa.jsonl --corpus DIR
(generated questions reuse their chunk's words: they favour BM25 and are easier than real ones)
"""


def add_compare(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "compare", parents=parents, prog="rag models compare",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        help="compare embedding models on your corpus and questions; recommend one",
        description="Chunk the corpus once, then for each candidate embed the chunks into a "
                    "throwaway index and report Recall@5/@10, MRR@10, nDCG@10 (dense alone and "
                    "hybrid), embedding throughput, query embedding latency p50/p95, index size "
                    "and peak memory; recommend the best candidate within each query latency "
                    "budget (query embedding p95).")
    p.add_argument("dataset", metavar="DATASET",
                   help="labelled questions: JSONL, LabelledRagDataset .json or BEIR folder")
    p.add_argument("--corpus", required=True, metavar="DIR", help="the documents to index")
    p.add_argument("--model", action="append", metavar="NAME_OR_PATH", dest="models",
                   help="a candidate (repeatable; default: every offline candidate)")
    p.add_argument("--budget-ms", action="append", type=float, metavar="N", dest="budgets",
                   help="query embedding p95 budget for the recommendation (repeatable; "
                        "default 20 and 5)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the comparison as JSON to FILE (to stdout without FILE)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot to FILE")
    p.add_argument("--table", metavar="FILE", help="also write the printed report to FILE")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    p.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up on a candidate after S seconds")
    p.set_defaults(handler=cmd_compare)


FINETUNE_EPILOG = """what it does: questions written by the local LLM from sampled chunks of the
index (the positives), one hard negative each from the index's own BM25 and dense rankings,
validation questions held out by source document; MultipleNegativesRankingLoss on CPU within
the budget; a sentence-transformers folder with a model card (README.md, finetune.json).
Interrupt it at any time: a re-run with the same options resumes (questions, mined data and
checkpoints are kept in the work folder, default OUT.work). The index is only read, from a copy.

then measure it on your own labelled questions and switch if it pays:
  rag models compare QA.jsonl --corpus DOCS --model minilm-bf16 --model OUT
  rag reindex --index DIR --embedding-model OUT      (rag reindex --rollback returns)
"""


def add_finetune(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from eval.finetune import DEFAULT_BUDGET_MIN, DEFAULT_QUESTIONS

    p = subparsers.add_parser(
        "finetune", parents=parents, prog="rag models finetune",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=FINETUNE_EPILOG,
        help="fine-tune the embedding model on your index's own chunks (CPU, resumable)",
        description="Fine-tune a sentence-transformers embedding model on the chunks of an "
                    "index, within a time budget, and write it as a folder that `rag models "
                    "compare` and `rag reindex --embedding-model` take.")
    p.add_argument("--base", metavar="MODEL",
                   help="the model to start from: `packaged` (all-MiniLM-L6-v2) or a local "
                        "sentence-transformers folder (default: the index's own model)")
    p.add_argument("--out", metavar="DIR", default="finetuned-model",
                   help="the folder to write (default ./finetuned-model)")
    p.add_argument("--work", metavar="DIR",
                   help="questions, mined data and checkpoints (default OUT.work)")
    p.add_argument("--budget-min", type=float, default=DEFAULT_BUDGET_MIN, metavar="N",
                   help=f"minutes of training steps (default {DEFAULT_BUDGET_MIN:g}; question "
                        "writing and validation come on top)")
    p.add_argument("--questions", type=int, default=DEFAULT_QUESTIONS, metavar="N",
                   help=f"questions to generate (default {DEFAULT_QUESTIONS}; the packaged "
                        "0.5B LLM takes a few seconds each on 2 cores)")
    p.add_argument("--questions-file", metavar="FILE",
                   help="use these questions instead of generating (JSONL, e.g. from `rag eval "
                        "generate`: a row's reference context or id names its chunk)")
    p.add_argument("--seed", type=int, default=0, help="sampling, split, batch order, dropout")
    p.add_argument("--epochs", type=int, default=4, help="passes over the training pairs "
                   "(default 4; the budget may stop earlier)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step (default 16)")
    p.add_argument("--lr", type=float, default=3e-5, help="peak learning rate (default 3e-5)")
    p.add_argument("--checkpoint-min", type=float, default=2.0, metavar="N",
                   help="write a checkpoint every N minutes of training (default 2): what an "
                        "interruption can cost")
    p.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false",
                   help="train with in-batch negatives only (the mined ones are not used)")
    p.add_argument("--judge-model", metavar="M",
                   help="the LLM that writes questions (default: the judge_model setting)")
    p.add_argument("--judge-cache", metavar="FILE", help="the LLM answer cache to use")
    p.add_argument("--json", action="store_true", help="print the model's record as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_finetune)


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag models` (`compare`, `finetune`) to the `rag` command line."""
    p = subparsers.add_parser("models", help="embedding models: compare candidates on your "
                              "data, fine-tune one", description="Embedding model tools.")
    sub = p.add_subparsers(dest="models_command", metavar="{compare,finetune}", required=True)
    add_compare(sub, parents)
    add_finetune(sub, parents)


def cmd_finetune(args: argparse.Namespace) -> int:
    from eval.errors import EvalError
    from rag.errors import USER_ERRORS

    try:
        return _finetune(args)
    except (EvalError, *USER_ERRORS) as exc:
        print(f"rag models finetune: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _finetune(args: argparse.Namespace) -> int:
    from eval.finetune import finetune, summary
    from rag.cli import _settings_overrides
    from rag.config import load_settings

    overrides = _settings_overrides(args)  # first: `--set index_dir` becomes args.index
    index_dir = Path(load_settings(args.index, **overrides).index_dir)
    record = finetune(index_dir, Path(args.out), base=args.base,
                      work=Path(args.work) if args.work else None, budget_min=args.budget_min,
                      questions=args.questions,
                      questions_file=Path(args.questions_file) if args.questions_file else None,
                      seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      hard_negatives=args.hard_negatives, checkpoint_s=args.checkpoint_min * 60,
                      judge_model=args.judge_model,
                      judge_cache=Path(args.judge_cache) if args.judge_cache else None,
                      progress=not args.quiet, settings=overrides)
    print(json.dumps(record, indent=1) if args.json else summary(record))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from eval.errors import EvalError

    try:
        return _compare(args)
    except EvalError as exc:
        print(f"rag models compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _compare(args: argparse.Namespace) -> int:
    from eval.errors import EvalError
    from eval.models_compare import DEFAULT_CANDIDATES, compare
    from eval.models_report import add_deltas, format_report, plot, recommend, usable
    from rag.cli import settings_from_args

    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be at least 1")
    budgets = args.budgets or list(DEFAULT_BUDGETS_MS)
    candidates = list(dict.fromkeys(args.models or DEFAULT_CANDIDATES))
    settings = settings_from_args(args)
    quiet = args.json == "-"
    done: list[dict[str, Any]] = []

    def progress(row: dict[str, Any]) -> None:
        done.append(row)
        if args.json and not quiet:  # an interrupted run still leaves the rows it finished
            Path(args.json).write_text(json.dumps({"partial": True, "candidates": done},
                                                  indent=1) + "\n")
        if quiet:
            return
        if row.get("skipped") or row.get("failed"):
            print(f"  {row['candidate']}: {row.get('skipped') or row.get('failed')}",
                  file=sys.stderr)
        else:
            print(f"  {row['candidate']}: done in {row.get('process_s', 0):.0f} s",
                  file=sys.stderr)

    result = compare(Path(args.dataset), Path(args.corpus), candidates, settings,
                     split=args.split, limit=args.limit, on_row=progress, timeout_s=args.timeout)
    add_deltas(result)
    result["recommendations"] = [recommend(result["candidates"], b) for b in budgets]
    report = format_report(result)
    if args.plot and usable(result["candidates"]):
        result["plot"] = str(plot(result, Path(args.plot)))
    if args.json == "-":
        print(json.dumps(result, indent=1))
    else:
        print(report)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.table:
        Path(args.table).write_text(report + "\n")
    return EXIT_OK if usable(result["candidates"]) else EXIT_FAILED
