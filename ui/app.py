"""The Gradio app: chat with sources you can open, uploads with progress, a library, collections,
per-session settings, an evaluation tab, and a headless API (`/ask`, `/retrieve`, `/ingest`,
`/delete`, `/stats`).

This module is only the layout and the wiring; what each panel does lives in `ui.chat`,
`ui.upload`, `ui.library`, `ui.service`, `ui.sources`, `ui.preview` and `ui.evaluation`. Parts are passed in
(`build_app(open_rag=..., root=...)`), so tests share loaded models. Binds to 127.0.0.1 unless
told otherwise; analytics are off (`rag.process.apply_defaults`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from ui import library, upload
from ui.chat import respond
from ui.collections import Collections, check_name
from ui.safety import check_bind
from ui.service import Service, defaults
from ui.sources import CSS
from ui.watching import Watches

TITLE = "rag: answers with sources"


def build_app(open_rag: Callable[..., Any], root: str | Path, *,
              extra: dict[str, str | Path] | None = None,
              max_upload_mb: float = upload.DEFAULT_MAX_MB) -> Any:
    """The Blocks app over the collections under `root` (plus `extra` existing indexes by name).

    `open_rag(index_dir)` opens one collection's index (shaped like `RAG.open`); the returned
    app carries its `Service` as `app.rag_service`."""
    from rag.process import apply_defaults

    apply_defaults()  # analytics off before gradio loads
    import gradio as gr

    service = Service(Collections(root, open_rag, extra), max_upload_mb=max_upload_mb)
    watches = Watches(service)
    names = service.collections.names()
    first = names[0]
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"## {TITLE}")
        with gr.Row():
            collection = gr.Dropdown(names, value=first, label="Collection", elem_id="collection",
                                     scale=3, interactive=True)
            new_name = gr.Textbox(label="New collection", placeholder="letters, digits, - or _",
                                  elem_id="new-collection", scale=2)
            create = gr.Button("Create", elem_id="create-collection", scale=1)
        notice = gr.Markdown(elem_id="notice")
        prefs = gr.State(defaults(service.rag(first, create=True).settings))
        said = gr.State([])

        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chatbot = gr.Chatbot(label="Answers", height=560, elem_id="chatbot",
                                     sanitize_html=True, feedback_options=None)
                with gr.Row():
                    message = gr.Textbox(placeholder="Ask about this collection's documents",
                                         show_label=False, elem_id="question", scale=6)
                    send = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                    stop = gr.Button("Stop", elem_id="stop", scale=1)
                    clear = gr.Button("New chat", elem_id="new-chat", scale=1)
                search_in = gr.Dropdown(library.choices(service.rag(first)), value=[],
                                        multiselect=True, interactive=True, elem_id="search-in",
                                        label="Search only in (empty: every file)")
            with gr.Tab("Upload", id="upload"):
                files = gr.File(file_count="multiple", type="filepath", elem_id="upload-files",
                                label=f"Documents and recordings (up to {max_upload_mb:.0f} MB each)")
                with gr.Row():
                    ingest = gr.Button("Ingest", variant="primary", elem_id="ingest")
                    cancel = gr.Button("Cancel", elem_id="cancel-ingest")
                results = gr.Textbox(label="Results", lines=10, elem_id="ingest-results",
                                     interactive=False)
            with gr.Tab("Library", id="library"):
                table = gr.Dataframe(headers=library.COLUMNS, interactive=False,
                                     elem_id="library-table", wrap=True)
                with gr.Row():
                    source = gr.Textbox(label="Source (file name or path; click a row)",
                                        elem_id="library-source", scale=4)
                    delete = gr.Button("Delete", variant="stop", elem_id="delete", scale=1)
                    reingest = gr.Button("Re-ingest", elem_id="reingest", scale=1)
                    refresh = gr.Button("Refresh", elem_id="refresh", scale=1)
                library_status = gr.Markdown(elem_id="library-status")
                watch = gr.Checkbox(label="Watch this collection's upload folder (files added, "
                                          "edited, renamed or removed there are re-indexed)",
                                    value=False, elem_id="watch")
                watch_status = gr.Markdown(elem_id="watch-status")
            with gr.Tab("Settings", id="settings"):
                base = service.rag(first).settings
                top_k = gr.Slider(1, 20, value=base.top_k, step=1, label="top-k")
                mode = gr.Radio(["hybrid", "bm25", "dense"], value=base.retrieval_mode,
                                label="Retrieval mode", elem_id="retrieval-mode")
                fusion = gr.Radio(["zscore", "weighted", "rrf"], value=base.fusion, label="Fusion")
                with gr.Row():
                    bm25_w = gr.Number(base.bm25_weight, label="BM25 weight")
                    dense_w = gr.Number(base.dense_weight, label="Dense weight")
                rerank = gr.Textbox(base.rerank_model, label="Rerank model folder (empty: none)")
                backend = gr.Radio(["llama-cpp", "openai"], value=base.llm_backend, label="LLM backend")
                with gr.Row():
                    base_url = gr.Textbox(base.llm_base_url, label="LLM endpoint (openai backend)")
                    llm_model = gr.Textbox(base.llm_model, label="LLM model")
                apply = gr.Button("Apply to this session", elem_id="apply-settings")
                settings_status = gr.Markdown(elem_id="settings-status")
            with gr.Tab("Evaluation", id="evaluation"):
                gr.Markdown("Runs `rag eval` on this collection: retrieval metrics and latency, "
                            "or also the model's answers (counted metrics; the judged ones run "
                            "with `rag eval` on the command line).")
                with gr.Row():
                    dataset = gr.File(label="Dataset (JSONL or LabelledRagDataset JSON)",
                                      file_types=[".jsonl", ".json"], type="filepath",
                                      elem_id="eval-dataset")
                    baseline_file = gr.File(label="Baseline (optional, baselines JSON)",
                                            file_types=[".json"], type="filepath",
                                            elem_id="eval-baseline")
                with gr.Row():
                    with_answers = gr.Checkbox(False, label="Also answer each question (slow)")
                    limit = gr.Number(20, precision=0, label="Cases (0: all)")
                    run_eval_button = gr.Button("Run evaluation", variant="primary",
                                                elem_id="run-eval")
                eval_summary = gr.Textbox(label="Summary", lines=14, elem_id="eval-summary",
                                          interactive=False)
                eval_plots = gr.HTML(elem_id="eval-plots")

        # --- chat ---------------------------------------------------------------------------
        def chat(message_: str, shown: list, said_: list, collection_: str, prefs_: dict,
                 search_in_: list[str] | None):
            yield from respond(service, message_, shown, said_, collection_, prefs_, search_in_)

        def sources_to_pick(collection_: str, picked: list[str] | None):
            """The picker's files after the library changed (kept picks that are still there)."""
            options = library.choices(service.rag(collection_))
            held = {path for _, path in options}
            return gr.update(choices=options, value=[p for p in picked or [] if p in held])

        chat_io = dict(fn=chat, inputs=[message, chatbot, said, collection, prefs, search_in],
                       outputs=[chatbot, said, message], api_visibility="private")
        asked = [message.submit(**chat_io), send.click(**chat_io)]
        stop.click(None, cancels=asked)
        clear.click(lambda: ([], []), outputs=[chatbot, said], api_visibility="private")

        # --- upload ---------------------------------------------------------------------------
        def ingest_upload(paths: list[str] | None, collection_: str,
                          progress: Any = gr.Progress()):
            """Store and index the files one by one; a line per file as each finishes."""
            items = [(Path(p).name, p) for p in (paths or [])]
            if not items:
                yield "Choose one or more files first."
                return
            stop_after = threading.Event()
            lines: list[str] = []
            counts: dict[str, int] = {}
            progress(0, desc=f"0/{len(items)} files")
            try:
                for done, total, line in upload.ingest_files(
                        service.rag(collection_, create=True), service.area(collection_), items,
                        max_bytes=service.max_bytes, lock=service.write_lock(collection_),
                        cancel=stop_after):
                    lines.append(str(line))
                    counts[line.status] = counts.get(line.status, 0) + 1
                    progress(done / total, desc=f"{done}/{total} files")
                    yield "\n".join(lines)
            finally:
                stop_after.set()  # a cancelled event stops after the file in progress
            summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            yield "\n".join(lines + [f"done: {summary}"])

        ingesting = ingest.click(ingest_upload, [files, collection], results,
                                 api_visibility="private", concurrency_limit=2)
        cancel.click(None, cancels=[ingesting])

        # --- library --------------------------------------------------------------------------
        def show_library(collection_: str):
            return library.rows(service.rag(collection_))

        def pick(data: Any, evt: gr.SelectData):
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            try:
                return data.iloc[row]["path"]
            except Exception:  # noqa: BLE001 - a click outside the rows
                return gr.update()

        # Gradio finds the event-data parameter by its type hint; with postponed annotations
        # "gr.SelectData" names a module gradio is imported into only here, so the hint is
        # given as the class (else the click calls pick without it and fails).
        pick.__annotations__["evt"] = gr.SelectData

        def delete_source(source_: str, collection_: str):
            doc = service.delete_json(source_, collection_)
            if not doc["chunks"]:
                return f"Not in this collection: `{_md(source_)}`", show_library(collection_)
            return (f"Deleted `{_md(Path(doc['source']).name)}` ({doc['chunks']} chunks)",
                    show_library(collection_))

        def reingest_source(source_: str, collection_: str, progress: Any = gr.Progress()):
            progress(0, desc="re-ingesting")
            with service.write_lock(collection_):
                path, result = library.reingest(service.rag(collection_), source_,
                                                service.area(collection_))
            if path is None:
                return f"Not in this collection: `{_md(source_)}`", show_library(collection_)
            line = upload.Line(Path(path).name, result.status, result.error or "", result.chunks)
            return f"`{_md(str(line))}`", show_library(collection_)

        def toggle_watch(on: bool, collection_: str):
            (watches.start if on else watches.stop)(collection_)
            return _md_block(watches.status(collection_)), show_library(collection_)

        watch.input(toggle_watch, [watch, collection], [watch_status, table],
                     api_visibility="private")
        refresh.click(lambda c: _md_block(watches.status(c)), collection, watch_status,
                      api_visibility="private")
        table.select(pick, [table], source, api_visibility="private")
        delete.click(delete_source, [source, collection], [library_status, table],
                     api_visibility="private")
        reingest.click(reingest_source, [source, collection], [library_status, table],
                       api_visibility="private")
        refresh.click(show_library, collection, table, api_visibility="private")
        ingesting.then(show_library, collection, table, api_visibility="private")
        # the chat's "search only in" picker follows the library
        table.change(sources_to_pick, [collection, search_in], search_in, api_visibility="private")

        # --- collections ----------------------------------------------------------------------
        def create_collection(name: str):
            try:
                name = check_name(name)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                return gr.update(), f"{_md(str(exc))}", gr.update()
            service.rag(name, create=True)
            return (gr.update(choices=service.collections.names(), value=name),
                    f"Collection `{name}` ready.", "")

        def switch(collection_: str):
            """A new collection starts a new conversation: nothing of the other carries over."""
            return ([], [], show_library(collection_), "", f"Collection: `{_md(collection_)}`",
                    watches.is_on(collection_), _md_block(watches.status(collection_)))

        create.click(create_collection, new_name, [collection, notice, new_name],
                     api_visibility="private")
        collection.change(switch, collection, [chatbot, said, table, results, notice, watch,
                                               watch_status], api_visibility="private")
        app.load(show_library, collection, table, api_visibility="private")

        # --- settings -------------------------------------------------------------------------
        def apply_settings(*values: Any):
            from ui.service import SESSION_KEYS, check_prefs

            chosen = dict(zip(SESSION_KEYS, values))
            try:
                chosen = check_prefs(chosen)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                return gr.update(), f"Not applied: {_md(str(exc))}"
            return chosen, "Applied to this browser session only."

        apply.click(apply_settings, [top_k, mode, fusion, bm25_w, dense_w, rerank, backend,
                                     base_url, llm_model], [prefs, settings_status],
                    api_visibility="private")

        # --- evaluation -----------------------------------------------------------------------
        def evaluate(dataset_: str | None, baseline_: str | None, answers_: bool, limit_: float,
                     collection_: str, progress: Any = gr.Progress(track_tqdm=True)):
            from ui.evaluation import run_eval
            from ui.sources import file_url

            if not dataset_:
                return "Choose a dataset file first.", ""
            progress(0, desc="evaluating")
            result = run_eval(service, collection_, dataset_, answers=bool(answers_),
                              limit=int(limit_ or 0) or None, baseline=baseline_)
            parts = []
            if result.report is not None:
                url = file_url(result.report, service.served)
                if url:
                    parts.append(f'<p><a class="rag-open" target="_blank" rel="noopener" '
                                 f'href="{_md(url)}">open the full report</a></p>')
            for plot in result.plots:
                url = file_url(plot, service.served)
                if url:
                    parts.append(f'<img class="rag-plot" alt="{_md(plot.stem)}" src="{_md(url)}" '
                                 'style="max-width:48%;margin:4px">')
            verdict = {0: "", 1: "REGRESSED against the baseline\n", 2: "Could not run:\n"}
            return verdict.get(result.code, "") + result.text, "".join(parts)

        run_eval_button.click(evaluate, [dataset, baseline_file, with_answers, limit, collection],
                              [eval_summary, eval_plots], api_visibility="private")

        # --- headless API (the CLI's JSON) ----------------------------------------------------
        def ask(question: str, collection: str = first, top_k: int = 0, source: str = "") -> dict:
            """`rag ask --json`: the answer, its citations and contexts, timings. `source`:
            search only these files (names or paths, comma-separated; empty: every file)."""
            return service.ask_json(question, collection, top_k or None, source)

        def retrieve(query: str, collection: str = first, mode: str = "", top_k: int = 0,
                     source: str = "") -> dict:
            """`rag retrieve --json`: the fused top-k with each retriever's rank and score.
            `source`: as for ask."""
            return service.retrieve_json(query, collection, mode or None, top_k or None, source)

        def delete_api(source: str, collection: str = first) -> dict:
            """`rag delete --json`: {"source", "chunks"}."""
            return service.delete_json(source, collection)

        def stats(collection: str = first) -> dict:
            """`rag stats --json`."""
            return service.stats_json(collection)

        gr.api(ask, api_name="ask", concurrency_limit=2)
        gr.api(retrieve, api_name="retrieve", concurrency_limit=8)
        gr.api(delete_api, api_name="delete")
        gr.api(stats, api_name="stats", concurrency_limit=4)
        with gr.Column(visible=False):
            api_files = gr.File(file_count="multiple", type="filepath")
            api_collection = gr.Textbox(first)
            api_out = gr.JSON()
            api_go = gr.Button()

        def ingest_api(paths: list[str] | None, collection_: str) -> dict:
            """`rag ingest --json` for uploaded files (checked and stored in the upload area)."""
            return service.ingest_json([(Path(p).name, p) for p in (paths or [])],
                                       collection_ or first)

        api_go.click(ingest_api, [api_files, api_collection], api_out, api_name="ingest")

    app.rag_service = service
    app.rag_watches = watches
    return app


def _md_block(text: str) -> str:
    """Watch status lines: each `code` span escaped like `_md` (paths may hold markup)."""
    import re

    return re.sub(r"`([^`]*)`", lambda m: f"`{_md(m.group(1))}`", text)


def _md(text: str) -> str:
    """Text for a Markdown line: no markup of its own."""
    import html

    return html.escape(" ".join(str(text).split())).replace("`", "'")


def launch(app: Any, host: str = "127.0.0.1", port: int = 7860, *,
           auth: tuple[str, str] | None = None, insecure: bool = False, block: bool = True) -> Any:
    """Serve `app`; a non-loopback `host` needs `auth` (or `insecure`), see `ui.safety`.

    Only the collections' uploads and previews are servable as files (cited PDFs and
    recordings open from them), never index files."""
    check_bind(host, auth, insecure)
    service = app.rag_service
    app.queue(default_concurrency_limit=1)
    print(f"UI listening on http://{host}:{port}", flush=True)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
               show_error=True, auth=auth, allowed_paths=[str(p) for p in service.served],
               max_file_size=service.max_bytes, css=CSS)
    return app
