"""Office Open XML: DOCX (python-docx), PPTX (python-pptx), XLSX (openpyxl).

These are the libraries llama-index's DocxReader/PptxReader/PandasExcelReader build on; used
directly so that headings, tables, slide numbers and sheet names survive as section metadata.
Legacy binary files (.doc/.xls/.ppt) and password-protected OOXML files are both OLE compound
files; they are refused with a message that says so.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable

from ingestion.loaders.packages import check_package
from ingestion.loaders.registry import register
from ingestion.sections import HeadedSections, LoadError, Section

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def open_ooxml(path: Path, kind: str, opener: Any) -> Any:
    """Open with the library, turning its many failure types into one clear `LoadError`."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == OLE_MAGIC:
        raise LoadError(f"password-protected (encrypted) or legacy binary Office file, not {kind}")
    if not zipfile.is_zipfile(path):
        raise LoadError(f"not a {kind} file (not a zip package)")
    check_package(path, kind)
    if _is_strict_ooxml(path):
        raise LoadError(f"Strict Open XML {kind} is not supported (python-docx/pptx/openpyxl read "
                        "Transitional only); re-save it as a standard document")
    try:
        return opener(str(path))
    except LoadError:
        raise
    except Exception as exc:  # the libraries raise KeyError, ValueError, lxml errors, ...
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise LoadError(f"damaged or unsupported {kind} file: {detail}") from exc


def _is_strict_ooxml(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as package:
            rels = package.read("_rels/.rels")
    except (KeyError, zipfile.BadZipFile, OSError, zlib.error, EOFError):
        return False  # damaged: the library's own read below says how, as a LoadError
    return b"purl.oclc.org/ooxml/officeDocument" in rels


def table_rows(rows: Iterable[Iterable[Any]]) -> list[str]:
    """Rows as ' | '-joined cells; merged cells (repeated by the libraries) appear once."""
    out = []
    for row in rows:
        cells: list[str] = []
        for cell in row:
            text = " ".join(str(cell).split()) if cell is not None else ""
            if not cells or text != cells[-1]:
                cells.append(text)
        if any(cells):
            out.append(" | ".join(cells))
    return out


# --- DOCX ---------------------------------------------------------------------------------
@register(".docx", ".docm")
def load_docx(path: Path) -> list[Section]:
    """Paragraphs and tables in document order; Heading styles open a new section."""
    import docx
    from docx.table import Table

    document = open_ooxml(path, "DOCX", docx.Document)
    builder = HeadedSections()
    try:
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                builder.add(*table_rows(_docx_table_cells(block)))
                continue
            text = block.text.strip()
            if not text:
                continue
            level = _heading_level(block)
            if level:
                builder.heading(level, text)
            builder.add(text)
        sections = builder.finish()
        extra = _docx_headers_footers(document)
    except Exception as exc:
        raise LoadError(f"damaged DOCX content: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    if extra:
        sections.append(Section("\n".join(extra), heading="Headers and footers"))
    if not sections:
        raise LoadError("no text in the document")
    return sections


def _heading_level(paragraph: Any) -> int:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except Exception:
        return 0
    if name == "Title":
        return 1
    if name.startswith("Heading"):
        digits = name[len("Heading"):].strip()
        return int(digits) if digits.isdigit() else 1
    return 0


def _docx_table_cells(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        rows.append([cell.text for cell in row.cells])
    return rows


def _docx_headers_footers(document: Any) -> list[str]:
    seen: list[str] = []
    for section in document.sections:
        for part in (section.header, section.footer):
            if part is None or part.is_linked_to_previous and seen:
                continue
            for paragraph in part.paragraphs:
                text = paragraph.text.strip()
                if text and text not in seen:
                    seen.append(text)
    return seen


# --- PPTX ---------------------------------------------------------------------------------
@register(".pptx", ".pptm")
def load_pptx(path: Path) -> list[Section]:
    """One section per slide (its number in `page`), titled by the slide title; notes included."""
    from pptx import Presentation

    deck = open_ooxml(path, "PPTX", Presentation)
    sections: list[Section] = []
    try:
        for number, slide in enumerate(deck.slides, start=1):
            lines: list[str] = []
            for shape in _shapes(slide.shapes):
                if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
                    lines.append(shape.text_frame.text.strip())
                elif getattr(shape, "has_table", False):
                    lines.extend(table_rows(
                        [cell.text for cell in row.cells] for row in shape.table.rows))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    lines.append(notes)
            title = None
            if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
                title = slide.shapes.title.text_frame.text.strip() or None
            if lines:
                sections.append(Section("\n".join(lines), page=number, heading=title))
    except Exception as exc:
        raise LoadError(f"damaged PPTX content: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    if not sections:
        raise LoadError("no text on any slide")
    return sections


def _shapes(shapes: Any) -> Iterable[Any]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shapes(shape.shapes)
        else:
            yield shape


# --- XLSX ---------------------------------------------------------------------------------
@register(".xlsx", ".xlsm")
def load_xlsx(path: Path) -> list[Section]:
    """One section per sheet (heading = sheet name); each row as 'column: value' pairs."""
    import openpyxl

    book = open_ooxml(path, "XLSX", lambda p: openpyxl.load_workbook(p, read_only=True, data_only=True))
    sections: list[Section] = []
    try:
        for sheet in book.worksheets:
            lines = rows_as_text(sheet.iter_rows(values_only=True))
            if lines:
                sections.append(Section("\n".join(lines), heading=sheet.title))
    except Exception as exc:
        raise LoadError(f"damaged XLSX content: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    finally:
        book.close()
    if not sections:
        raise LoadError("no cells with values in any sheet")
    return sections


def rows_as_text(rows: Iterable[Iterable[Any]]) -> list[str]:
    """First non-empty row is the header; later rows read 'header: value; header: value'."""
    header: list[str] | None = None
    lines: list[str] = []
    table = [["" if v is None else " ".join(str(v).split()) for v in row] for row in rows]
    widest = max((sum(1 for v in values if v) for values in table), default=0)
    for values in table:
        filled = sum(1 for v in values if v)
        if not filled:
            continue
        if header is None and filled == 1 and widest > 1:
            lines.append(next(v for v in values if v))  # a title line above the table
            continue
        if header is None:
            header = values
            lines.append(" | ".join(v for v in values if v))
            continue
        pairs = []
        for i, value in enumerate(values):
            if not value:
                continue
            name = header[i] if i < len(header) and header[i] else ""
            pairs.append(f"{name}: {value}" if name else value)
        lines.append("; ".join(pairs))
    return lines
