"""`rag bench [NAME...] [--json FILE]`, registered through the `rag.commands` entry point
(`python -m benchmarks` is the same command without the `rag` front end).

Exit codes as for every `rag` command: 0 every benchmark ran, 1 one or more failed (the table
still shows the rest), 2 usage error (an unknown benchmark name).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run (default: ingest retrieval answers quality; "
                        "`--list` names them all)")
    p.add_argument("--all", action="store_true", help="run every benchmark in benchmarks/")
    p.add_argument("--json", metavar="FILE", default="rag-bench.json",
                   help="write every figure here (default: rag-bench.json)")
    p.add_argument("--sizes", nargs="+", type=int, metavar="N", default=[10_000, 100_000],
                   help="retrieval tiers in chunks (default: 10000 100000; add 1000000 for the "
                        "1M tier, which runs without stock llama-index and takes long)")
    p.add_argument("--work", metavar="DIR",
                   help="keep reusable inputs here (the Paul Graham index of `answers`); "
                        "default ~/.cache/rag-framework/bench")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the table as Markdown (the README's figures)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag bench` to the `rag` command line."""
    p = subparsers.add_parser(
        "bench", help="run the benchmarks side by side with stock llama-index and the floor",
        description="Run every benchmark (or the named ones) in child processes of this "
                    "command, print one table of figures and ratios, and write them as JSON.")
    _options(p)
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    """Handler of `rag bench`."""
    import sys

    from benchmarks.suite import BENCHMARKS, DEFAULT, run_suite

    if args.list:
        for name, bench in BENCHMARKS.items():
            print(f"{name:<18} {'(default) ' if name in DEFAULT else ''}{bench.help}")
        return EXIT_OK
    names = list(BENCHMARKS) if args.all else (args.names or list(DEFAULT))
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"rag bench: error: unknown benchmark {', '.join(unknown)}; choose from "
              f"{', '.join(BENCHMARKS)}", file=sys.stderr)
        return EXIT_USAGE
    import shlex

    words = ["--all"] if args.all else list(args.names)
    if args.sizes != [10_000, 100_000]:
        words += ["--sizes", *map(str, args.sizes)]
    words += ["--json", args.json] if args.json else []
    report = run_suite(names, json_path=args.json, sizes=args.sizes, work=args.work,
                       command=shlex.join(["rag", "bench", *words]), markdown_path=args.markdown)
    return EXIT_FAILED if report["failed"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks`."""
    from rag.process import apply_defaults

    apply_defaults()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=cmd_bench.__doc__)
    _options(parser)
    return cmd_bench(parser.parse_args(argv))
