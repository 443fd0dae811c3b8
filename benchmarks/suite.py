"""Run benchmark scripts as child processes of one command and put their figures in one table.

Why child processes: each script measures memory and speed of a process that holds just what it
measures (the retrieval tiers even build and query in separate children), and every comparison
(ours, the floor, stock llama-index) runs in this one process tree, on the same data, in the
same run, so the ratios are not skewed by a machine that got busier between two runs.

A benchmark here is a script of this folder plus the arguments `rag bench` gives it and a
function that turns its `--json` output into table rows (figure, ours, what it is compared
with, its value, ratio). Scripts without `--json` are run for their printed figures, which go
into the JSON as text.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
Row = tuple[str, str, Any, str, Any, Any]  # benchmark, figure, ours, compared with, its value, ratio


@dataclass
class Benchmark:
    script: str
    help: str
    args: Callable[[dict], list[str]] = lambda ctx: []
    rows: Callable[[dict], list[Row]] | None = None  # None: the script has no --json
    budget_s: int = 3600


def _ratio(a: Any, b: Any) -> float | None:
    try:
        return round(float(a) / float(b), 2) if float(b) else None
    except (TypeError, ValueError):
        return None


# --- rows per benchmark -------------------------------------------------------------------------
# `embedding_passage_backend` as the ingest benchmark records it -> the runtime, in words
PASSAGE_RUNTIMES = {"torch": "torch", "onnx": "onnxruntime float32", "onnx-int8": "onnxruntime int8"}


def ingest_rows(r: dict) -> list[Row]:
    b = "ingest"
    rows: list[Row] = [
        (b, f"text chunks/s ({r['files']} essays, {r['chunks']} chunks, {r['dtype']})",
         r["ingest_chunks_per_s"], "raw encode", r["raw_chunks_per_s"], r["ingest_over_raw"]),
    ]
    if "torch_ingest_chunks_per_s" in r:  # passages on onnxruntime (AVX2-only CPUs): the gain
        # reports written before `passage_backend` was recorded name it in their `passages` text
        runtime = PASSAGE_RUNTIMES.get(r.get("passage_backend"), r["passages"].split(" (")[0])
        rows.append((b, f"text chunks/s ({runtime} passages)",
                     r["ingest_chunks_per_s"], "torch passages, same run",
                     r["torch_ingest_chunks_per_s"], r["ingest_over_torch_ingest"]))
    if "stock_chunks_per_s" in r:
        rows.append((b, "text chunks/s", r["ingest_chunks_per_s"], "stock llama-index",
                     r["stock_chunks_per_s"], _ratio(r["ingest_chunks_per_s"], r["stock_chunks_per_s"])))
    rows.append((b, "text MB/s", r["ingest_mb_per_s"], "", None, None))
    audio = r.get("audio") or {}
    if "ingest_rtf" in audio:
        rows.append((b, f"audio real-time factor ({audio['clips']} clips, {audio['audio_s']} s)",
                     audio["ingest_rtf"], "whisper.transcribe", audio["whisper_rtf"],
                     audio["ingest_over_whisper"]))
    return rows


def retrieval_rows(r: dict) -> list[Row]:
    rows: list[Row] = []
    for size, row in r["sizes"].items():
        b = f"retrieval {int(size) // 1000}k"
        ours, floor = row["ours"], row["ours"]["floor"]
        stock = row.get("stock")
        for q in ("p50", "p95", "p99"):
            key = f"{q}_ms"
            rows.append((b, f"hybrid top-10 {q} ms", ours["hybrid"][key], "floor (embed + 1 search)",
                         floor[key], _ratio(ours["hybrid"][key], floor[key])))
            if stock:
                rows.append((b, f"hybrid top-10 {q} ms", ours["hybrid"][key], "stock llama-index",
                             stock["hybrid"][key], _ratio(ours["hybrid"][key], stock["hybrid"][key])))
        rows.append((b, "bm25 side p95 ms", ours["bm25_side"]["p95_ms"], "", None, None))
        if "hybrid_reranked" in ours:  # the default retrieval: the fusion, then the cross-encoder
            for q in ("p50", "p95"):
                mine = ours["hybrid_reranked"][f"{q}_ms"]
                rows.append((b, f"hybrid + rerank (default) {q} ms", mine, "hybrid top-10",
                             ours["hybrid"][f"{q}_ms"], _ratio(mine, ours["hybrid"][f"{q}_ms"])))
        if ours.get("filtered"):  # filtered to one source: this index's path vs Lite's own
            f = ours["filtered"]
            rows.append((b, "hybrid filtered to one source p95 ms", f["hybrid"]["p95_ms"],
                         "hybrid top-10", ours["hybrid"]["p95_ms"],
                         _ratio(f["hybrid"]["p95_ms"], ours["hybrid"]["p95_ms"])))
            rows.append((b, "dense filtered p95 ms", f["dense"]["p95_ms"], "Milvus Lite's own",
                         f["lite_dense"]["p95_ms"],
                         _ratio(f["dense"]["p95_ms"], f["lite_dense"]["p95_ms"])))
            rows.append((b, "dense filtered recall@50", f["dense_recall"], "Milvus Lite's own",
                         f["lite_dense_recall"], _ratio(f["dense_recall"], f["lite_dense_recall"])))
        build, sbuild = row["ours_build"], row.get("stock_build") or {}
        mem, smem = ours["memory_after_queries"], (stock or {}).get("memory_after_queries", {})
        for figure, mine, theirs in (
                ("index build s", build["build_s"], sbuild.get("build_s")),
                ("index size on disk MB", build["disk_mb"], sbuild.get("disk_mb")),
                ("resident memory MB (after queries)", mem["rss_mb"], smem.get("rss_mb")),
                ("peak resident memory MB", mem["peak_rss_mb"], smem.get("peak_rss_mb"))):
            rows.append((b, figure, mine, "stock llama-index" if theirs is not None else "",
                         theirs, _ratio(mine, theirs)))
    sizes = sorted(r["sizes"], key=int)
    for size in sizes[1:]:
        small = r["sizes"][sizes[0]]["ours"]["hybrid"]["p95_ms"]
        mine = r["sizes"][size]["ours"]["hybrid"]["p95_ms"]
        rows.append((f"retrieval {int(size) // 1000}k", "hybrid p95 growth", mine,
                     f"hybrid p95 at {int(sizes[0]) // 1000}k", small, _ratio(mine, small)))
        inter = r.get("interleaved") or {}
        if size in inter and sizes[0] in inter:
            for q in ("p50", "p95"):
                mine, small = inter[size][f"{q}_ms"], inter[sizes[0]][f"{q}_ms"]
                rows.append((f"retrieval {int(size) // 1000}k",
                             f"hybrid {q} growth, tiers interleaved", mine,
                             f"interleaved {q} at {int(sizes[0]) // 1000}k", small,
                             _ratio(mine, small)))
    return rows


def answers_rows(r: dict) -> list[Row]:
    b, ours, stock = "answers", r["ours"], r.get("stock_llama_index") or {}
    rows: list[Row] = []
    for figure, key in (("time to first token p50 s", "ttft_p50_s"),
                        ("time to first token p95 s", "ttft_p95_s"),
                        ("generation tokens/s", "tokens_per_s")):
        theirs = stock.get(key)
        rows.append((b, figure, round(ours[key], 2), "stock llama-index" if theirs else "",
                     round(theirs, 2) if theirs else None, _ratio(ours[key], theirs)))
    rows.append((b, f"citations naming retrieved contexts % ({ours['questions']} q)",
                 round(ours["citations_valid_pct"], 1), "", None, None))
    return rows


def quality_rows(r: dict) -> list[Row]:
    rows: list[Row] = []
    for name, d in r["datasets"].items():
        for metric, value in d["metrics"].items():
            value = value.get("value") if isinstance(value, dict) else value
            if value is None or metric.startswith("latency") or metric.startswith("hit_rate"):
                continue
            rows.append((f"quality {name}", f"{metric} ({d['cases']} cases, {d['recorded_at'][:10]})",
                         round(value, 4), "", None, None))
    return rows


def read_quality(ctx: dict) -> dict:
    """The evaluation suite's committed figures (`rag eval ... --update-baseline` writes them)."""
    path = REPO / "eval" / "baselines" / "dev_sets.json"
    data = json.loads(path.read_text())
    return {"source": str(path.relative_to(REPO)),
            "datasets": {name: {"cases": d["cases"], "recorded_at": d["recorded_at"],
                                "metrics": d["metrics"]} for name, d in data["datasets"].items()}}


