"""The Library tab's watch switch: files put into a collection's upload folder by hand are
indexed while it is on, and left alone once it is off. No LLM: only the embedder loads."""

from __future__ import annotations

import functools
import time

import pytest


def _found(rag, word: str) -> bool:
    return bool(rag.retrieve(word, top_k=3, mode="bm25"))


def _until(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_watching_a_collection_indexes_its_folder(tmp_path, embedder):
    from rag.api import RAG
    from ui.collections import Collections
    from ui.service import Service
    from ui.watching import Watches

    service = Service(Collections(tmp_path / "root", functools.partial(RAG.open, embedder=embedder)))
    service.rag("alpha", create=True)
    watches = Watches(service)
    try:
        assert watches.status("alpha") == "Watching is off."
        watches.start("alpha")
        assert watches.is_on("alpha")
        folder = service.area("alpha")
        (folder / "field_notes.md").write_text("The ptarmiganite survey found nine nests.\n")
        assert _until(lambda: _found(service.rag("alpha"), "ptarmiganite")), "not indexed in 5 s"
        assert _until(lambda: "added" in watches.status("alpha"))
        assert "field_notes.md" in watches.status("alpha")
        watches.stop("alpha")
        assert not watches.is_on("alpha") and watches.status("alpha") == "Watching is off."
        (folder / "later.md").write_text("The capercaillite survey found three nests.\n")
        time.sleep(1.5)
        assert not _found(service.rag("alpha"), "capercaillite"), "indexed while off"
    finally:
        watches.close()
        service.collections.close()


def test_the_library_tab_has_the_switch(tmp_path, embedder):
    gr = pytest.importorskip("gradio")
    from rag.api import RAG
    from ui.app import build_app

    app = build_app(functools.partial(RAG.open, embedder=embedder), tmp_path / "root")
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"watch", "watch-status"} <= ids
    assert isinstance(app.rag_watches.status("default"), str)
    app.rag_service.collections.close()
