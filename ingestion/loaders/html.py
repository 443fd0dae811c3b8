"""HTML main text with BeautifulSoup (as llama-index's HTMLTagReader): no scripts, styles or chrome.

The encoding comes from the BOM, the <meta charset> or detection (bs4's UnicodeDammit). Headings
h1-h6 open sections that carry the heading trail, as the Markdown loader does.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingestion.loaders.registry import register
from ingestion.loaders.text import decode_text
from ingestion.sections import HeadedSections, LoadError, Section

DROP = ["script", "style", "noscript", "template", "svg", "iframe", "object", "head", "form",
        "button", "nav"]
HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
MARK = "\ue000H"  # a private-use character (not whitespace to str.split): never in real text


@register(".html", ".htm", ".xhtml")
def load_html(path: Path) -> list[Section]:
    data = Path(path).read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    return html_sections(decode_html(data))


META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def decode_html(data: bytes) -> str:
    """BOM, then the declared <meta> charset, then the text loader's detection."""
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        declared = META_CHARSET.search(data[:4096])
        if declared:
            try:
                return data.decode(declared.group(1).decode("ascii"))
            except (LookupError, UnicodeDecodeError):
                pass
    return decode_text(data)


def html_sections(markup: bytes | str) -> list[Section]:
    """Sections of readable text from HTML markup (bytes: encoding detected)."""
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # XHTML (EPUB chapters) is fine
        soup = BeautifulSoup(markup, "lxml")
    for tag in soup(DROP):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for level, name in enumerate(HEADINGS, start=1):
        for tag in root.find_all(name):
            text = " ".join(tag.get_text(" ").split())
            tag.replace_with(f"\n{MARK}{level} {text}\n" if text else "")
    builder = HeadedSections(skip_bare_headings=True)  # a bare heading adds nothing on its own
    for raw in root.get_text("\n").splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if line.startswith(MARK):
            level, _, title = line[len(MARK):].partition(" ")
            builder.heading(int(level), title)
            builder.add(title)
        else:
            builder.add(line)
    sections = builder.finish()
    if not sections:
        raise LoadError("no readable text in the HTML")
    return sections
