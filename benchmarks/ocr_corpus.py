"""OCR over every PDF and image of ../shared/data/documents; prints what the OCR issue asks to report.

For each file that `ocr = auto` reads by OCR (at least one page), and for the text-layer twins
read with `ocr = always`: pages in the file, pages read by OCR, characters read, seconds, the
turn applied, and the character error rate against a reference where one exists:
  - pypdf_resources/crazyones.pdf (OCR forced) against crazyones.txt beside it;
  - unstructured/img_layout-parser-paper-with-table.jpg against the text layer of its twin
    pdf_layout-parser-paper-with-table.pdf;
  - docling/ocr_test.pdf and ocr_test_rotated_90.pdf against the sentence their image shows;
  - docling/invisible_text_layer.pdf against its one visible line.
CER is Levenshtein distance / reference length on whitespace-collapsed text; "CER no spaces"
compares with all whitespace removed (the recogniser runs some words together, and a layout's
line breaks differ from a text file's). Also prints seconds per OCR page.

    nice -n 19 .venv/bin/python benchmarks/ocr_corpus.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DOCS = REPO.parent / "shared" / "data" / "documents"

OCR_TEST_TEXT = "Docling bundles PDF document conversion to JSON and Markdown in an easy self contained package"
FORCED = ["pypdf_resources/crazyones.pdf"]  # text-layer twins: read by OCR to measure it


def references() -> dict[str, str]:
    from ingestion.loaders import loader_for

    twin = DOCS / "unstructured" / "pdf_layout-parser-paper-with-table.pdf"
    return {
        "pypdf_resources/crazyones.pdf": (DOCS / "pypdf_resources" / "crazyones.txt").read_text(),
        "unstructured/img_layout-parser-paper-with-table.jpg":
            "\n".join(s.text for s in loader_for(twin)(twin)),
        "docling/ocr_test.pdf": OCR_TEST_TEXT,
        "docling/ocr_test_rotated_90.pdf": OCR_TEST_TEXT,
        "docling/invisible_text_layer.pdf": "Visible heading line",
    }


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(hypothesis: str, reference: str, spaces: bool = True) -> float:
    norm = (lambda t: " ".join(t.split())) if spaces else (lambda t: re.sub(r"\s+", "", t))
    h, r = norm(hypothesis), norm(reference)
    return levenshtein(h, r) / max(len(r), 1)


class CountingRecogniser:
    """The real recogniser, counting and timing the images it reads."""

    def __init__(self, real):
        self.real = real
        self.calls = 0
        self.seconds = 0.0

    def recognise(self, image):
        started = time.perf_counter()
        try:
            return self.real.recognise(image)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    from ingestion.loaders import loader_for, reads_with_ocr
    from ingestion.ocr import Ocr, RapidOcrRecogniser
    from ingestion.sections import LoadError

    real = RapidOcrRecogniser()
    started = time.perf_counter()
    real.engine
    print(f"RapidOCR models loaded in {time.perf_counter() - started:.2f} s")
    refs = references()
    files = sorted(p for p in DOCS.rglob("*") if p.is_file() and reads_with_ocr(p))
    rows = []
    for path in files:
        name = str(path.relative_to(DOCS))
        modes = ["auto"] + (["always"] if name in FORCED else [])
        for mode in modes:
            counting = CountingRecogniser(real)
            ocr = Ocr(counting, mode=mode)
            pages_read: list[int] = []
            started = time.perf_counter()
            try:
                sections = loader_for(path)(path, ocr=ocr, progress=lambda d, n: pages_read.append(n))
                error = None
            except (LoadError, Exception) as exc:  # noqa: BLE001  (reported, the run goes on)
                sections, error = [], " ".join(str(exc).split())
            seconds = time.perf_counter() - started
            if not pages_read and mode == "auto" and path.suffix.lower() == ".pdf" and not error:
                continue  # a PDF read by its text layer alone: not an OCR file
            ocr_sections = [s for s in sections if s.meta and "ocr" in s.meta]
            text = "\n".join(s.text for s in sections)
            row = {
                "file": name, "mode": mode, "pages": _pages(path),
                "ocr_pages": len(pages_read), "recognitions": counting.calls,
                "chars": len(text), "ocr_chars": sum(len(s.text) for s in ocr_sections),
                "seconds": round(seconds, 2), "ocr_seconds": round(counting.seconds, 2),
                "rotation": sorted({s.meta["ocr"]["rotation"] for s in ocr_sections}),
                "confidence": round(sum(s.meta["ocr"]["confidence"] for s in ocr_sections)
                                    / len(ocr_sections), 3) if ocr_sections else None,
                "error": error,
            }
            if name in refs and (mode == "always" or name not in FORCED):
                row["cer"] = round(cer(text, refs[name]), 4)
                row["cer_no_spaces"] = round(cer(text, refs[name], spaces=False), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| file | mode | pages | OCR pages | chars | s | turn | conf | CER | CER no spaces |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['mode']} | {r['pages']} | {r['ocr_pages']} | {r['chars']} | "
              f"{r['seconds']} | {r['rotation']} | {r['confidence']} | {r.get('cer', '')} | "
              f"{r.get('cer_no_spaces', '')} |" + (f" failed: {r['error']}" if r["error"] else ""))
    pages = sum(r["ocr_pages"] for r in rows)
    ocr_seconds = sum(r["seconds"] for r in rows if r["ocr_pages"])
    if pages:
        print(f"\n{pages} pages read by OCR in {ocr_seconds:.1f} s: {ocr_seconds / pages:.2f} s per page "
              f"(rasterising, recognition and any re-reads at other turns included)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _pages(path: Path) -> int:
    if path.suffix.lower() == ".pdf":
        import pypdfium2 as pdfium

        try:
            return len(pdfium.PdfDocument(str(path)))
        except Exception:  # noqa: BLE001
            return 0
    from PIL import Image

    with Image.open(path) as image:
        return int(getattr(image, "n_frames", 1) or 1)


if __name__ == "__main__":
    raise SystemExit(main())
