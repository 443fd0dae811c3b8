"""The headless API (`gradio_client`) returns the CLI's `--json` documents; collections never
see each other's chunks; the chat answers follow-ups with source cards."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.ui.conftest import SAMPLE, make_pdf

QUESTION = "How long should green tea steep?"


class Borrowed:
    """The UI's open RAG for the CLI to use: the CLI closes what it opens, this one stays open."""

    def __init__(self, rag):
        self._rag = rag

    def __getattr__(self, name):
        return getattr(self._rag, name)

    def close(self):
        pass


def cli_json(ui, collection: str, *argv: str) -> dict:
    from rag.cli import main

    rag = ui.service.rag(collection)
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([argv[0], *argv[1:], "--index", str(rag.index_dir), "--json"],
                    open_rag=lambda *a, **k: Borrowed(rag))
    assert code in (0, 1, 3), code
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def client(ui):
    from gradio_client import Client

    # download_files=False: gradio_client would otherwise take every {"path": ...} in a JSON
    # answer (the CLI's ingest report) for a file to download
    return Client(ui.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def ingested(ui, client, tmp_path_factory):
    from gradio_client import handle_file

    files = [SAMPLE / "tea_brewing_guide.md", SAMPLE / "harbor_lamp_manual.txt"]
    return client.predict([handle_file(str(f)) for f in files], "alpha", api_name="/ingest")


def test_every_endpoint_returns_the_cli_json(ui, client, ingested):
    area = ui.service.area("alpha")
    statuses = {Path(f["path"]).name: f["status"] for f in ingested["files"]}
    assert statuses == {"tea_brewing_guide.md": "added", "harbor_lamp_manual.txt": "added"}
    stored = [f["path"] for f in ingested["files"] if f["status"] == "added"]
    assert all(Path(p).parent == area.resolve() for p in stored)

    # ingest: the CLI over the same stored files reads them as unchanged, otherwise the same
    again = cli_json(ui, "alpha", "ingest", *stored)
    assert [(f["path"], f["chunks"]) for f in again["files"]] == \
        [(f["path"], f["chunks"]) for f in ingested["files"] if f["status"] == "added"]
    assert set(again) == set(ingested) == {"files", "totals"}
    assert again["totals"]["chunks"] == ingested["totals"]["chunks"]

    assert client.predict("alpha", api_name="/stats") == cli_json(ui, "alpha", "stats")

    for mode in ("hybrid", "bm25", "dense"):
        api = client.predict("green tea steeping time", "alpha", mode, 3, api_name="/retrieve")
        assert api == cli_json(ui, "alpha", "retrieve", "green tea steeping time", "--mode", mode,
                               "--top-k", "3")
        assert len(api["results"]) == 3 and set(api["results"][0]) >= {"ranks", "scores", "page"}
    # search only in one file, named as the library lists it: the CLI's --source with its path
    lamp_path = next(p for p in stored if p.endswith("harbor_lamp_manual.txt"))
    api = client.predict("green tea steeping time", "alpha", "hybrid", 3, "harbor_lamp_manual.txt",
                         api_name="/retrieve")
    assert api == cli_json(ui, "alpha", "retrieve", "green tea steeping time", "--top-k", "3",
                           "--source", lamp_path)
    assert api["results"] and {r["source"] for r in api["results"]} == {lamp_path}

    api = client.predict(QUESTION, "alpha", 0, api_name="/ask")
    cli = cli_json(ui, "alpha", "ask", QUESTION)
    timed = ("timings_ms", "stages_ms")  # measured, so they differ between two runs
    assert set(api) == set(cli) == {"answer", "citations", "contexts", "decline_reason", *timed,
                                    "counts"}
    assert {k: v for k, v in api.items() if k not in timed} == \
        {k: v for k, v in cli.items() if k not in timed}
    assert "2 minutes" in api["answer"] or "2-3 minutes" in api["answer"], api["answer"]
    assert any(c["source"].endswith("tea_brewing_guide.md") for c in api["citations"])

    lamp = next(p for p in stored if p.endswith("harbor_lamp_manual.txt"))
    deleted = client.predict("harbor_lamp_manual.txt", "alpha", api_name="/delete")
    assert deleted["source"] == lamp and deleted["chunks"] > 0
    assert not Path(lamp).exists()  # the uploaded copy went with it
    assert client.predict("harbor_lamp_manual.txt", "alpha", api_name="/delete")["chunks"] == 0
    # the CLI's delete of a source says the same
    from gradio_client import handle_file

    client.predict([handle_file(str(SAMPLE / "harbor_lamp_manual.txt"))], "alpha", api_name="/ingest")
    assert cli_json(ui, "alpha", "delete", lamp) == deleted


def test_refused_uploads_are_failed_lines_and_the_rest_go_in(ui, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    good = tmp_path / "kettle.md"
    good.write_text("The kettle whistles when the water boils.")
    doc = ui.service.ingest_json([("empty.txt", empty), ("../../etc/passwd", good),
                                  ("kettle.md", good)], "gamma")
    by_name = {f["path"]: f for f in doc["files"]}
    assert by_name["empty.txt"]["status"] == "failed" and "0 bytes" in by_name["empty.txt"]["error"]
    assert by_name["../../etc/passwd"]["status"] == "failed"
    assert "a path, not a file name" in by_name["../../etc/passwd"]["error"]
    assert doc["totals"] == {"files": 3, "chunks": 1, "added": 1, "failed": 2}
    assert sorted(p.name for p in ui.service.area("gamma").iterdir()) == ["kettle.md"]


def test_a_collection_never_sees_another_collections_chunks(ui, client, ingested, tmp_path):
    from gradio_client import handle_file

    pdf = make_pdf(tmp_path / "observatory.pdf")
    client.predict([handle_file(str(pdf))], "beta", api_name="/ingest")
    alpha_area, beta_area = (ui.service.area(n) for n in ("alpha", "beta"))
    queries = ["observatory telescope Voss brothers", "green tea steep", "lamp warranty",
               "parking for cyclists"]
    for query in queries:
        for mode in ("hybrid", "bm25", "dense"):
            for name, area in (("alpha", alpha_area), ("beta", beta_area)):
                hits = client.predict(query, name, mode, 10, api_name="/retrieve")["results"]
                assert hits or mode == "bm25", (query, mode, name)  # bm25: no shared term, no hit
                assert all(Path(h["source"]).parent == area.resolve() for h in hits), \
                    (query, mode, name, [h["source"] for h in hits])
    assert client.predict("beta", api_name="/stats")["sources"] == 1
    names = ui.service.collections.names()
    assert {"alpha", "beta"} <= set(names)
    with pytest.raises(Exception, match="no collection named"):
        ui.service.stats_json("nosuch")
    assert "nosuch" not in ui.service.collections.names()  # reading made no folder


def test_index_files_are_never_served(ui, ingested):
    import urllib.error
    import urllib.request

    catalog = ui.service.rag("alpha").index_dir / "catalog.sqlite"
    assert catalog.is_file()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{ui.url}gradio_api/file={catalog}", timeout=30)
    assert refused.value.code == 403
    stored = next(ui.service.area("alpha").iterdir())
    with urllib.request.urlopen(f"{ui.url}gradio_api/file={stored}", timeout=30) as served:
        assert served.status == 200


def test_chat_streams_follow_ups_with_source_cards(ui, ingested):
    from ui.chat import respond

    shown, said = [], []
    steps = list(respond(ui.service, QUESTION, shown, said, "alpha", {}))
    assert len(steps) > 3  # a placeholder, streamed pieces, then the final text with cards
    shown, said, box = steps[-1]
    assert box == "" and [m["role"] for m in said] == ["user", "assistant"]
    final = shown[-1]["content"]
    assert 'class="rag-card"' in final and "tea_brewing_guide.md" in final
    assert "<mark>" in final and "dense #" in final

    steps = list(respond(ui.service, "And how hot should the water be?", shown, said, "alpha", {}))
    shown, said, _ = steps[-1]
    assert len(said) == 4 and len(shown) == 4
    assert "tea_brewing_guide.md" in shown[-1]["content"], shown[-1]["content"]

    shown, said, _ = list(respond(ui.service, "What is the population of the largest city on Mars?",
                                  [], [], "alpha", {}))[-1]
    assert "Not found" in shown[-1]["content"]


def test_the_chat_searches_only_in_the_files_picked(ui, ingested):
    """The chat's "search only in" picker: the answer's cards come from the picked file alone;
    a pick the collection no longer holds says so instead of searching everything."""
    from ui import library
    from ui.chat import respond

    ui.service.ingest_json([("harbor_lamp_manual.txt", SAMPLE / "harbor_lamp_manual.txt")],
                           "alpha")  # an earlier test may have deleted it
    picks = dict(library.choices(ui.service.rag("alpha")))
    assert set(picks) >= {"tea_brewing_guide.md", "harbor_lamp_manual.txt"}
    lamp, tea = picks["harbor_lamp_manual.txt"], picks["tea_brewing_guide.md"]
    warranty = "What does the Harbor L-200 warranty cover?"
    shown, _, _ = list(respond(ui.service, warranty, [], [], "alpha", {}, [lamp]))[-1]
    final = shown[-1]["content"]
    assert "harbor_lamp_manual.txt" in final and "tea_brewing_guide.md" not in final, final
    shown, _, _ = list(respond(ui.service, warranty, [], [], "alpha", {}, [tea]))[-1]
    assert "Not found" in shown[-1]["content"]  # the tea guide alone does not answer it
    shown, _, _ = list(respond(ui.service, QUESTION, [], [], "alpha", {},
                               [str(Path(lamp).with_name("gone.txt"))]))[-1]
    assert "Not found" in shown[-1]["content"]
    assert "nothing matches the filters: no indexed file is" in shown[-1]["content"]


def test_stop_mid_answer_frees_the_model_for_the_next_one(ui, ingested, llm):
    """Stop closes the chat generator mid-stream: the model's lock must be free at once, not
    when the garbage collector finds the abandoned stream."""
    import gc

    from ui.chat import respond

    gc.disable()  # as if no collection ran for a while
    try:
        steps = respond(ui.service, QUESTION, [], [], "alpha", {})
        next(steps)  # the placeholder
        next(steps)  # the first streamed piece: the model is writing, its lock held
        steps.close()  # what Gradio does on Stop
        assert llm._lock.acquire(timeout=5), "the model stayed locked after Stop"
        llm._lock.release()
    finally:
        gc.enable()


def test_library_lists_deletes_and_reingests(ui, ingested):
    from ui import library

    rag, area = ui.service.rag("alpha"), ui.service.area("alpha")
    rows = {r[0]: r for r in library.rows(rag)}
    assert rows["tea_brewing_guide.md"][1] == "md" and rows["tea_brewing_guide.md"][2] > 0
    path, result = library.reingest(rag, "tea_brewing_guide.md", area)
    assert result.status == "added" and result.chunks == rows["tea_brewing_guide.md"][2]
    assert library.reingest(rag, "nothing.md", area) == (None, None)
    assert ui.service.retrieve_json("green tea steep", "alpha", "bm25", 1)["results"][0]["source"] == path


def test_settings_are_per_session_views(ui, ingested):
    base = ui.service.rag("alpha")
    assert ui.service.view("alpha", {}) is base
    bm25_only = ui.service.view("alpha", {"retrieval_mode": "bm25", "top_k": 2, "fusion": "rrf"})
    assert bm25_only is not base and bm25_only.index is base.index
    assert bm25_only.settings.retrieval_mode == "bm25" and base.settings.retrieval_mode == "hybrid"
    hits = bm25_only.retrieve("green tea", top_k=2)
    # bm25 alone found them (the cross-encoder then reorders them: ranks["rerank"])
    assert len(hits) == 2 and all(set(h.ranks) - {"rerank"} == {"bm25"} for h in hits)
    with pytest.raises(Exception, match="retrieval mode"):
        ui.service.view("alpha", {"retrieval_mode": "psychic"})
    assert bm25_only.llm is base.llm  # retrieval settings only: the loaded model is shared


def test_evaluation_tab_runs_rag_eval_on_the_collection(ui, ingested, tmp_path):
    from rag.cli import main
    from ui.evaluation import run_eval
    from ui.sources import file_url

    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"id": "green", "question": QUESTION, "reference_answer": "2 minutes",
                                "reference_contexts": ["steep green tea for 2 minutes"]}) + "\n"
                    + json.dumps({"id": "mars", "question": "What is the population of Mars?",
                                  "answerable": False}) + "\n")
    result = run_eval(ui.service, "alpha", data, answers=False)
    assert result.code == 0, result.text
    assert "recall@5" in result.text and "mrr@10" in result.text
    assert result.report is not None and file_url(result.report, ui.service.served)
    assert result.plots and all(file_url(p, ui.service.served) for p in result.plots)

    baseline = tmp_path / "baselines.json"
    rag = ui.service.rag("alpha")
    with redirect_stdout(io.StringIO()):
        assert main(["eval", str(data), "--index", str(rag.index_dir), "--retrieval-only",
                     "--baseline", str(baseline), "--update-baseline"],
                    open_rag=lambda *a, **k: Borrowed(rag)) == 0
    compared = run_eval(ui.service, "alpha", data, answers=False, baseline=baseline)
    assert compared.code == 0 and "baseline" in compared.text.lower(), compared.text
    assert ui.service.rag("alpha").index.catalog.count() > 0  # the lent index is still open
    wrong = run_eval(ui.service, "alpha", tmp_path / "missing.jsonl")
    assert wrong.code == 2 and "missing.jsonl" in wrong.text, wrong.text
