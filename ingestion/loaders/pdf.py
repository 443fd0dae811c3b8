"""PDF text per page with pypdf (what llama-index's PDFReader uses); page numbers start at 1.

Encrypted PDFs are tried with the empty user password (how "copy-protected" PDFs open in every
viewer); one that needs a real password fails with a clear message. A page whose text cannot be
extracted is skipped, not fatal.

OCR, decided per page (`ocr.mode`, the `ocr` setting): `never` reads the text layer only;
`always` reads every page by OCR; `auto` (the default) trusts a page's text layer unless
- it is near-empty (under 20 letters or digits: a scan, perhaps with a stamped page number):
  the page is read by OCR and OCR's text is kept when it found clearly more;
- it is garbage (a quarter or more of it is U+FFFD, private-use glyphs, control characters or
  `(cid:n)` codes: fonts without a usable character map): OCR's text replaces it;
- it is mostly invisible text (render mode 3, an OCR layer some other tool laid over a scan):
  kept only when 60% of its words are on the page as OCR reads it, else OCR's text replaces
  it (a wrong or stale invisible layer is the "text" a search would otherwise trust).
Pages are rasterised one at a time by pdfium (pypdfium2, a wheel) at the OCR's DPI within its
pixel budget, and each page keeps its number.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingestion.loaders.registry import register
from ingestion.sections import LoadError, Section

if TYPE_CHECKING:
    from ingestion.ocr import Ocr, PageProgress

MIN_LAYER_CHARS = 20  # letters and digits; fewer is a near-empty layer
GARBAGE_SHARE = 0.25
INVISIBLE_SHARE = 0.3  # of a page's text objects
MIN_AGREEMENT = 0.6
_CID = re.compile(r"\(cid:\d+\)")
# pdfium is not thread-safe: two ingests in one process (the UI answers during an upload)
# take turns for the short spans that touch it (opening, inspecting, rendering a page).
_PDFIUM = threading.Lock()


@register(".pdf", ocr=True, version=2)  # 2: ligatures spelled out (2026-12-04)
def load_pdf(path: Path, ocr: "Ocr | None" = None,
             progress: "PageProgress | None" = None) -> list[Section]:
    import pypdf

    from ingestion.ocr import OcrMode
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
        mode = ocr.mode if ocr is not None else OcrMode.NEVER
        pages_ocr = _PageImages(path) if mode is not OcrMode.NEVER else None
        n_read = 0
        try:
            for number in range(count):
                try:
                    text = tidy(pages[number].extract_text() or "")
                except Exception:  # a broken page must not cost the rest of the document
                    failed += 1
                    text = ""
                if pages_ocr is None or ocr is None:
                    if text:
                        sections.append(Section(text, page=number + 1))
                    continue
                verdict = "ocr" if mode is OcrMode.ALWAYS else layer_verdict(
                    text, pages_ocr.invisible_share(number))
                if verdict == "text":
                    sections.append(Section(text, page=number + 1))
                    continue
                page = pages_ocr.read(number, ocr)
                n_read += 1
                if progress is not None:
                    progress(n_read, count)
                section = _choose(verdict, text, page, number + 1)
                if section is not None:
                    sections.append(section)
        finally:
            if pages_ocr is not None:
                pages_ocr.close()
    finally:
        pypdf_log.setLevel(level)
    if not sections:
        if failed:
            raise LoadError(f"no page of {count} could be read (damaged PDF)")
        if mode is OcrMode.NEVER:
            raise LoadError(f"no extractable text in {count} page(s) (scanned images? OCR is off)")
        raise LoadError(f"no text in {count} page(s): no text layer, and OCR found no text")
    return sections


# The Latin typographic ligatures (U+FB00-FB06: ff, fi, fl, ffi, ffl, long st, st) as the letters
# they stand for. TeX sets "fine-tuning" and "efficient" with them and pypdf hands them on: the
# ARAGOG papers' 1,355 chunks held 1,625, so BM25 never matched "fine" to "\ufb01ne", MiniLM
# saw an unknown token, and the name check missed "Efficient" in a paper's own title.
_LIGATURES = {code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)}


def tidy(text: str) -> str:
    """Ligatures spelled out; trailing spaces off, runs of blank lines (common in form-like
    PDFs) cut to one."""
    lines = [line.rstrip() for line in text.translate(_LIGATURES).splitlines()]
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1]):
            out.append(line if line.strip() else "")
    return "\n".join(out).strip()


def layer_verdict(text: str, invisible_share: float) -> str:
    """What `auto` does with a page's text layer: "text" (use it), "short" (near-empty: OCR and
    keep the longer), "garbage" (OCR replaces it) or "invisible" (OCR checks it)."""
    if _alnum(text) < MIN_LAYER_CHARS:
        return "short"
    if garbage_share(text) >= GARBAGE_SHARE:
        return "garbage"
    if invisible_share >= INVISIBLE_SHARE:
        return "invisible"
    return "text"


def garbage_share(text: str) -> float:
    """The share of a text layer's characters that carry no readable text."""
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return 0.0
    cid = sum(len(m) for m in _CID.findall(text))
    bad = sum(1 for ch in visible if ch == "\ufffd" or unicodedata.category(ch) in ("Co", "Cc", "Cs"))
    return min(1.0, (bad + cid) / len(visible))


