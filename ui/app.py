"""A Gradio chat over one index: answers with numbered sources listed under them.

Binds to 127.0.0.1 unless told otherwise; analytics are off (`rag.process.apply_defaults`).
"""

from __future__ import annotations

from typing import Any


def format_answer(answer: Any) -> str:
    """The answer text followed by its sources, as Markdown."""
    lines = [answer.text]
    if answer.citations:
        lines.append("")
        lines.append("**Sources**")
        for c in answer.citations:
            snippet = " ".join(c.text.split())[:160]
            lines.append(f"- [{c.n}] `{c.label()}`: {snippet}")
    return "\n".join(lines)


def build_app(rag: Any):
    from rag.process import apply_defaults

    apply_defaults()  # analytics off before gradio loads
    import gradio as gr

    def respond(message: str, history: list):
        """Stream the answer as it is written, then show it with its sources."""
        if not message.strip():
            yield "Ask a question about the indexed documents."
            return
        stream = rag.stream(message)
        shown = ""
        for delta in stream:
            shown += delta
            yield shown
        yield format_answer(stream.answer)

    return gr.ChatInterface(
        respond,
        title="rag: answers with sources",
        api_name="ask",
        analytics_enabled=False,
        description=f"Index: {rag.index_dir}",
    )


def launch(rag: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    app = build_app(rag)
    print(f"UI listening on http://{host}:{port}", flush=True)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
               share=False, show_error=True)
    return app
