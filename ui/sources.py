"""Source cards under an answer: where it is (file, page, time span), the cited passage with the
question's terms marked, each retriever's rank and score, and a way to open it at that place.

Why a module of its own: every string here comes from documents or users, so all of it is
HTML-escaped in one place (`html.escape`, never string formatting of raw text), and the links
are built from paths only when the file lies inside a folder the server may serve.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote

from retrievers.text import tokenize

AUDIO = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".aiff", ".aif", ".wma"}
VIDEO = {".mp4", ".webm", ".mkv", ".mov"}
WORD = re.compile(r"([^\W_]+(?:'[^\W_]+)*)", re.UNICODE)
FILE_ROUTE = "/gradio_api/file="
PASSAGE_CHARS = 700


def clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def highlight(text: str, query: str) -> str:
    """`text` escaped, with words whose stem is one of the query's terms in `<mark>`."""
    terms = set(tokenize(query))
    out = []
    for piece in WORD.split(text):
        if piece and WORD.fullmatch(piece) and terms.intersection(tokenize(piece)):
            out.append(f"<mark>{html.escape(piece)}</mark>")
        else:
            out.append(html.escape(piece))
    return "".join(out)


def file_url(path: str | Path, served: Iterable[Path]) -> str | None:
    """The Gradio URL of `path` when it lies inside one of the `served` folders, else None."""
    resolved = Path(path).resolve()
    for root in served:
        if resolved.is_relative_to(Path(root).resolve()):
            return FILE_ROUTE + quote(str(resolved))
    return None


def where(c: Any) -> str:
    """'page 3' or '0:07-0:11', as a person says it."""
    parts = []
    if c.page is not None:
        parts.append(f"page {c.page}")
    if c.start is not None:
        parts.append(f"{clock(c.start)}-{clock(c.end if c.end is not None else c.start)}")
    return ", ".join(parts)


def _opener(c: Any, url: str | None, preview: Callable[[Any], str | None] | None = None) -> str:
    if url is None:
        return ""
    suffix = Path(c.source).suffix.lower()
    start = max(0, int(c.start or 0))
    if suffix in AUDIO and c.start is not None:
        return (f'<audio class="rag-player" controls preload="metadata" data-start="{start}" '
                f'src="{html.escape(url)}#t={start}"></audio>')
    if suffix in VIDEO and c.start is not None:
        return (f'<video class="rag-player" controls preload="metadata" width="360" '
                f'data-start="{start}" src="{html.escape(url)}#t={start}"></video>')
    if suffix == ".pdf" and c.page is not None:
        link = (f'<a class="rag-open" target="_blank" rel="noopener" '
                f'href="{html.escape(url)}#page={int(c.page)}">open page {int(c.page)}</a>')
        image = preview(c) if preview is not None else None
        if image:
            link += (f'<details class="rag-preview"><summary>show page {int(c.page)} with the '
                     f'passage</summary><img alt="page {int(c.page)} of {html.escape(Path(c.source).name)}" '
                     f'src="{html.escape(image)}"></details>')
        return link
    return f'<a class="rag-open" target="_blank" rel="noopener" href="{html.escape(url)}">open</a>'


def card(c: Any, hit: Any | None, query: str, served: Iterable[Path],
         preview: Callable[[Any], str | None] | None = None) -> str:
    """One source card; `c` is a `Citation`, `hit` its `Hit` (for ranks and per-retriever scores)."""
    name = Path(c.source).name
    passage = " ".join(c.text.split())
    if len(passage) > PASSAGE_CHARS:
        passage = passage[:PASSAGE_CHARS] + "…"
    ranks = ""
    if hit is not None:
        bits = [f"fused {hit.score:.3f}"]
        for retriever, rank in sorted(hit.ranks.items()):
            score = hit.scores.get(retriever)
            bits.append(f"{retriever} #{rank}" + (f" ({score:.3f})" if score is not None else ""))
        ranks = " · ".join(bits)
    else:
        ranks = f"score {c.score:.3f}"
    place = where(c)
    return (
        f'<div class="rag-card" data-source="{html.escape(name)}">'
        f'<div class="rag-card-head"><b>[{int(c.n)}]</b> <span class="rag-file">{html.escape(name)}</span>'
        + (f' <span class="rag-where">{html.escape(place)}</span>' if place else "")
        + f'</div><div class="rag-passage">{highlight(passage, query)}</div>'
        f'<div class="rag-ranks">{html.escape(ranks)}</div>{_opener(c, file_url(c.source, served), preview)}</div>'
    )


def cards(answer: Any, hits: list, query: str, served: Iterable[Path],
          preview: Callable[[Any], str | None] | None = None) -> str:
    """The cards of an answer's citations (all contexts when it cited none), or the plain
    statement that it declined."""
    if answer.declined:
        why = getattr(answer, "decline_reason", "")
        detail = f' <span class="rag-declined-why">({html.escape(why)})</span>' if why else ""
        return ('<div class="rag-declined">Not found: the indexed documents do not answer '
                f'this, so no answer was made up.{detail}</div>')
    by_id = {h.chunk.chunk_id: h for h in hits}
    shown = answer.citations or answer.contexts
    served = list(served)
    body = "".join(card(c, by_id.get(c.chunk_id), query, served, preview) for c in shown)
    title = "Sources" if answer.citations else "Retrieved (not cited)"
    return f'<div class="rag-sources"><div class="rag-sources-title">{title}</div>{body}</div>'


CSS = """
.rag-sources { margin-top: .5em; }
.rag-sources-title { font-weight: 600; margin-bottom: .25em; }
.rag-card { border: 1px solid #d0d7de; border-radius: 6px; padding: .4em .6em; margin: .3em 0; }
.rag-card mark { background: #fff3a3; padding: 0 1px; }
.rag-where { color: #57606a; margin-left: .4em; }
.rag-ranks { color: #57606a; font-size: .85em; margin: .2em 0; }
.rag-passage { font-size: .92em; }
.rag-declined { color: #9a6700; font-weight: 600; }
.rag-declined-why { font-weight: 400; }
#eval-summary textarea { font-family: ui-monospace, monospace; }
.rag-preview img { max-width: 100%; border: 1px solid #d0d7de; margin-top: .3em; }
"""
