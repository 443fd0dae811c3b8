"""What `rag models compare` prints: the table, the change against the fp32 MiniLM, the
recommendation under a query-latency budget, and the plot.

The recommendation ranks by hybrid nDCG@10 (the project answers from the hybrid ranking, and
nDCG rewards both finding the references and ranking them high), among the candidates whose
query-embedding p95 fits the budget; candidates within `TIE` of the best count as equal and the
fastest of them is chosen. BM25 alone embeds nothing, so it always fits and is the fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

TIE = 0.005  # nDCG@10 differences under this are noise on a few dozen questions
SCORE = ("hybrid", "ndcg@10")


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r.get("skipped") and not r.get("failed")]


def _metric(row: dict[str, Any], mode: str, name: str) -> float | None:
    part = row.get(mode)
    return None if not part else part.get(name)


def add_deltas(result: dict[str, Any]) -> None:
    """Each row's change against the reference (fp32 MiniLM): hybrid and dense Recall@10
    difference, embedding speed-up (chunks/s ratio) and query speed-up (p95 ratio)."""
    rows = usable(result["candidates"])
    ref = next((r for r in rows if r["candidate"] == result["reference"]), None)
    for row in rows:
        if ref is None:
            row["vs_reference"] = None
            continue
        delta: dict[str, Any] = {}
        for mode in ("dense", "hybrid"):
            mine, theirs = _metric(row, mode, "recall@10"), _metric(ref, mode, "recall@10")
            delta[f"{mode}_recall@10"] = None if mine is None or theirs is None else mine - theirs
        delta["embed_speedup"] = (row["chunks_per_s"] / ref["chunks_per_s"]
                                  if row.get("chunks_per_s") and ref.get("chunks_per_s") else None)
        delta["query_speedup_p95"] = (ref["query_ms_p95"] / row["query_ms_p95"]
                                      if row.get("query_ms_p95") and ref.get("query_ms_p95")
                                      else None)
        row["vs_reference"] = delta


def recommend(rows: list[dict[str, Any]], budget_ms: float) -> dict[str, Any]:
    """The best candidate whose query-embedding p95 is within `budget_ms`, and why."""
    scored = [r for r in usable(rows) if _metric(r, *SCORE) is not None]
    fits = [r for r in scored if (r.get("query_ms_p95") or 0.0) <= budget_ms]
    over = [r for r in scored if r not in fits]
    if not fits:
        return {"budget_ms": budget_ms, "candidate": None,
                "why": f"no candidate embeds a query within {budget_ms:g} ms (p95)"}
    best_score = max(_metric(r, *SCORE) for r in fits)
    tied = [r for r in fits if _metric(r, *SCORE) >= best_score - TIE]
    chosen = min(tied, key=lambda r: (r.get("query_ms_p95") or 0.0, -_metric(r, *SCORE)))
    why = (f"{chosen['candidate']}: hybrid nDCG@10 {_metric(chosen, *SCORE):.3f}, "
           f"Recall@10 {_metric(chosen, 'hybrid', 'recall@10'):.3f}, query embedding p95 "
           f"{chosen.get('query_ms_p95') or 0.0:.1f} ms, the best of {len(fits)} candidates "
           f"within {budget_ms:g} ms")
    if len(tied) > 1:
        others = ", ".join(r["candidate"] for r in tied if r is not chosen)
        why += f" (tied within {TIE} with {others}; chosen as the fastest)"
    better = [r for r in over if _metric(r, *SCORE) > _metric(chosen, *SCORE) + TIE]
    if better:
        top = max(better, key=lambda r: _metric(r, *SCORE))
        why += (f"; {top['candidate']} scores higher ({_metric(top, *SCORE):.3f}) but needs "
                f"{top['query_ms_p95']:.1f} ms")
    return {"budget_ms": budget_ms, "candidate": chosen["candidate"], "why": why}


def _f(value: Any, fmt: str = ".3f", none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a fixed-width text table, with skipped and failed candidates below."""
    head = ("candidate", "dim", "R@5 d/h", "R@10 d/h", "MRR@10 d/h", "nDCG@10 d/h",
            "chunks/s", "q p50/p95 ms", "index MB", "peak MB", "dR@10 h", "x embed", "x query")
    lines = []
    for r in usable(result["candidates"]):
        d = r.get("vs_reference") or {}
        pair = lambda name: f"{_f(_metric(r, 'dense', name))}/{_f(_metric(r, 'hybrid', name))}"
        lines.append((
            r["candidate"], _f(r.get("dimension"), "d"), pair("recall@5"), pair("recall@10"),
            pair("mrr@10"), pair("ndcg@10"), _f(r.get("chunks_per_s"), ".1f"),
            f"{_f(r.get('query_ms_p50'), '.1f')}/{_f(r.get('query_ms_p95'), '.1f')}",
            _f(r.get("index_bytes", 0) / 2**20, ".1f"), _f(r.get("peak_rss_mb"), ".0f"),
            _f(d.get("hybrid_recall@10"), "+.3f"), _f(d.get("embed_speedup"), ".2f"),
            _f(d.get("query_speedup_p95"), ".2f")))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
           for row in (head, *lines)]
    out.insert(1, "  ".join("-" * w for w in widths))
    for r in result["candidates"]:
        if r.get("skipped"):
            out.append(f"skipped {r['candidate']}: {r['skipped']}")
        elif r.get("failed"):
            out.append(f"failed {r['candidate']}: {r['failed']}")
    return "\n".join(out)


