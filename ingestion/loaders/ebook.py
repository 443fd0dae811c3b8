"""EPUB chapters with EbookLib (as llama-index's EpubReader), each chapter's HTML read as HTML."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from ingestion.loaders.html import html_sections
from ingestion.loaders.packages import check_package
from ingestion.loaders.registry import register
from ingestion.sections import LoadError, Section


@register(".epub")
def load_epub(path: Path) -> list[Section]:
    import ebooklib
    from ebooklib import epub

    if not zipfile.is_zipfile(path):
        raise LoadError("not an EPUB file (not a zip package)")
    check_package(path, "EPUB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except Exception as exc:
        raise LoadError(f"damaged EPUB: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    by_id = {item.get_id(): item for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)}
    ordered = [by_id.pop(idref) for idref, _ in book.spine if idref in by_id] + list(by_id.values())
    sections: list[Section] = []
    for item in ordered:
        try:
            sections.extend(html_sections(item.get_content()))
        except LoadError:
            continue  # an empty chapter (cover, page break) is normal
    if not sections:
        raise LoadError("no readable text in any chapter")
    return sections
