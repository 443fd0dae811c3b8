"""PDF text per page with pypdf (what llama-index's PDFReader uses); page numbers start at 1.

Encrypted PDFs are tried with the empty user password (how "copy-protected" PDFs open in every
viewer); one that needs a real password fails with a clear message. A page whose text cannot be
extracted is skipped, not fatal; a PDF with no text at all (a scan) says OCR would be needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ingestion.loaders.registry import register
from ingestion.sections import LoadError, Section


@register(".pdf")
def load_pdf(path: Path) -> list[Section]:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # font/repair chatter is not the user's problem
    try:
        try:
            reader = pypdf.PdfReader(str(path), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("password-protected PDF: it cannot be opened without its password")
            pages = reader.pages
            count = len(pages)
        except LoadError:
            raise
        except FileNotDecryptedError as exc:
            raise LoadError("password-protected PDF: it cannot be opened without its password") from exc
        except DependencyError as exc:
            raise LoadError(f"encrypted PDF needs a missing library: {exc}") from exc
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                RecursionError, OSError) as exc:
            raise LoadError(f"not a readable PDF: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
        sections: list[Section] = []
        failed = 0
        for number in range(count):
            try:
                text = pages[number].extract_text() or ""
            except Exception:  # a broken page must not cost the rest of the document
                failed += 1
                continue
            text = tidy(text)
            if text:
                sections.append(Section(text, page=number + 1))
    finally:
        pypdf_log.setLevel(level)
    if not sections:
        if failed:
            raise LoadError(f"no page of {count} could be read (damaged PDF)")
        raise LoadError(f"no extractable text in {count} page(s) (scanned images? OCR is not supported)")
    return sections


def tidy(text: str) -> str:
    """Trailing spaces off, runs of blank lines (common in form-like PDFs) cut to one."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1]):
            out.append(line if line.strip() else "")
    return "\n".join(out).strip()