def format_report(result: dict[str, Any]) -> str:
    ds, corpus = result["dataset"], result["corpus"]
    lines = [f"{ds['name']}: {ds['cases']} questions; corpus {corpus['path']}: {corpus['files']} "
             f"files, {corpus['chunks']} chunks ({corpus['chunk_size']} tokens), "
             f"{len(corpus['failed'])} failed",
             "d = dense only, h = hybrid (BM25 + dense, the default); chunks/s = embedding "
             "throughput; q = query embedding latency; x = speed-up against "
             f"{result['reference']}; dR@10 h = hybrid Recall@10 change against it", "",
             format_table(result), ""]
    for rec in result.get("recommendations", []):
        lines.append(f"recommended within {rec['budget_ms']:g} ms: "
                     f"{rec['candidate'] or 'none'} ({rec['why']})")
    load = result["machine"].get("loadavg_at_start")
    lines.append(f"took {result['wall_s']:.0f} s on {result['machine']['cpus']} CPUs"
                 + (f", load average {load[0]:.1f} at the start and "
                    f"{result['loadavg_at_end'][0]:.1f} at the end" if load else ""))
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Hybrid nDCG@10 against query-embedding p95 (left) and embedding throughput (right)."""
    rows = [r for r in usable(result["candidates"]) if _metric(r, *SCORE) is not None]
    fig = Figure(figsize=(10, 4), dpi=100)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for r in rows:
        x = max(r.get("query_ms_p95") or 0.0, 0.05)  # BM25 embeds nothing: drawn at the left edge
        y = _metric(r, *SCORE)
        left.scatter([x], [y], color="#3b6ea8")
        left.annotate(r["candidate"], (x, y), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
        if _metric(r, "dense", "ndcg@10") is not None:
            left.scatter([x], [_metric(r, "dense", "ndcg@10")], color="#c0392b", marker="x")
    for rec in result.get("recommendations", []):
        left.axvline(rec["budget_ms"], color="grey", linestyle="--", linewidth=1)
    left.set_xscale("log")
    left.set_xlabel("query embedding p95 (ms, log)", fontsize=8)
    left.set_ylabel("nDCG@10 (dot: hybrid, x: dense)", fontsize=8)
    left.set_title(f"{result['dataset']['name']}: quality against query latency", fontsize=9)
    speed = [r for r in rows if r.get("chunks_per_s")]
    right.barh([r["candidate"] for r in speed], [r["chunks_per_s"] for r in speed],
               color="#3b6ea8")
    right.set_xscale("log")
    right.set_xlabel("embedding throughput (chunks/s, log)", fontsize=8)
    right.set_title(f"{result['corpus']['chunks']} chunks", fontsize=9)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path
