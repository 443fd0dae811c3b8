"""`rag drift [PATH...] [--json]`: new documents (read and embedded, not ingested) and recent
logged queries against the index's drift profile. Exit 0 within the thresholds, 1 past one,
2 on usage errors (no profile, nothing to compare).

Reads the profile and the operation log only: the Milvus index is not opened, so it runs while
another process (the UI, a `rag watch`) holds it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag drift` to the `rag` command line (entry point `rag.commands`)."""
    from eval.drift import DEFAULT_QUERY_SHARE, DEFAULT_THRESHOLD, QUERY_FLOOR

    p = subparsers.add_parser(
        "drift", parents=parents,
        help="do new documents or recent queries drift from what the index was built on?",
        description="Compares new documents (read and embedded, not ingested) and, when "
                    "query_log is on, recent queries with the index's drift profile.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="new files or folders to test")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"documents drift past this ROC AUC (default {DEFAULT_THRESHOLD})")
    p.add_argument("--max-chunks", type=int, default=2000,
                   help="embed at most this many chunks of PATH..., sampled (default 2000)")
    p.add_argument("--queries", type=int, default=500, metavar="N",
                   help="the last N logged queries (default 500)")
    p.add_argument("--query-floor", type=float, default=QUERY_FLOOR,
                   help=f"a query whose best match is under this cosine is off-corpus "
                        f"(default {QUERY_FLOOR})")
    p.add_argument("--query-share", type=float, default=DEFAULT_QUERY_SHARE,
                   help=f"queries drift past this share off-corpus (default {DEFAULT_QUERY_SHARE})")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_drift)


def cmd_drift(args: argparse.Namespace) -> int:
    from rag.cli import escaped, open_index
    from rag.drift_profile import PROFILE_FILE, DriftProfile
    from rag.errors import ConfigError

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise ConfigError(f"{missing[0]}: no such file or folder")
    rag = open_index(args)
    try:
        profile = DriftProfile.load(rag.index_dir)
        if profile is None or not len(profile.sample):
            raise ConfigError(f"{rag.index_dir / PROFILE_FILE}: no drift profile; it is kept by "
                              "`rag ingest` (drift_profile_size > 0, the default): ingest again")
        from rag.models.embedding import embedding_fingerprint, resolve_embedding_model

        fingerprint = embedding_fingerprint(resolve_embedding_model(rag.settings.embedding_model))
        if profile.fingerprint != fingerprint:
            raise ConfigError(f"{rag.index_dir / PROFILE_FILE}: the profile was built with "
                              f"embedding model {profile.fingerprint}, the index now embeds "
                              f"with {fingerprint}; ingest again to rebuild it")
        logged = rag.oplog.queries(args.queries)
        if not args.paths and not logged:
            raise ConfigError("nothing to compare: give new documents (PATH...), or turn "
                              "query logging on (--set query_log=true, or query_log = true "
                              "in rag.toml) and ask some questions")
        report: dict[str, Any] = {"reference": {"sampled": int(len(profile.sample)),
                                                "seen": profile.seen}}
        drifted = False
        if args.paths:
            docs, note = _document_report(rag, profile, args)
            report["documents"] = {**docs.to_json(), **note}
            drifted |= docs.drifted
        report["queries"] = _query_report(profile, logged, args).to_json()
        drifted |= report["queries"]["drifted"]
        report["drift"] = drifted
    finally:
        rag.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report, escaped)
    return EXIT_DRIFT if drifted else EXIT_OK


