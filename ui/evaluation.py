"""The Evaluation tab: `rag eval` on the selected collection, with its tables, plots and the
difference from a baseline.

Why through `rag.cli.main(["eval", ...])` and not `import eval`: `ui` and `eval` are sibling
layers that must not import each other (the import-linter contract in pyproject.toml); `rag
eval` is the evaluation's published interface, reached here the way `rag` itself reaches it,
through the `rag.commands` entry point. The UI lends it the collection's open index (Milvus
Lite has one owner, so a `rag eval` subprocess could not open it) as a fresh view, so whatever
the run installs on its RAG (an answer cache) stays off the RAG the chat uses.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_one_at_a_time = threading.Lock()  # stdout is captured process-wide while a run prints


@dataclass
class EvalResult:
    code: int  # rag eval's exit status: 0 ok, 1 regressed against the baseline, 2 usage error
    text: str  # the summary table (and the baseline comparison), or the error
    report: Path | None = None  # index.html
    plots: list[Path] = field(default_factory=list)


class _Lent:
    """A RAG the command may use and "close": closing it leaves the shared index open."""

    def __init__(self, rag: Any):
        self._rag = rag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rag, name)

    def close(self) -> None:
        pass


def run_eval(service: Any, collection: str, dataset: str | Path, *, answers: bool = False,
             limit: int | None = 20, baseline: str | Path | None = None) -> EvalResult:
    """Run the evaluation suite on `dataset` against the collection; the report goes into the
    collection's served folder (so its page and plots open in the browser). Answers, when
    asked for, are scored without the LLM judge (judged metrics: `rag eval` on the CLI)."""
    from rag.api import RAG
    from rag.cli import main

    base = service.rag(collection)
    view = RAG(base.settings, llm=base.llm if answers else None, embedder=base.embedder,
               index=base.index, reranker=base.reranker)
    out = service.area(collection).parent / "reports" / time.strftime("%Y%m%d-%H%M%S")
    argv = ["eval", str(dataset), "--index", str(base.index_dir), "--report", str(out),
            "--retrieval-only" if not answers else "--no-judge"]
    if limit:
        argv += ["--limit", str(int(limit))]
    if baseline:
        argv += ["--baseline", str(baseline)]
    printed, errors = io.StringIO(), io.StringIO()
    with _one_at_a_time, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        try:
            code = main(argv, open_rag=lambda *a, **k: _Lent(view))
        except SystemExit as exc:  # argparse on a bad argument
            code = int(exc.code or 2)
        except Exception as exc:  # noqa: BLE001 - shown in the tab; the session survives
            code = 2
            errors.write(f"{type(exc).__name__}: {exc}\n")
    lines = [line for line in printed.getvalue().splitlines() if not line.startswith("report: ")]
    problems = [line for line in errors.getvalue().splitlines()
                if line.startswith("rag") and ("error" in line or "regressed" in line)]
    text = "\n".join(lines + problems).strip() or errors.getvalue().strip()[-2000:]
    html = out / "index.html"
    plots = sorted((out / "plots").glob("*.png")) if out.is_dir() else []
    return EvalResult(code, text, html if html.is_file() else None, plots)
