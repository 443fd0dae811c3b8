"""A cited PDF page as an image with the cited passage boxed, shown in the source card.

Why: a link to `file.pdf#page=N` lands on the page but browsers' PDF viewers do not mark the
passage (and some, headless ones included, show nothing inline); a rendered page with the
passage outlined answers "where exactly does it say so?" at a glance. Rendered once per
(file version, page, passage) into the collection's preview folder, which the UI may serve.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

SCALE = 1.25  # about 90 dpi: readable, ~100 KB a page
SEARCH_WORDS = 6

_lock = threading.Lock()  # pdfium is not thread-safe


def page_preview(pdf: str | Path, page: int, passage: str, cache: Path) -> Path | None:
    """The PNG of `page` (1-based) of `pdf` with `passage` boxed in red, or None when the page
    cannot be rendered (a damaged file, a page that is gone). The passage is found by its first
    few words; when not found the page is shown unmarked."""
    pdf = Path(pdf)
    try:
        stat = pdf.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{pdf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{page}|{passage}"
                         .encode("utf-8", "surrogateescape")).hexdigest()[:24]
    out = Path(cache) / f"{pdf.name}.{key}.png"  # by name too, so deleting the file drops them
    if out.is_file():
        return out
    try:
        with _lock:
            image = _render(pdf, page, passage)
    except Exception:  # noqa: BLE001 - a preview is a convenience; the link still works
        return None
    if image is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(f".{threading.get_ident()}.tmp")
    image.save(partial, format="PNG", optimize=True)
    partial.replace(out)
    return out


def _render(pdf: Path, page: int, passage: str):
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    doc = pdfium.PdfDocument(str(pdf))
    try:
        if not 1 <= page <= len(doc):
            return None
        pg = doc[page - 1]
        _, height = pg.get_size()
        image = pg.render(scale=SCALE).to_pil().convert("RGB")
        textpage = pg.get_textpage()
        boxes = []
        words = passage.split()
        for start in (0, len(words) // 2):  # the passage's start, else its middle
            probe = " ".join(words[start:start + SEARCH_WORDS])
            if not probe:
                continue
            found = textpage.search(probe, match_case=False).get_next()
            if found:
                index, _ = found
                count = min(len(textpage.get_text_range()) - index, len(" ".join(words[start:])))
                n = textpage.count_rects(index, max(1, count))
                boxes = [textpage.get_rect(i) for i in range(n)]
                break
        draw = ImageDraw.Draw(image)
        for left, bottom, right, top in boxes:
            draw.rectangle([left * SCALE - 2, (height - top) * SCALE - 2,
                            right * SCALE + 2, (height - bottom) * SCALE + 2],
                           outline=(220, 30, 30), width=2)
        return image
    finally:
        doc.close()


def drop_previews(pdf: str | Path, cache: Path) -> int:
    """Remove the rendered pages of a deleted file; returns how many went."""
    gone = 0
    for png in Path(cache).glob(f"{_glob_escape(Path(pdf).name)}.*.png"):
        png.unlink(missing_ok=True)
        gone += 1
    return gone


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)
