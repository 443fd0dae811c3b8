"""`rag eval`: registered with the `rag` command line through the `rag.commands` entry point.

    rag eval DATASET [--index DIR] [--baseline FILE] [--update-baseline] [--report DIR]
                     [--limit N] [--top-k K] [--retrieval-only] [--set key=value]

`rag eval` has subcommands: `run` (the default: `rag eval DATASET` is `rag eval run DATASET`),
`judge-check`, `generate` and `compare`, each added to `SUBCOMMANDS` as a function
`add(subparsers, parents)` like `add_run`. Importing this module stays cheap: `rag --help`
loads every plugin, so the suite's modules load only when the command runs.

Exit codes: 0 ok, 1 a metric regressed against the baseline, 2 usage error (a missing or bad
dataset or baseline file, a bad option), as for every `rag` command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
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
    _judge_options(p)
    p.add_argument("--fresh-answers", action="store_true",
                   help="write every answer again instead of reusing the cached answers of "
                        "the same local model, seed and prompt (temperature 0 only)")
    p.add_argument("--no-judge", action="store_true",
                   help="skip the judged (DeepEval) metrics; --retrieval-only implies it")
    p.add_argument("--judged", metavar="M,M", help="judged metrics to run (default: "
                   "faithfulness,answer_relevancy,contextual_recall,contextual_precision)")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="score each judged metric N times (the gate widens its tolerance by "
                        "the spread, so judge noise does not fail a build)")
    p.add_argument("--pipeline", choices=("ours", "stock", "both"), default="ours",
                   help="ours (default); stock: llama-index's QueryFusionRetriever and "
                        "RetrieverQueryEngine over the same chunks, vectors and model; both: "
                        "ours, then stock, and their ratios (baselines apply to ours only)")
    p.set_defaults(handler=cmd_run)


def _judge_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge-model", metavar="M", help="judge model: packaged (0.5B), "
                   "packaged-1.5b, a .gguf path, or the endpoint's model (default: judge_model)")
    p.add_argument("--judge-cache", metavar="FILE",
                   help="judgement (and answer) cache (default: judgements.sqlite in the "
                        "model cache)")


def add_judge_check(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`rag eval judge-check DATASET`: does the judge tell a true answer from a changed one?"""
    p = subparsers.add_parser(
        "judge-check", parents=parents, prog="rag eval judge-check",
        help="measure how well the judge ranks true answers above counterfactual ones",
        description="Score each case's reference answer and a copy with one fact changed for "
                    "faithfulness against the reference contexts; report how often the true "
                    "one scores higher (and the AUC). Under 0.7 the judge is marked unreliable "
                    "in every report it produces.")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N usable cases")
    p.add_argument("--json", metavar="FILE", help="write every pair's scores to FILE")
    p.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _judge_options(p)
    p.set_defaults(handler=cmd_judge_check)


