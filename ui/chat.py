"""The chat: streamed, multi-turn answers with source cards under each one.

Why a plain history beside the chatbot's: the chatbot shows answers with their cards (HTML);
the model must see only what was said, as `RAG.stream_chat` expects, so follow-ups ("and the
second one?") are rewritten from the conversation, not from card markup.
"""

from __future__ import annotations

import html
from typing import Any, Iterator

from ui.service import Service
from ui.sources import cards

EMPTY = "Ask a question about the documents in this collection."


def respond(service: Service, message: str, shown: list[dict[str, Any]],
            said: list[dict[str, str]], collection: str, prefs: dict[str, Any],
            search_in: list[str] | None = None
            ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, str]], str]]:
    """Stream one answer: yields (chatbot messages, plain conversation, input box value).

    The partial text shows as it is written; when it is done the final text (which may be the
    plain "not found" if the sources do not back it) and its cards replace it. `search_in`:
    the sources (indexed paths or names) the answer may come from; empty: every one."""
    message = (message or "").strip()
    shown = list(shown or [])
    said = list(said or [])
    if not message:
        yield shown + [{"role": "assistant", "content": EMPTY}], said, ""
        return
    shown.append({"role": "user", "content": html.escape(message)})
    shown.append({"role": "assistant", "content": "…"})
    yield shown, said, ""
    try:
        rag = service.view(collection, prefs)
        conversation = said + [{"role": "user", "content": message}]
        top_k = (prefs or {}).get("top_k") or None
        stream = rag.stream_chat(conversation, top_k=top_k,
                                 filters=service.search_in(collection, search_in))
        text = ""
        try:
            for delta in stream:
                text += delta
                shown[-1] = {"role": "assistant", "content": html.escape(text)}
                yield shown, said, ""
        finally:
            stream.close()  # Stop closes this generator: release the model now (see close)
        answer = stream.answer
    except Exception as exc:  # noqa: BLE001 - the session survives; the error is shown
        shown[-1] = {"role": "assistant",
                     "content": f"Could not answer: {' '.join(str(exc).split())[:300]}"}
        yield shown, said, ""
        return
    # Model and user text is escaped: the chatbot renders Markdown, and neither may inject markup.
    body = html.escape(answer.text)
    if answer.declined:
        body = f"**Not found.** {body}"
    if stream.query and stream.query != message:
        body += f"\n\n*searched for: {html.escape(stream.query)}*"
    shown[-1] = {"role": "assistant",
                 "content": body + "\n\n" + cards(answer, stream.hits, stream.query or message,
                                                  service.served, service.preview_url)}
    said = conversation + [{"role": "assistant", "content": answer.text}]
    yield shown, said, ""

