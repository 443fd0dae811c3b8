"""A question whose answer is only on a scanned page (an image, no text layer) is answered from
that page, with a citation to it: OCR runs inside the real ingest and the real packaged model
answers (a second scan, turned 90 degrees, and the sample's text documents compete)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingestion.ocr import Ocr

SHARED_DOCS = Path(__file__).resolve().parents[3] / "shared" / "data" / "documents"
SCAN = SHARED_DOCS / "docling" / "ocr_test.pdf"


@pytest.mark.skipif(not SCAN.is_file(), reason="shared documents not present")
def test_an_answer_only_on_a_scanned_page_cites_that_page(tmp_path, sample_dir, embedder, llm,
                                                            recogniser):
    from rag.api import RAG

    corpus = tmp_path / "archive"
    corpus.mkdir()
    shutil.copy(SCAN, corpus / "scanned_letter.pdf")
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt"):
        shutil.copy(sample_dir / name, corpus / name)
    rag = RAG.open(tmp_path / "index", llm=llm, embedder=embedder, ocr=Ocr(recogniser))
    results = rag.ingest([corpus])
    assert all(r.status == "added" for r in results), results
    answer = rag.ask("What formats does Docling convert PDF documents to?")
    assert not answer.declined, answer.text
    assert "JSON" in answer.text or "Markdown" in answer.text, answer.text
    cited = [(Path(c.source).name, c.page) for c in answer.citations]
    assert ("scanned_letter.pdf", 1) in cited, cited
    rag.close()