def during_ingest_rows(r: dict) -> list[Row]:
    b = f"queries during an ingest ({r['chunks']} chunks)"
    return [(b, f"retrieve {q} ms", r[f"during_{q}_ms"], "idle", r["idle_p50_ms"],
             _ratio(r[f"during_{q}_ms"], r["idle_p50_ms"])) for q in ("p50", "p95", "p99")] + [
            (b, "longest wait for Milvus Lite's lock ms", r["lite_lock_wait_max_ms"], "", None, None)]


BENCHMARKS: dict[str, Benchmark] = {
    "ingest": Benchmark(
        "ingest_throughput", "text chunks/s and MB/s vs raw encode and stock llama-index; audio RTF",
        lambda ctx: ["--limit", "40", "--rounds", "1", "--vs-torch"], ingest_rows, 1800),
    "retrieval": Benchmark(
        "retrieval_latency", "hybrid p50/p95/p99 per tier vs floor and stock; build, disk, RSS",
        lambda ctx: ["--sizes", *map(str, ctx["sizes"]), "--base", "1000"], retrieval_rows, 5400),
    "answers": Benchmark(
        "answers_paul_graham", "time to first token and tokens/s vs stock llama-index",
        lambda ctx: ["--index", str(ctx["work"] / "pg_index"), "--limit", "5", "--stock", "3",
                     "--unanswerable-limit", "1"], answers_rows, 3600),
    "quality": Benchmark("", "the evaluation suite's committed figures (eval/baselines)",
                         rows=quality_rows),
    "retrieval-quality": Benchmark("retrieval_quality", "Recall@5/10, MRR@10 vs stock llama-index"),
    "ingest-corpus": Benchmark("ingest_corpus", "every shared document and recording: outcome, WER/RTF"),
    "ocr": Benchmark("ocr_corpus", "scanned PDFs and images: CER, s/page"),
    "huge-inputs": Benchmark("huge_inputs", "a 500 MB text file: ingest time and peak RSS"),
    "prompt-injection": Benchmark("prompt_injection", "planted instructions obeyed, with and without the guard"),
    "ui-load": Benchmark("ui_load", "the UI's /retrieve under 20 concurrent clients"),
    "queries-during-ingest": Benchmark(
        "queries_during_ingest", "retrieve p50/p95/p99 in one process during an ingest vs idle",
        lambda ctx: ["--files", "20", "--mb", "1"], during_ingest_rows, 900),
}
DEFAULT = ("quality", "retrieval", "ingest", "answers")


