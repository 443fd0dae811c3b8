"""A running UI over a fresh collections root, sharing the session's loaded models."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "rag" / "sample"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # git-ignored: browser screenshots
PDF_PAGES = [
    "The Saltmarsh Observatory opens to visitors on weekdays only.",
    "The observatory telescope is a 40 centimetre reflector built in 1968 by the Voss brothers.",
    "Parking beside the observatory is free for cyclists.",
]


def make_pdf(path: Path, pages: list[str] = PDF_PAGES) -> Path:
    """A small text PDF, one sentence a page (matplotlib, TrueType fonts so the text extracts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for text in pages:
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.1, 0.9, text, fontsize=11)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def start_ui(root: Path, embedder, llm, port: int, settings: dict | None = None, **launch_kwargs):
    """The app on loopback `port`; `settings` go to every collection's `RAG.open`."""
    from rag.api import RAG
    from ui.app import build_app, launch

    app = build_app(functools.partial(RAG.open, embedder=embedder, llm=llm, **(settings or {})),
                    root)
    launch(app, host="127.0.0.1", port=port, block=False, **launch_kwargs)
    return SimpleNamespace(app=app, service=app.rag_service, root=root,
                           url=f"http://127.0.0.1:{port}/")


def stop_ui(ui) -> None:
    ui.app.close()
    ui.service.collections.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory, embedder, llm, free_port):
    started = start_ui(tmp_path_factory.mktemp("ui_root"), embedder, llm, free_port())
    yield started
    stop_ui(started)
