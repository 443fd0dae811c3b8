"""OCR of scanned PDF pages and images with the real RapidOCR models (ingestion/ocr.py and the PDF
and image loaders), plus the pure parts (reading order, the text-layer verdict) on plain data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ingestion.loaders import loader_for
from ingestion.loaders.pdf import agreement, garbage_share, layer_verdict
from ingestion.ocr import Ocr, OcrLine, OcrMode, reading_order
from ingestion.results import NotConfigured
from ingestion.sections import LoadError

SHARED_DOCS = Path(__file__).resolve().parents[3] / "shared" / "data" / "documents"
DOCS = Path(__file__).resolve().parents[1] / "data" / "documents"
SCAN = SHARED_DOCS / "docling" / "ocr_test.pdf"  # one A4 page, an image only, no text layer
SCAN_TURNED = SHARED_DOCS / "docling" / "ocr_test_rotated_90.pdf"
INVISIBLE = SHARED_DOCS / "docling" / "invisible_text_layer.pdf"

needs_shared = pytest.mark.skipif(not SCAN.is_file(), reason="shared documents not present")


class CountingRecogniser:
    """The real recogniser, passed in wrapped, counting the images it is asked to read."""

    def __init__(self, real):
        self.real = real
        self.calls = 0

    def recognise(self, image: np.ndarray) -> list[OcrLine]:
        self.calls += 1
        return self.real.recognise(image)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def load(path: Path, ocr: Ocr | None, progress=None):
    return loader_for(path)(path, ocr=ocr, progress=progress)


@needs_shared
def test_a_scanned_page_is_read_with_its_page_number_and_confidences(recogniser):
    reports = []
    sections = load(SCAN, Ocr(recogniser), progress=lambda done, total: reports.append((done, total)))
    assert [s.page for s in sections] == [1]
    text = sections[0].text
    assert "Docling bundles PDF document conversion" in text and "package" in text
    ocr = sections[0].meta["ocr"]
    assert ocr["rotation"] == 0 and ocr["confidence"] > 0.9
    assert len(ocr["line_confidences"]) == len(text.splitlines())
    assert reports == [(1, 1)]


@needs_shared
def test_a_page_turned_90_degrees_reads_the_same_words(recogniser):
    upright = load(SCAN, Ocr(recogniser))[0]
    turned = load(SCAN_TURNED, Ocr(recogniser))[0]
    a, b = words(upright.text), words(turned.text)
    assert len(a & b) / len(a | b) >= 0.9, (upright.text, turned.text)
    assert turned.meta["ocr"]["rotation"] in (90, 270)
    # Upright means in reading order too, not only the right words.
    assert turned.text.splitlines()[0].startswith("Docling")


@needs_shared
def test_an_invisible_wrong_text_layer_gives_way_to_what_the_page_shows(recogniser):
    never = load(INVISIBLE, Ocr(recogniser, mode="never"))
    assert "Invisible OCR text layer" in never[0].text  # what the layer claims
    sections = load(INVISIBLE, Ocr(recogniser))
    assert sections[0].text == "Visible heading line" and sections[0].meta["ocr"]


def test_a_real_text_layer_is_read_without_ocr(recogniser):
    counting = CountingRecogniser(recogniser)
    sections = load(DOCS / "crazyones.pdf", Ocr(counting))
    assert counting.calls == 0 and sections[0].meta is None


def test_ocr_always_reads_a_text_pdf_by_ocr(recogniser):
    counting = CountingRecogniser(recogniser)
    sections = load(DOCS / "crazyones.pdf", Ocr(counting, mode="always"))
    assert counting.calls >= 1 and sections[0].meta["ocr"]
    assert "crazy ones" in sections[0].text.lower()


@needs_shared
def test_ocr_never_keeps_scans_unread_with_the_reason(recogniser, tmp_path):
    with pytest.raises(LoadError, match="OCR is off"):
        load(SCAN, Ocr(recogniser, mode="never"))
    with pytest.raises(NotConfigured, match="ocr = never"):
        load(SHARED_DOCS / "unstructured" / "img_double-column-A.jpg", Ocr(recogniser, mode="never"))
    with pytest.raises(NotConfigured, match="not been given"):
        load(SHARED_DOCS / "unstructured" / "img_double-column-A.jpg", None)


@needs_shared
def test_a_multi_page_tiff_keeps_its_page_numbers(recogniser, tmp_path):
    import pypdfium2 as pdfium
    from PIL import Image

    page = pdfium.PdfDocument(str(SCAN))[0].render(scale=150 / 72).to_pil().convert("L")
    top = page.crop((0, 0, page.width, page.height // 4))
    tiff = tmp_path / "fax.tiff"
    blank = Image.new("L", top.size, 255)
    top.save(tiff, save_all=True, append_images=[blank, top.rotate(180)], compression="tiff_lzw")
    sections = load(tiff, Ocr(recogniser))
    assert [s.page for s in sections] == [1, 3]  # the blank page 2 has no text
    assert words(sections[0].text) == words(sections[1].text) >= {"docling", "json", "markdown"}
    assert sections[1].meta["ocr"]["rotation"] == 180


@pytest.mark.parametrize("content,cause", [
    (b"\xff\xd8\xff\xe0 not really a photo", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a readable image"),
])
def test_a_broken_image_fails_with_a_one_line_reason(recogniser, tmp_path, content, cause):
    path = tmp_path / ("photo.jpg" if content.startswith(b"\xff") else "scan.png")
    path.write_bytes(content)
    with pytest.raises(LoadError, match=cause) as error:
        load(path, Ocr(recogniser))
    assert "\n" not in str(error.value)


@needs_shared
def test_reingesting_an_unchanged_scan_runs_no_ocr(tmp_path, embedder, recogniser):
    from rag.api import RAG

    corpus = tmp_path / "scans"
    corpus.mkdir()
    shutil.copy(SCAN, corpus / "scan.pdf")
    shutil.copy(DOCS / "crazyones.pdf", corpus / "text.pdf")
    counting = CountingRecogniser(recogniser)
    rag = RAG.open(tmp_path / "index", embedder=embedder, ocr=Ocr(counting))
    first = {Path(r.path).name: r for r in rag.ingest([corpus])}
    assert {name: r.status for name, r in first.items()} == {"scan.pdf": "added", "text.pdf": "added"}
    calls = counting.calls
    assert calls >= 1
    again = rag.ingest([corpus])
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    assert counting.calls == calls  # cached by content hash: no page read again
    hits = rag.retrieve("Docling bundles PDF document conversion", mode="bm25")
    top = hits[0].chunk
    assert top.source.endswith("scan.pdf") and top.page == 1
    assert top.extra["ocr"] is True and top.extra["ocr_confidence"] > 0.9
    rag.close()


# --- the pure parts ---------------------------------------------------------------------------

def line(text: str, x0: float, y0: float, x1: float, y1: float) -> OcrLine:
    return OcrLine(text, 0.99, (x0, y0, x1, y1))


def test_two_columns_are_read_down_the_left_then_down_the_right():
    lines = [line("Title across the page", 100, 20, 900, 50)]
    for i in range(5):
        y = 100 + 40 * i
        lines.append(line(f"right {i}", 520, y, 900, y + 25))
        lines.append(line(f"left {i}", 100, y, 480, y + 25))
    lines.append(line("Footer across the page", 100, 400, 900, 430))
    for i in range(3):
        y = 460 + 40 * i
        lines.append(line(f"second left {i}", 100, y, 480, y + 25))
        lines.append(line(f"second right {i}", 520, y, 900, y + 25))
    rows = reading_order(lines, 1000)
    text = [" ".join(ln.text for ln in row) for row in rows]
    assert text == (["Title across the page"] + [f"left {i}" for i in range(5)]
                    + [f"right {i}" for i in range(5)] + ["Footer across the page"]
                    + [f"second left {i}" for i in range(3)]
                    + [f"second right {i}" for i in range(3)])


def test_one_column_keeps_rows_and_joins_boxes_on_a_row():
    lines = [line("world", 300, 10, 400, 30), line("Hello", 100, 12, 280, 31),
             line("next line", 100, 50, 500, 70)]
    assert [[ln.text for ln in row] for row in reading_order(lines, 1000)] == \
        [["Hello", "world"], ["next line"]]


@pytest.mark.parametrize("text,invisible,verdict", [
    ("", 0.0, "short"),
    ("Page 3", 0.0, "short"),
    ("A real paragraph of text on a page, long enough to trust.", 0.0, "text"),
    ("(cid:12)(cid:15)(cid:80) (cid:3)(cid:44)(cid:7) (cid:9)(cid:19) ok text", 0.0, "garbage"),
    ("\ue000\ue001\ue002\ue003 \ue004\ue005\ue006 \ue007\ue008 abcdefghijklmnopqrstuvwx", 0.0, "garbage"),
    ("An OCR layer laid invisibly over a scanned page by some tool.", 1.0, "invisible"),
])
def test_the_text_layer_verdict(text, invisible, verdict):
    assert layer_verdict(text, invisible) == verdict


def test_agreement_forgives_words_run_together():
    assert agreement("the rules in this subchapter", "Therulesinthissubchapter") == 1.0
    assert agreement("Visible heading line Invisible OCR text layer", "Visible heading line") < 0.6
    assert garbage_share("plain words") == 0.0


def test_ocr_mode_names_and_errors():
    assert OcrMode.names() == ["auto", "always", "never"]
    with pytest.raises(ValueError, match="auto, always, never"):
        OcrMode.parse("sometimes")