def agreement(layer: str, ocr_text: str) -> float:
    """The share of the layer's words (3+ characters) found in the OCR text. Compared without
    spaces: the recogniser sometimes runs words together ("ofthe")."""
    words = [w for w in re.findall(r"\w+", layer.lower()) if len(w) >= 3]
    if not words:
        return 0.0
    joined = "".join(re.findall(r"\w+", ocr_text.lower()))
    return sum(1 for w in words if w in joined) / len(words)


def _alnum(text: str) -> int:
    return sum(1 for ch in text if ch.isalnum())


def _choose(verdict: str, layer: str, page: Any, number: int) -> Section | None:
    """The page's Section after OCR: OCR's text, or the layer's where `auto` keeps it."""
    read = Section(page.text, page=number, meta=page.meta()) if page.text.strip() else None
    if verdict == "short":
        if read is not None and _alnum(page.text) > 1.2 * _alnum(layer) + 5:
            return read
        return Section(layer, page=number) if layer else read
    if verdict == "invisible" and agreement(layer, page.text) >= MIN_AGREEMENT:
        return Section(layer, page=number)
    return read


class _PageImages:
    """pdfium's view of the same PDF, opened on first use: which text is invisible, and each
    page as pixels, one page at a time. A PDF pdfium cannot open has no OCR (pages read as
    text only); a page it cannot render reads as empty."""

    def __init__(self, path: Path):
        self.path = path
        self._doc: Any = None
        self._failed = False

    def _document(self) -> Any:
        if self._doc is None and not self._failed:
            import pypdfium2 as pdfium

            try:
                self._doc = pdfium.PdfDocument(str(self.path), password="")
            except Exception:
                self._failed = True
        return self._doc

    def invisible_share(self, index: int) -> float:
        """The share of the page's text objects drawn invisibly (render mode 3)."""
        import pypdfium2.raw as pdfium_c

        with _PDFIUM:
            doc = self._document()
            if doc is None:
                return 0.0
            try:
                page = doc[index]
            except Exception:
                return 0.0
            try:
                invisible = total = 0
                for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_TEXT,), max_depth=4):
                    total += 1
                    if pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw) == \
                            pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE:
                        invisible += 1
            except Exception:
                return 0.0
            finally:
                page.close()
        return invisible / total if total else 0.0

    def read(self, index: int, ocr: "Ocr") -> Any:
        """The page read by OCR (an empty reading when pdfium cannot draw it)."""
        from ingestion.ocr import OcrPage

        with _PDFIUM:
            doc = self._document()
            if doc is None:
                return OcrPage()
            try:
                page = doc[index]
                try:
                    width, height = page.get_size()
                    bitmap = page.render(scale=ocr.scale_for(width, height))
                    pixels = np.asarray(bitmap.to_pil().convert("RGB"))
                    bitmap.close()
                finally:
                    page.close()
            except Exception:
                return OcrPage()
        return ocr.read(pixels)

    def close(self) -> None:
        if self._doc is not None:
            with _PDFIUM:
                self._doc.close()
            self._doc = None