def add_generate(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`rag eval generate --index DIR --n 50`: a starter dataset written from the index."""
    p = subparsers.add_parser(
        "generate", parents=parents, prog="rag eval generate",
        help="write a starter dataset: questions the model writes from sampled chunks",
        description="Sample chunks of the index (every file type, recordings included), have "
                    "the model write a question each chunk answers and its answer, and write "
                    "them as a JSONL dataset marked generated, with the chunk as reference "
                    "context. Review them before using them as a gate.")
    p.add_argument("--n", type=int, default=50, help="questions to write (default 50)")
    p.add_argument("--out", metavar="FILE", default="generated_qa.jsonl",
                   help="the JSONL file to write (default generated_qa.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="which chunks are sampled")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _judge_options(p)
    p.set_defaults(handler=cmd_generate)


def add_compare(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`rag eval compare BEFORE AFTER`: two reports of one dataset, question by question."""
    p = subparsers.add_parser(
        "compare", prog="rag eval compare",
        help="compare two reports of the same dataset question by question (sign test)",
        description="Pair the questions of two `rag eval --report` runs of one dataset and, for "
                    "each metric scored in both, print the mean before and after, how many "
                    "questions got better and worse, the exact sign test's p over those that "
                    "moved, and a bootstrap 95%% interval of the mean change. Loads no model.")
    p.add_argument("before", metavar="BEFORE", help="a report folder (or its report.json)")
    p.add_argument("after", metavar="AFTER", help="the other report, of the same dataset")
    p.add_argument("--metric", action="append", metavar="M",
                   help="only this metric (repeatable; default every metric scored in both)")
    p.add_argument("--json", metavar="FILE", help="also write the figures here as JSON")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """Handler of `rag eval compare`."""
    return _guarded(_compare, args)


def _compare(args: argparse.Namespace) -> int:
    import json

    from eval.paired import changes_json, compare_reports, format_changes, load_report

    changes, only = compare_reports(load_report(args.before), load_report(args.after), args.metric)
    print(format_changes(changes, only))
    if args.json:
        Path(args.json).write_text(json.dumps(changes_json(changes, only), indent=2) + "\n")
    return EXIT_OK


# Subcommands of `rag eval`, by name; the first word after `eval` that is none of them is
# DATASET of the default `run`.
SUBCOMMANDS: dict[str, Callable[[Any, list[argparse.ArgumentParser]], None]] = {
    "run": add_run,
    "judge-check": add_judge_check,
    "generate": add_generate,
    "compare": add_compare,
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
    return _guarded(_run, args)


def cmd_judge_check(args: argparse.Namespace) -> int:
    """Handler of `rag eval judge-check`."""
    return _guarded(_judge_check, args)


def _guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from eval.errors import EvalError

    try:
        return run(args)
    except EvalError as exc:
        print(f"rag eval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_generate(args: argparse.Namespace) -> int:
    """Handler of `rag eval generate`."""
    return _guarded(_generate, args)


def _generate(args: argparse.Namespace) -> int:
    from eval.errors import EvalError
    from eval.generate import generate_cases, write_jsonl
    from eval.judge import judge_from_settings
    from rag.cli import open_index

    if args.n < 1:
        raise EvalError("--n must be at least 1")
    rag = open_index(args)
    try:
        if rag.index.catalog.count() == 0:
            raise EvalError(f"{rag.index_dir}: the index is empty; run `rag ingest` first")
        judge = judge_from_settings(rag.settings, _judge_cache(args), args.judge_model)
        rows, skipped = generate_cases(rag, judge, args.n, args.seed, progress=not args.quiet)
    finally:
        rag.close()
    path = write_jsonl(rows, args.out)
    kinds = sorted({r["file_type"] for r in rows})
    print(f"wrote {len(rows)} generated cases to {path} (file types: {', '.join(kinds)}); "
          f"{len(skipped)} chunks skipped")
    for line in skipped:
        print(f"  skipped {line}", file=sys.stderr)
    return EXIT_OK


def _judge_cache(args: argparse.Namespace):
    from eval.cache import JudgeCache, default_cache_path

    return JudgeCache(Path(args.judge_cache) if args.judge_cache else default_cache_path())


def _judge_check(args: argparse.Namespace) -> int:
    import json

    from eval.datasets import load_dataset
    from eval.judge import judge_from_settings
    from eval.judge_check import record_verdict, run_judge_check
    from rag.cli import settings_from_args

    dataset = load_dataset(args.dataset, split=args.split)
    settings = settings_from_args(args)
    cache = _judge_cache(args)
    judge = judge_from_settings(settings, cache, args.judge_model)
    usable = [c for c in dataset.cases if c.reference_answer and c.reference_contexts]
    check = run_judge_check(judge, usable[: args.limit] if args.limit else usable, dataset.name,
                            progress=not args.quiet)
    record_verdict(cache.path, check)
    summary = check.summary()
    print(f"{dataset.name}: judge {summary['judge']}: true answer above its counterfactual in "
          f"{summary['true_above_counterfactual']:.3f} of {summary['scored']} pairs, AUC "
          f"{summary['auc']:.3f}, {summary['failed']} failed, {summary['seconds']:.0f} s "
          f"({'reliable' if check.reliable else 'UNRELIABLE: under 0.7'}); judge calls "
          f"{judge.stats['calls']}, cached {judge.stats['cached']}, retried "
          f"{judge.stats['retried']}, failed {judge.stats['failed']}")
    if args.json:
        Path(args.json).write_text(json.dumps(check.to_json(), indent=2) + "\n")
    return EXIT_OK


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
    if args.pipeline == "stock" and args.baseline:
        raise EvalError("a baseline records our pipeline: --baseline needs --pipeline ours or both")
    dataset = load_dataset(args.dataset, split=args.split)
    if args.baseline and not args.update_baseline:  # fail before a long run, not after it
        selected = dataset.head(args.limit).cases
        baseline_entry(args.baseline, dataset.name, cases_hash(selected), len(selected))
    rag = open_index(args)
    try:
        metrics, judge_info, judges = _metrics(args, rag.settings)
        answers = not args.retrieval_only
        cached = None
        if answers and not args.fresh_answers:
            from eval.answer_cache import cache_answers

            cached = cache_answers(rag, _judge_cache(args))
        hits = (lambda: cached.hits) if cached else None
        run = stock_run = None
        if args.pipeline in ("ours", "both"):
            run = run_eval(rag, dataset, top_k=args.top_k, limit=args.limit, answers=answers,
                           progress=not args.quiet, metrics=metrics, answer_hits=hits)
        if args.pipeline in ("stock", "both"):
            stock_run = _stock_run(rag, dataset, args, answers, metrics, hits)
    finally:
        rag.close()
    if run is None:  # stock alone
        run, stock_run = stock_run, None
    if judge_info:
        judge_info = {**judge_info, **_judge_counts(judges)}
        for one in (run, stock_run):
            if one is not None:
                one.fingerprints["judge"] = judge_info
    comparison = None
    if args.baseline and not args.update_baseline:
        comparison = compare(run, args.baseline)
    print(format_summary(run, comparison))
    if stock_run is not None:
        from eval.report import format_ratios

        print(format_summary(stock_run))
        print(format_ratios(run, stock_run))
    if judge_info:
        print(f"judge calls: {judge_info['calls']} ({judge_info['cached']} from the cache), "
              f"{judge_info['retried']} re-asked after an output that did not fit the metric's "
              f"schema, {judge_info['failed']} failed")
    if args.report:
        html = write_report(run, args.report, comparison)
        print(f"report: {html}")
        if stock_run is not None:
            print(f"stock report: {write_report(stock_run, Path(args.report) / 'stock')}")
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


def _stock_run(rag: Any, dataset: Any, args: argparse.Namespace, answers: bool,
               metrics: list[Any] | None, hits: Callable[[], int] | None) -> Any:
    """The same dataset through stock llama-index over the same index and model (eval/stock.py)."""
    from eval.runner import run_eval
    from eval.stock import StockPipeline

    stock = StockPipeline(rag)
    try:
        run = run_eval(stock, dataset, top_k=args.top_k, limit=args.limit, answers=answers,
                       progress=not args.quiet, metrics=metrics, answer_hits=hits)
    finally:
        stock.close()
    run.options["pipeline"] = StockPipeline.name
    return run


def _judge_counts(judges: list[Any]) -> dict[str, int]:
    """What the judges of a run did, summed over repeats: calls, cache hits, re-asks after an
    output that did not validate, and judgements that failed after every retry."""
    keys = ("calls", "cached", "retried", "failed")
    return {k: sum(int(j.stats.get(k, 0)) for j in judges) for k in keys}


def _metrics(args: argparse.Namespace, settings: Any
             ) -> tuple[list[Any] | None, dict | None, list[Any]]:
    """The metrics of a run: the counted ones, plus the judged ones unless skipped; what the
    report says of the judge (name, fingerprint, whether judge-check found it reliable); and
    the judges themselves (their call counts go into the report after the run)."""
    from eval.errors import EvalError

    if args.no_judge or args.retrieval_only:
        return None, None, []
    from eval.judge import judge_from_settings
    from eval.judge_check import RELIABLE_AT, verdict_for
    from eval.judged import JUDGED_METRICS, judged_metrics
    from eval.metrics import default_metrics

    if args.repeats < 1:
        raise EvalError("--repeats must be at least 1")
    names = tuple(n.strip() for n in args.judged.split(",")) if args.judged else JUDGED_METRICS
    unknown = [n for n in names if n not in JUDGED_METRICS]
    if unknown:
        raise EvalError(f"--judged: {', '.join(unknown)} not one of {', '.join(JUDGED_METRICS)}")
    cache = _judge_cache(args)
    judges = [judge_from_settings(settings, cache, args.judge_model, repeat=i)
              for i in range(args.repeats)]
    verdict = verdict_for(cache.path, judges[0].fingerprint)
    if verdict["reliable"] is None:
        text = "never checked: run `rag eval judge-check DATASET` with this judge"
    else:
        text = "; ".join(f"{name}: true above counterfactual {c['true_above_counterfactual']:.3f}"
                         f" (AUC {c['auc']:.3f}, needs {RELIABLE_AT})"
                         for name, c in verdict["checks"].items())
    info = {"name": judges[0].get_model_name(), "fingerprint": judges[0].fingerprint,
            "repeats": args.repeats, "reliable": verdict["reliable"], "verdict": text,
            "metrics": list(names)}
    return default_metrics(answers=True) + judged_metrics(judges, names), info, judges


def main(argv: Sequence[str] | None = None, open_rag: Callable[[argparse.Namespace], Any] | None = None
         ) -> int:
    """`python -m eval ...` is `rag eval ...`, also where the entry point is not installed.

    `open_rag(index_dir, **settings)` opens the index (default `RAG.open`; see `rag.cli.main`):
    an application or a test passes its own to share already loaded parts."""
    from rag.process import apply_defaults
    from rag.errors import USER_ERRORS

    apply_defaults()
    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, [_common_parent()])
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    args.open_rag = open_rag
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