def machine() -> dict:
    """What the figures were measured on."""
    from rag.models.cpu import cpu_flags, cpu_model

    cpu, flags = cpu_model(), cpu_flags()
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gb = None
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "simd": simd,
            "python": platform.python_version(), "load_average": os.getloadavg()}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_one(name: str, bench: Benchmark, ctx: dict, logs: Path) -> dict:
    """One benchmark as a child process; its figures, or why there are none."""
    if not bench.script:
        return {"figures": read_quality(ctx)}
    out = logs / f"{name}.json"
    cmd = [sys.executable, str(HERE / f"{bench.script}.py"), *bench.args(ctx)]
    if bench.rows is not None:
        cmd += ["--json", str(out)]
    log = logs / f"{name}.log"
    print(f"rag bench: {name}: {shlex.join(cmd[1:])} (log {log})", flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        try:
            proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                  timeout=bench.budget_s)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = round(time.perf_counter() - started, 1)
    tail = log.read_text(errors="replace").splitlines()[-40:]
    result: dict = {"command": shlex.join(cmd[1:]), "seconds": seconds, "exit": code}
    print(f"rag bench: {name}: exit {code} after {seconds:.0f} s", flush=True)
    if code != 0:
        result["error"] = "\n".join(tail[-15:])
    elif bench.rows is None:
        result["printed"] = "\n".join(tail)
    elif out.is_file():
        result["figures"] = json.loads(out.read_text())
    else:
        result["error"] = f"{bench.script} wrote no figures ({out})"
    return result


