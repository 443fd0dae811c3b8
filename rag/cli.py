"""The `rag` command line. argparse keeps `rag --help` instant; each command imports what it needs.

Exit codes: 0 success, 1 a check failed, 2 usage or configuration error, 3 some files failed.

Commands of higher layers (`rag ui` from the `ui` package, later `rag eval` from `eval`) plug in
through the `rag.commands` entry-point group (see pyproject.toml): `rag` never imports them by
name, so the layering ui -> rag / eval -> rag holds. Each entry point names a function
`add_command(subparsers, parents)` that adds its subparser and sets `handler=` on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Answers with sources from your own documents and recordings.",
    )
    parser.add_argument("--version", action="version", version="rag 0.1.0")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", help="index directory (default ./rag_index, or RAG_INDEX_DIR)")
    common.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override any setting, e.g. --set top_k=8 (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="index files and folders (recursively)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print per-file results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--prune", action="store_true",
                   help="also remove indexed sources under PATH... whose files no longer exist")
    p.add_argument("--engine", choices=["local", "ray"],
                   help="where parsing, transcription and embedding run (default: the "
                        "ingest_engine setting, local); ray needs rag-offline[scale]")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="a running Ray cluster (auto, or host:port of `ray start --head`); "
                        "without it --engine ray starts a private Ray in this process")

    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (applied inside both retrievers)")
    group.add_argument("--source", action="append", metavar="PATH",
                       help="only this file, or files under this folder (repeatable)")
    group.add_argument("--type", action="append", metavar="EXT", dest="file_type",
                       help="only these file types, e.g. pdf or md,txt (repeatable)")
    group.add_argument("--page", metavar="N|N-M", help="only pages N, or N to M")
    group.add_argument("--since", metavar="DATE", help="ingested on or after (YYYY-MM-DD or ISO)")
    group.add_argument("--until", metavar="DATE", help="ingested on or before (YYYY-MM-DD or ISO)")

    p = sub.add_parser("ask", parents=[common, filters], help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--top-k", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("chat", parents=[common], help="a conversation in the terminal (follow-ups understood)")
    p.add_argument("--top-k", type=int)
    p.add_argument("--show-query", action="store_true", help="print each follow-up's standalone rewrite")

    p = sub.add_parser("retrieve", parents=[common, filters], help="retrieval only, no LLM")
    p.add_argument("query")
    p.add_argument("--mode", choices=["hybrid", "bm25", "dense"])
    p.add_argument("--top-k", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("config", parents=[common], help="print the effective settings and where each comes from")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", parents=[common], help="what the index holds")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true", help="verify BM25 and Milvus hold the same chunk ids")
    p.add_argument("--repair", action="store_true",
                   help="with --check: rebuild what differs from the catalog (re-embed missing "
                        "vectors; damaged Milvus Lite files are moved aside and rebuilt)")
    p.add_argument("--latency", action="store_true",
                   help="p50/p95 per stage (load, chunk, embed, bm25, dense, fusion, rerank, "
                        "generate, ...) of the last logged ingests and queries")
    p.add_argument("--last", type=int, metavar="N", default=200,
                   help="with --latency: over the last N operations (default 200)")

    p = sub.add_parser("watch", parents=[common],
                       help="keep the index in step with folders: ingest new and changed files, "
                            "remove deleted ones, follow renames (Ctrl-C stops)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--quiet-ms", type=int, default=400,
                   help="a burst of changes is handled once the folder is quiet this long")
    p.add_argument("--no-initial-sync", action="store_true",
                   help="do not ingest PATH... (and prune deleted files) before watching")
    p.add_argument("--json", action="store_true", help="one JSON object per change")

    p = sub.add_parser("reindex", parents=[common],
                       help="switch the index to another embedding model while it keeps answering")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--embedding-model", metavar="NAME_OR_PATH",
                       help='"packaged", a sentence-transformers or model2vec folder, or a model id')
    group.add_argument("--rollback", action="store_true",
                       help="switch back to the collection served before the last switch")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("delete", parents=[common], help="remove a source from the index")
    p.add_argument("source")
    p.add_argument("--json", action="store_true", help='print {"source", "chunks"}')

    for name, handler in COMMANDS.items():
        sub.choices[name].set_defaults(handler=handler)
    for plugin in _plugins():
        plugin(sub, [common])
    return parser


def _catalog_path(args: argparse.Namespace) -> Path:
    from rag.config import load_settings
    from retrievers.index import CATALOG_FILE

    return Path(load_settings(getattr(args, "index", None)).index_dir) / CATALOG_FILE


PLUGIN_GROUP = "rag.commands"


def _plugins() -> list[Any]:
    """The `add_command` functions registered by installed packages (e.g. `ui`), by name."""
    from importlib.metadata import entry_points

    found = []
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            found.append(point.load())
        except Exception as exc:  # a broken plugin must not take `rag --help` down with it
            print(f"rag: warning: command {point.name!r} ({point.value}) failed to load: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return found


def main(argv: Sequence[str] | None = None, open_rag: Callable[..., Any] | None = None) -> int:
    """Run one `rag` command. `open_rag(index_dir, **settings)` opens the index (default
    `RAG.open`); an application or a test passes its own to share already loaded parts, e.g.
    `functools.partial(RAG.open, embedder=loaded)`."""
    from rag.process import apply_defaults

    apply_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.open_rag = open_rag
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from rag.errors import USER_ERRORS

    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from retrievers.errors import damaged_catalog, disk_full, is_disk_full

        if is_disk_full(exc):
            print(f"rag: error: {disk_full(args.index or 'the index', exc)}", file=sys.stderr)
        elif isinstance(exc, sqlite3.DatabaseError):  # damage found after opening, e.g. a malformed page
            print(f"rag: error: {damaged_catalog(_catalog_path(args), exc)}", file=sys.stderr)
        else:
            raise
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from rag.errors import ConfigError

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = value
    # `--set index_dir=DIR` is `--index DIR`: the folder also decides which rag.toml applies,
    # so it travels as the index argument (passed as both, settings raised a TypeError).
    if "index_dir" in overrides:
        given = overrides.pop("index_dir")
        if args.index is not None and Path(args.index) != Path(given):
            raise ConfigError(f"--index {args.index} and --set index_dir={given} name two "
                              "indexes; give one")
        args.index = given
    return overrides


def settings_from_args(args: argparse.Namespace) -> Any:
    """The settings of `--index` with `--set` over them (`--set index_dir` first, as `--index`)."""
    from rag.config import load_settings

    overrides = _settings_overrides(args)
    return load_settings(args.index, **overrides)


READ_ONLY = {"ask", "chat", "retrieve", "stats", "delete", "reindex", "ui", "eval", "drift"}


def open_index(args: argparse.Namespace, **extra: Any):
    """The index of `--index`, with `--set` overrides, opened by `args.open_rag` (`main`'s
    `open_rag=`, shaped like `RAG.open`) or `RAG.open`.

    Only `rag ingest` creates an index: every other command refuses a folder that holds none
    (a typo in --index must not look like an empty index that answers "not found")."""
    from rag.api import RAG
    from rag.config import load_settings
    from rag.errors import ConfigError
    from retrievers.index import CATALOG_FILE

    overrides = _settings_overrides(args)  # first: `--set index_dir` becomes args.index
    if getattr(args, "command", None) in READ_ONLY:
        index_dir = Path(load_settings(args.index).index_dir)
        if not (index_dir / CATALOG_FILE).is_file():
            what = "does not exist" if not index_dir.exists() else f"holds no index ({CATALOG_FILE})"
            raise ConfigError(f"{index_dir}: {what}; create one with `rag ingest PATH... "
                              f"--index {index_dir}`")
    overrides.update({k: v for k, v in extra.items() if v is not None})
    _quiet_milvus_logs()
    return (getattr(args, "open_rag", None) or RAG.open)(args.index, **overrides)


def _quiet_milvus_logs() -> None:
    """pymilvus logs every failed call with its traceback and warns on each Milvus Lite scan
    ("failed to get mvccTs"), and Milvus Lite's server logs the traceback of a file it cannot
    load; the command line reports failures itself, one line each. (Set after importing
    pymilvus: its import resets its logger's level.)"""
    import logging

    import pymilvus  # noqa: F401

    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _filters(args: argparse.Namespace):
    """--source/--type/--page/--since/--until as a `Filters` (None when none is given)."""
    from rag.errors import ConfigError
    from retrievers.filters import as_filters

    try:
        return as_filters({"source": args.source, "file_type": args.file_type, "page": args.page,
                           "since": args.since, "until": args.until})
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def cmd_ingest(args: argparse.Namespace) -> int:
    rag = open_index(args, ingest_engine=args.engine, ray_address=args.ray_address)
    with _stdout_to_stderr(args.json):
        results = rag.ingest(args.paths, show_progress=not (args.quiet or args.json),
                             prune=args.prune)
        rag.close()
    report = ingest_report(results)
    totals = report["totals"]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in results:
            if r.status == "failed":
                print(f"failed     {shown(r.path)}: {escaped(r.error or '')}")
            else:
                kept = f", {r.resumed} of them staged by an interrupted run" if r.resumed else ""
                print(f"{r.status:<10} {shown(r.path)} ({r.chunks} chunks{kept})")
        summary = ", ".join(f"{v} {k}" for k, v in totals.items())
        print(f"done: {summary}")
    return EXIT_PARTIAL if totals.get("failed") else EXIT_OK


@contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """With --json, stdout carries only the JSON document: whatever the run itself writes there
    (Ray's messages about a worker that died, a library's print) goes to stderr instead."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def ingest_report(results: list) -> dict[str, Any]:
    """`rag ingest --json`'s document: each file's result and the totals (also the UI's `/ingest`)."""
    totals: dict[str, int] = {"files": len(results), "chunks": 0}
    for r in results:
        totals[r.status] = totals.get(r.status, 0) + 1
        totals["chunks"] += r.chunks if r.status in ("added", "updated", "unchanged") else 0
    return {"files": [r.to_json() for r in results], "totals": totals}


def escaped(text: str) -> str:
    """`text` with every character that would break or garble a line escaped as Python writes
    it: newlines and other controls (`\\n`, `\\x1b`), and bytes of a file name that are not
    UTF-8 (`\\xe9`; Python holds them as lone surrogates, which printing would refuse)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xdc00:02x}")
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def shown(path: str) -> str:
    """A path on one line: as it is, or quoted with its odd characters escaped ('a\\nb.txt')."""
    if path.isprintable():
        return path
    return "'" + escaped(path).replace("'", "\\'") + "'"


def _text(value: str, name: str) -> str:
    """A question or query: empty or only whitespace is a usage error."""
    from rag.errors import ConfigError

    if not value.strip():
        raise ConfigError(f"the {name} is empty; write it in quotes, e.g. \"How long should "
                          "green tea steep?\"")
    return value


def cmd_ask(args: argparse.Namespace) -> int:
    _text(args.question, "question")
    rag = open_index(args)
    if args.json:
        answer = rag.ask(args.question, top_k=args.top_k, filters=_filters(args))
        rag.close()
        print(json.dumps(answer.to_json(), indent=2, ensure_ascii=False))
        return EXIT_OK
    stream = rag.stream(args.question, top_k=args.top_k, filters=_filters(args))
    _print_stream(stream)
    rag.close()
    return EXIT_OK


def _print_stream(stream: Any) -> None:
    """Print an answer's tokens as they come, then its sources (or a withdrawal notice)."""
    shown = ""
    for delta in stream:
        shown += delta
        print(delta, end="", flush=True)
    answer = stream.answer
    print()
    if answer.text != shown and getattr(stream, "retried", False):
        print(f"(asked again: that only restated the question) {answer.text}")
    elif answer.text != shown and getattr(stream, "withdrawn_retried", False):
        print(f"(withdrawn: not supported by the sources; asked again) {answer.text}")
    elif answer.text != shown and getattr(stream, "quoted", False):
        print(f"(that only restated the question; from the sources instead) {answer.text}")
    elif answer.text != shown:  # the support check replaced an answer the sources do not back
        again = "; read again over the whole sources" if getattr(stream, "escalated", False) else ""
        print(f"(withdrawn: not supported by the sources{again}) {answer.text}")
    if answer.declined and answer.decline_reason:
        print(f"rag: declined: {answer.decline_reason}", file=sys.stderr)
    if answer.citations:
        print()
        for c in answer.citations:
            print(f"[{c.n}] {escaped(c.label())}")


def cmd_chat(args: argparse.Namespace) -> int:
    """A terminal conversation; follow-ups are rewritten into standalone queries."""
    rag = open_index(args)
    messages: list[dict[str, str]] = []
    print("rag chat: ask about your documents; empty line or Ctrl-D to quit, /reset to forget.")
    try:
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line or line in ("/quit", "/exit"):
                break
            if line == "/reset":
                messages = []
                continue
            messages.append({"role": "user", "content": line})
            stream = rag.stream_chat(messages, top_k=args.top_k)
            if args.show_query and stream.query != line:
                print(f"(searching: {stream.query})")
            print("rag> ", end="", flush=True)
            _print_stream(stream)
            messages.append({"role": "assistant", "content": stream.answer.text})
    finally:
        rag.close()
    return EXIT_OK


def cmd_retrieve(args: argparse.Namespace) -> int:
    _text(args.query, "query")
    rag = open_index(args)
    filters = _filters(args)
    hits = rag.retrieve(args.query, top_k=args.top_k, mode=args.mode, filters=filters)
    why = None if hits else rag.unmatched_filters(filters)
    rag.close()
    if why:
        print(f"rag: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({"results": [h.to_json() for h in hits]}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        c = hit.chunk
        where = shown(c.source) + (f" p.{c.page}" if c.page is not None else "")
        if c.start is not None:
            where += f" {c.start:.1f}-{c.end:.1f}s"
        parts = " ".join(f"{k}#{v}" for k, v in hit.ranks.items())
        print(f"{rank:>2}. {hit.score:.4f} [{parts}] {where}")
        print("    " + " ".join(c.text.split())[:200])
    return EXIT_OK


def _embedding_runtimes(settings) -> dict[str, str]:
    """What will embed queries and passages (exports the ONNX model once, if not cached yet)."""
    from rag.errors import RagError
    from rag.models.embedder import embedder_for

    out = {}
    try:
        embedder = embedder_for(settings.embedding_model, settings)
        out["embedding_query_runtime"] = embedder.query_runtime
        out["embedding_passage_runtime"] = embedder.passage_runtime
    except RagError as exc:
        out.setdefault("embedding_query_runtime", f"unavailable: {exc}")
        out["embedding_passage_runtime"] = f"unavailable: {exc}"
    return out


def _llm_kernels(settings) -> str:
    """Which llama.cpp kernels an answer would use here, and why (loads nothing)."""
    from rag.models.llama_kernels import choose

    if settings.llm_backend != "llama-cpp":
        return f"none (llm_backend = {settings.llm_backend})"
    return choose(settings.llm_cpu_kernels).describe()


def _decline_gate(settings) -> str:
    """What decides before the model is asked, as it will run here (finds files, loads nothing)."""
    from rag.config import RERANK_GATES
    from rag.parts import decline_rerank_folder

    if not settings.decline:
        return "none (decline = false)"
    if settings.decline_gate not in RERANK_GATES:
        return settings.decline_gate
    folder, missing = decline_rerank_folder(settings)
    return (f"{settings.decline_gate} (cross-encoder {folder})" if folder is not None
            else f"evidence (no cross-encoder: {missing})")


def _reranker(settings) -> str:
    """What reorders the fused candidates here (finds files, loads nothing)."""
    from rag.parts import rerank_folder

    folder, missing = rerank_folder(settings)
    if folder is None:
        return f"none ({missing}): fused order"
    where = f"packaged, {folder}" if settings.rerank_model == "packaged" else folder
    titles = ", passages after their file's name" if settings.rerank_source_titles else ""
    return (f"cross-encoder ({where}) over the fused top {settings.rerank_top_n}, blend "
            f"{settings.rerank_blend:g}, pairs cut to {settings.rerank_max_tokens} tokens{titles}")


def _fusion_weights(settings) -> str:
    """The fusion weights queries of `index_dir` get: a titled index uses the weights chosen for
    titled vectors while the user's are at their defaults (reads the catalog's record only)."""
    from rag.config import fusion_settings
    from rag.serving import recorded_settings

    recorded = recorded_settings(Path(settings.index_dir))
    if recorded is not None:
        titled = bool(recorded.get("passage_titles", False))
        form = "titled index" if titled else "untitled index"
    else:
        titled = settings.embed_source_titles
        form = f"no index yet: a new one is {'titled' if titled else 'untitled'}"
    s = fusion_settings(settings, titled)
    return (f"bm25 {s.bm25_weight:g}, dense {s.dense_weight:g}, dense on named questions "
            f"{s.dense_weight * s.named_dense_factor:g} ({form})")


def cmd_config(args: argparse.Namespace) -> int:
    from rag.models.embedder import choose_dtype

    settings = settings_from_args(args)
    values = settings.as_dict()
    derived = {
        "milvus_target": settings.milvus_target,
        "embedding_dtype_effective": choose_dtype(settings.embedding_dtype, settings.embedding_device),
        **_embedding_runtimes(settings),
        "dense_index_effective": settings.dense_index_type,
        "llm_cpu_kernels_effective": _llm_kernels(settings),
        "decline_gate_effective": _decline_gate(settings),
        "fusion_weights_effective": _fusion_weights(settings),
        "reranker_effective": _reranker(settings),
    }
    if args.json:
        print(json.dumps({"settings": values, "sources": settings.sources, "derived": derived},
                         indent=2))
        return EXIT_OK
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"{key:<{width}} = {value!r:<40} # {settings.sources.get(key, 'default')}")
    for key, value in derived.items():
        print(f"{key:<{width}} = {value!r:<40} # derived")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from rag.errors import ConfigError

    if args.repair and not args.check:
        raise ConfigError("--repair needs --check")
    if args.latency:
        if args.check:
            raise ConfigError("--latency reads the operation log only; run --check on its own")
        return _print_latency(args)
    rag = open_index(args)
    repaired = None
    if args.repair:  # its last check is the state now: no third full scan below
        before, report = rag.repair()
        repaired = {"before": _report_json(before), "after": _report_json(report)}
    stats = rag.stats()
    code = EXIT_OK
    if repaired:
        stats["repair"] = repaired
    if args.check:
        if not args.repair:
            report = rag.index.check()
        stats["check"] = {
            "ok": report.ok, "catalog_live": report.catalog_live, "bm25": report.bm25,
            "dense": report.dense, "missing_in_dense": report.missing_in_dense[:20],
            "extra_in_dense": report.extra_in_dense[:20],
            "missing_in_bm25": report.missing_in_bm25[:20],
            "staged_to_resume": report.staged_to_resume,
        }
        code = EXIT_OK if report.ok else EXIT_CHECK
    rag.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return code


def _print_latency(args: argparse.Namespace) -> int:
    """`rag stats --latency`: read from the index's operation log alone, so it works while
    another process (the UI) holds the Milvus Lite index."""
    from rag.errors import ConfigError
    from rag.oplog import OPLOG_FILE, OperationLog, latency_summary
    from retrievers.index import CATALOG_FILE

    if args.last is not None and args.last < 1:
        raise ConfigError(f"--last {args.last}: give a number of operations, 1 or more")
    index_dir = Path(settings_from_args(args).index_dir)
    if not (index_dir / CATALOG_FILE).is_file():
        raise ConfigError(f"{index_dir}: holds no index ({CATALOG_FILE}); create one with "
                          f"`rag ingest PATH... --index {index_dir}`")
    log = OperationLog(index_dir)
    try:
        summary = latency_summary(log.operations(args.last))
    finally:
        log.close()
    if args.json:
        print(json.dumps({"last": args.last, "latency": summary}, indent=2))
        return EXIT_OK
    if not summary:
        print(f"no operations logged in {index_dir / OPLOG_FILE} yet (latency_log is on by "
              "default: run rag ingest / rag ask)")
        return EXIT_OK
    for kind, data in summary.items():
        gap = data["sum_vs_total"]
        print(f"{kind}: {data['operations']} operations (last {args.last}); named stages sum to "
              f"within {gap * 100:.1f}% of the total (median)" if gap is not None else kind)
        print(f"  {'stage':<22}{'n':>6}{'p50 ms':>12}{'p95 ms':>12}")
        for name, row in data["stages_ms"].items():
            print(f"  {name:<22}{row['n']:>6}{row['p50']:>12.1f}{row['p95']:>12.1f}")
        if data["counts"]:
            print("  counts: " + ", ".join(f"{k} {v}" for k, v in sorted(data["counts"].items())))
    return EXIT_OK


def _report_json(report: Any) -> dict[str, Any]:
    return {"ok": report.ok, "catalog_live": report.catalog_live, "bm25": report.bm25,
            "dense": report.dense}


def cmd_watch(args: argparse.Namespace) -> int:
    """`rag watch`: one line per change; Ctrl-C or SIGTERM ends it after the batch in hand."""
    import signal

    from rag.errors import ConfigError
    from rag.watch import Watcher

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise ConfigError(f"{missing[0]}: no such file or folder to watch")
    rag = open_index(args)

    def report(change: Any) -> None:
        text = json.dumps(change.to_json()) if args.json else escaped(change.line())
        print(text, flush=True)

    def ready() -> None:
        if not args.json:
            print(f"watching {', '.join(shown(str(p)) for p in watcher.paths)} "
                  "(Ctrl-C to stop)", flush=True)

    watcher = Watcher(rag, args.paths, on_change=report, quiet_ms=args.quiet_ms,
                      initial_sync=not args.no_initial_sync, on_ready=ready)

    def stop(signum: int, frame: Any) -> None:
        print(f"rag watch: stopping ({signal.Signals(signum).name})", file=sys.stderr, flush=True)
        watcher.stop()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        rag.close()
    print("rag watch: stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    rag = open_index(args)
    removed = rag.delete(args.source)
    rag.close()
    if args.json:
        print(json.dumps({"source": args.source, "chunks": removed}, indent=2))
        return EXIT_OK if removed else EXIT_CHECK
    if not removed:
        print(f"rag: {shown(args.source)}: not in the index", file=sys.stderr)
        return EXIT_CHECK
    print(f"deleted {shown(args.source)} ({removed} chunks)")
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    """Exit 0 when the index serves the model (switched now, or already), 1 when the smoke
    evaluation refused the switch (the index keeps serving the old collection)."""
    rag = open_index(args)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet or args.json:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="chunk", desc="embedding", file=sys.stderr)
        bar.total = total
        bar.update(done - bar.n)

    say = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    try:
        report = rag.reindex(args.embedding_model, rollback=args.rollback, progress=progress,
                             say=say)
    finally:
        if bar is not None:
            bar.close()
        rag.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return EXIT_OK if report.switched or not report.smoke else EXIT_CHECK
    model = report.model
    if report.smoke is None:
        print(f"nothing to do: {report.note}")
        return EXIT_OK
    print(f"smoke check, {model['embedding_model']}: {report.smoke.describe()}")
    if report.serving_smoke is not None:
        print(f"smoke check, serving model: {report.serving_smoke.describe()}")
    if not report.switched:
        print(f"rag: reindex refused: {model['embedding_model']} failed the smoke check; the "
              f"index still serves collection {report.previous}. Check the model, or lower "
              f"--set reindex_smoke_min_rate / reindex_smoke_max_drop", file=sys.stderr)
        return EXIT_CHECK
    print(f"switched to collection {report.collection}: {model['embedding_model']} "
          f"({model['embedding_fingerprint']}, {model['dimension']}-d); {report.chunks} chunks, "
          f"{report.embedded} embedded now"
          + (f", {report.already} already there ({report.note})" if report.already else "")
          + f", {report.seconds:.1f} s. Previous: {report.previous} (rag reindex --rollback)")
    return EXIT_OK


COMMANDS = {
    "chat": cmd_chat, "reindex": cmd_reindex,
    "ingest": cmd_ingest, "ask": cmd_ask, "retrieve": cmd_retrieve, "config": cmd_config,
    "stats": cmd_stats, "delete": cmd_delete, "watch": cmd_watch,
}
