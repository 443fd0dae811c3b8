"""Report plots as PNG files: one score distribution per metric, one latency plot.

matplotlib's object API (`Figure`, rendered by Agg) draws without pyplot, so making a report
selects no backend and opens no window in the caller's process.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".png"


def distribution_plot(name: str, values: list[float], not_scored: int, failed: int,
                      folder: Path) -> Path:
    """A histogram of one metric's per-case values (0..1 metrics get ten bins over [0, 1])."""
    fig = Figure(figsize=(4.2, 2.6), dpi=100)
    ax = fig.add_subplot()
    if values:
        low, high = min(values), max(values)
        unit = low >= 0 and high <= 1
        ax.hist(values, bins=10, range=(0, 1) if unit else None, color="#3b6ea8",
                edgecolor="white")
        mean = sum(values) / len(values)
        ax.axvline(mean, color="#c0392b", linewidth=1.5, label=f"mean {mean:.3f}")
        ax.legend(loc="upper center", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no case scored", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{name}: {len(values)} scored, {not_scored} not scored, {failed} failed",
                 fontsize=9)
    ax.set_ylabel("cases", fontsize=8)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _save(fig, folder / _file_name(f"dist_{name}"))


def latency_plot(timings: dict[str, list[float]], folder: Path) -> Path | None:
    """Box plots of milliseconds per stage (retrieve, generate, total), log scale."""
    stages = {k: v for k, v in timings.items() if v}
    if not stages:
        return None
    fig = Figure(figsize=(5.5, 2.8), dpi=100)
    ax = fig.add_subplot()
    ax.boxplot(list(stages.values()), tick_labels=list(stages), vert=False, whis=(5, 95),
               showfliers=True)
    if min(min(v) for v in stages.values()) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("milliseconds (whiskers: p5-p95)", fontsize=8)
    ax.set_title("latency per stage", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _save(fig, folder / "latency.png")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No version stamp in the file: the same figures give the same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    return path