def print_table(report: dict) -> None:
    m = report["machine"]
    print(f"\nrag bench, {report['date']}, {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB, "
          f"{'/'.join(m['simd']) or 'no AVX2'}), commit {report['commit']}")
    print(f"command: {report['command']}")
    header = ("benchmark", "figure", "ours", "compared with", "value", "ours/value")
    rows = [tuple("" if v is None else str(v) for v in row) for row in report["rows"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i < 2 or i == 3 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))))
    for name, result in report["benchmarks"].items():
        if "error" in result:
            print(f"\n{name} FAILED (exit {result.get('exit')}):\n{result['error']}")
        elif "printed" in result:
            print(f"\n{name} (printed figures):\n" + "\n".join(result["printed"].splitlines()[-12:]))
    notes = [r["figures"].get("note") for r in report["benchmarks"].values()
             if isinstance(r.get("figures"), dict) and r["figures"].get("note")]
    for note in notes:
        print(f"\nnote: {note}")


def markdown(report: dict) -> str:
    """The report as the README's table: date, machine and command first."""
    m = report["machine"]
    lines = [f"Measured {report['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB, "
             f"{'/'.join(m['simd']) or 'no AVX2'}; load average at start "
             f"{', '.join(f'{x:.1f}' for x in m['load_average'])}), commit {report['commit']}, "
             f"with `{report['command']}` ({report.get('seconds', 0) / 60:.0f} min):", "",
             "| benchmark | figure | ours | compared with | value | ours/value |",
             "|---|---|---:|---|---:|---:|"]
    for row in report["rows"]:
        cells = ["" if v is None else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_suite(names: list[str], json_path: str | None, sizes: list[int],
              work: str | None = None, command: str = "rag bench",
              markdown_path: str | None = None) -> dict:
    """Run `names` in order; print one table; write the JSON report; return it."""
    work_dir = Path(work or Path.home() / ".cache" / "rag-framework" / "bench")
    work_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    ctx = {"sizes": sizes, "work": work_dir}
    report: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": command,
                    "machine": machine(), "commit": _commit(), "benchmarks": {}, "rows": [],
                    "failed": []}
    started = time.perf_counter()
    for name in names:
        bench = BENCHMARKS[name]
        result = run_one(name, bench, ctx, logs)
        report["benchmarks"][name] = result
        if "error" in result:
            report["failed"].append(name)
        elif bench.rows is not None and "figures" in result:
            try:
                report["rows"] += bench.rows(result["figures"])
            except (KeyError, TypeError, ValueError) as exc:
                report["failed"].append(name)
                result["error"] = f"figures not understood: {type(exc).__name__}: {exc}"
        if json_path:  # after each benchmark, so a long run that is stopped keeps what it measured
            Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    report["seconds"] = round(time.perf_counter() - started, 1)
    print_table(report)
    print(f"\n{len(names)} benchmarks in {report['seconds'] / 60:.1f} min; logs in {logs}")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {json_path}")
    if markdown_path:
        Path(markdown_path).write_text(markdown(report))
        print(f"README table written to {markdown_path}")
    return report
