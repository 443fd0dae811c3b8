"""OpenDocument text (.odt) with odfpy: headings open sections, paragraphs and tables in order."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingestion.loaders.packages import check_package
from ingestion.loaders.registry import register
from ingestion.sections import HeadedSections, LoadError, Section


@register(".odt")
def load_odt(path: Path) -> list[Section]:
    from odf import teletype
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load

    if not zipfile.is_zipfile(path):
        raise LoadError("not an ODT file (not a zip package)")
    check_package(path, "ODT")
    try:
        document = load(str(path))
    except Exception as exc:
        raise LoadError(f"damaged ODT file: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    builder = HeadedSections()

    def walk(node) -> None:
        for child in node.childNodes:
            name = getattr(child, "qname", None)
            if name == (TEXTNS, "h"):
                title = teletype.extractText(child).strip()
                if title:
                    builder.heading(_outline_level(child), title)
                    builder.add(title)
            elif name == (TEXTNS, "p"):
                line = teletype.extractText(child).strip()
                if line:
                    builder.add(line)
            elif name == (TABLENS, "table-row"):
                cells = [teletype.extractText(c).strip() for c in child.childNodes]
                if any(cells):
                    builder.add(" | ".join(cells))
            elif getattr(child, "childNodes", None):
                walk(child)

    walk(document.text)
    sections = builder.finish()
    if not sections:
        raise LoadError("no text in the document")
    return sections


def _outline_level(heading) -> int:
    try:
        return max(1, int(heading.getAttribute("outlinelevel") or 1))
    except (AttributeError, ValueError, TypeError):  # odfpy raises when the attribute is absent
        return 1
