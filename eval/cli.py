"""`rag eval`: registered with the `rag` command line through the `rag.commands` entry point.

    rag eval DATASET [--index DIR] [--baseline FILE] [--update-baseline] [--report DIR]
                     [--limit N] [--top-k K] [--retrieval-only] [--set key=value]

`rag eval` has subcommands: `run` (the default: `rag eval DATASET` is `rag eval run DATASET`)
and, later, `generate` and `judge-check`, each added to `SUBCOMMANDS` as a function
`add(subparsers, parents)` like `add_run`. Importing this module stays cheap: `rag --help`
loads every plugin, so the suite's modules load only when the command runs.

Exit codes: 0 ok, 1 a metric regressed against the baseline, 2 usage error (a missing or bad
dataset or baseline file, a bad option), as for every `rag` command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

EXIT_OK, EXIT_REGRESSED, EXIT_USAGE = 0, 1, 2
DEFAULT_SUBCOMMAND = "run"


def add_run(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`rag eval [run] DATASET ...`: score a dataset, write a report, gate on a baseline."""
    p = subparsers.add_parser(
        "run", parents=parents, prog="rag eval",
        help="score DATASET (the default: `rag eval DATASET`)",
        description="Run an evaluation dataset (JSONL, LlamaIndex LabelledRagDataset JSON, or a "
                    "BEIR folder) through the index; print the metrics, write a report, and "
                    "exit 1 when a metric falls below its baseline by more than its tolerance.")
    p.add_argument("dataset", metavar="DATASET", help="JSONL file, LabelledRagDataset .json, "
                   "or BEIR folder")
    p.add_argument("--baseline", metavar="FILE", help="compare with this baseline JSON file")
    p.add_argument("--update-baseline", action="store_true",
                   help="record this run as the baseline in --baseline FILE (keeps tolerances)")
    p.add_argument("--report", metavar="DIR",
                   help="write report.json, index.html and plots into DIR")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N cases")
    p.add_argument("--top-k", type=int, metavar="K", help="contexts per answer (default: top_k)")
    p.add_argument("--retrieval-only", action="store_true",
                   help="skip answer generation (no LLM): retrieval metrics and latency only")
    p.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_run)


# Subcommands of `rag eval`, by name; the first word after `eval` that is none of them is
# DATASET of the default `run`.
SUBCOMMANDS: dict[str, Callable[[Any, list[argparse.ArgumentParser]], None]] = {
    "run": add_run,
}


class _EvalParser(argparse.ArgumentParser):
    """`rag eval`'s parser: inserts `run` when the first word names no subcommand."""

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None):
        args = list(sys.argv[1:] if args is None else args)
        if not args or (args[0] not in SUBCOMMANDS and args[0] not in ("-h", "--help")):
            args.insert(0, DEFAULT_SUBCOMMAND)
        return super().parse_known_args(args, namespace)


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag eval` (and its subcommands) to the `rag` command line."""
    p = subparsers.add_parser(
        "eval", help="evaluate answers and retrieval on a dataset; gate on a baseline",
        description="Evaluation suite. `rag eval DATASET ...` runs it (see `rag eval run -h`).")
    p.__class__ = _EvalParser  # argparse builds subparsers itself; this adds the default word
    sub = p.add_subparsers(dest="eval_command", metavar="{" + ",".join(SUBCOMMANDS) + "}",
                           parser_class=argparse.ArgumentParser)
    for add in SUBCOMMANDS.values():
        add(sub, parents)


def cmd_run(args: argparse.Namespace) -> int:
    """Handler of `rag eval [run]`."""
    from eval.errors import EvalError

    try:
        return _run(args)
    except EvalError as exc:
        print(f"rag eval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from eval.baseline import baseline_entry, compare, update_baseline
    from eval.datasets import cases_hash, load_dataset
    from eval.errors import EvalError
    from eval.report import format_summary, write_report
    from eval.runner import run_eval
    from rag.cli import open_index

    if args.update_baseline and not args.baseline:
        raise EvalError("--update-baseline needs --baseline FILE")
    for name in ("limit", "top_k"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise EvalError(f"--{name.replace('_', '-')} must be at least 1")
    dataset = load_dataset(args.dataset, split=args.split)
    if args.baseline and not args.update_baseline:  # fail before a long run, not after it
        selected = dataset.head(args.limit).cases
        baseline_entry(args.baseline, dataset.name, cases_hash(selected), len(selected))
    rag = open_index(args)
    try:
        run = run_eval(rag, dataset, top_k=args.top_k, limit=args.limit,
                       answers=not args.retrieval_only, progress=not args.quiet)
    finally:
        rag.close()
    comparison = None
    if args.baseline and not args.update_baseline:
        comparison = compare(run, args.baseline)
    print(format_summary(run, comparison))
    if args.report:
        html = write_report(run, args.report, comparison)
        print(f"report: {html}")
    if args.update_baseline:
        update_baseline(run, args.baseline)
        print(f"baseline for {dataset.name} written to {args.baseline}")
        return EXIT_OK
    if comparison is not None:
        print(comparison.summary())
        if not comparison.ok:
            print("rag eval: regressed: " + ", ".join(d.name for d in comparison.regressions),
                  file=sys.stderr)
            return EXIT_REGRESSED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m eval ...` is `rag eval ...`, also where the entry point is not installed."""
    from rag.process import apply_defaults
    from rag.errors import USER_ERRORS

    apply_defaults()
    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, [_common_parent()])
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _common_parent() -> argparse.ArgumentParser:
    """--index and --set as `rag` gives them to every command (rag.cli builds its own copy
    inside `build_parser` and does not expose it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", help="index directory (default ./rag_index)")
    common.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override any setting, e.g. --set top_k=8 (repeatable)")
    return common