def _document_report(rag: Any, profile: Any, args: argparse.Namespace):
    from eval.drift import document_drift, passage_groups
    from rag.drift_profile import source_key

    texts, sources, positions, files, failed = _read(rag, args.paths)
    if not texts:
        from rag.errors import ConfigError

        raise ConfigError(f"no text found in {', '.join(args.paths)} ({failed} files failed "
                          "to load)")
    rng = np.random.default_rng(args.seed)
    keep = np.sort(rng.choice(len(texts), size=min(len(texts), args.max_chunks), replace=False))
    vectors = rag.embedder.encode([texts[i] for i in keep])
    result = document_drift(
        profile.sample, passage_groups(profile.sources, profile.positions), vectors,
        passage_groups([source_key(sources[i]) for i in keep], [positions[i] for i in keep]),
        threshold=args.threshold, seed=args.seed)
    return result, {"files": files, "failed_files": failed, "chunks_read": len(texts)}


def _read(rag: Any, paths: list[str]) -> tuple[list[str], list[str], list[int], int, int]:
    """Every chunk of the files under `paths`, as ingest would cut and embed them (not indexed)."""
    from ingestion.chunking import Chunker
    from ingestion.discovery import expand_paths, source_id_for
    from ingestion.preparation import FilePreparer

    s = rag.settings
    preparer = FilePreparer(Chunker(rag.embedder.count_tokens, s.chunk_size, s.chunk_overlap),
                            lambda: rag.transcriber, ocr=rag.ocr)
    files, problems = expand_paths(paths)
    texts: list[str] = []
    sources: list[str] = []
    positions: list[int] = []
    failed = len(problems)
    for path in files:
        source_id = source_id_for(path)
        try:
            chunks = preparer.prepare(path, source_id, "")
        except Exception as exc:  # one unreadable file does not stop the test
            print(f"rag drift: {escaped_path(path)}: skipped ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            failed += 1
            continue
        # In the form the index embedded its own chunks (title line or not), so the two compare.
        for chunk, text in zip(chunks, rag.index.passage_texts(chunks)):
            texts.append(text)
            sources.append(source_id)
            positions.append(chunk.position)
    return texts, sources, positions, len(files), failed


def escaped_path(path: Path) -> str:
    from rag.cli import shown

    return shown(str(path))


def _query_report(profile: Any, logged: list[dict[str, Any]], args: argparse.Namespace):
    from eval.drift import best_match, query_drift

    scores = [q["best_dense"] for q in logged]
    unknown = [i for i, s in enumerate(scores) if s is None]
    if unknown:  # a keyword-only search logged no dense score: measure against the sample
        filled = best_match(np.stack([logged[i]["embedding"] for i in unknown]), profile.sample)
        for i, value in zip(unknown, filled):
            scores[i] = float(value)
    return query_drift(scores, args.query_floor, args.query_share)


def _print(report: dict[str, Any], escaped: Any) -> None:
    ref = report["reference"]
    print(f"reference: {ref['sampled']} chunk embeddings sampled of {ref['seen']} ingested")
    docs = report.get("documents")
    if docs:
        print(f"documents: {docs['files']} files, {docs['chunks_read']} chunks read, "
              f"{docs['new_chunks']} embedded ({docs['failed_files']} files failed)")
        if docs["value"] is None:
            print(f"  {docs['statistic']}: not computed ({docs['note']})")
        else:
            verdict = "DRIFT" if docs["drifted"] else "within"
            print(f"  {docs['statistic']} (logistic regression, {docs['folds']}-fold CV grouped "
                  f"by passage) = {docs['value']:.3f}; threshold {docs['threshold']:.2f} -> "
                  f"{verdict}")
        print(f"  centroid cosine distance = {docs['centroid_cosine_distance']:.4f} (reported, "
              "not gated)")
    q = report["queries"]
    if q["queries"]:
        verdict = "DRIFT" if q["drifted"] else "within"
        print(f"queries: {q['queries']} logged; best match under {q['floor']:.2f}: "
              f"{q['value'] * 100:.1f}% (threshold {q['threshold'] * 100:.0f}%) -> {verdict}")
    else:
        print("queries: none logged (query_log is off by default)")
    print(f"drift: {'yes (exit 1)' if report['drift'] else 'no (exit 0)'}")
