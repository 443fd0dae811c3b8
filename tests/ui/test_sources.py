"""Source cards: escaped, query terms marked, ranks shown, and links that open at the place."""

from __future__ import annotations

from pathlib import Path

from rag.generation import Answer, Citation
from retrievers.records import Chunk, Hit
from ui.sources import cards, highlight


def citation(n, source, text, page=None, start=None, end=None):
    return Citation(n, f"id{n}", source, page, start, end, text, score=0.5)


def hit_for(c):
    chunk = Chunk(c.chunk_id, c.text, c.source, "s", "h", 0, c.page, c.start, c.end)
    return Hit(chunk, 0.91, {"bm25": 2, "dense": 1}, {"bm25": 3.2, "dense": 0.64})


def test_passage_is_escaped_and_query_terms_are_marked():
    out = highlight('Steep <script>alert(1)</script> green teas "briefly"', "steeping green tea")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<mark>Steep</mark>" in out and "<mark>green</mark>" in out and "<mark>teas</mark>" in out
    assert "&quot;briefly&quot;" in out


def test_cards_link_pdf_pages_and_audio_seconds_inside_served_folders(tmp_path):
    served = tmp_path / "root"
    pdf = served / "c" / "files" / "manual.pdf"
    mp3 = served / "c" / "files" / "talk.mp3"
    outside = tmp_path / "elsewhere" / "secret.pdf"
    cs = [citation(1, str(pdf), "The lamp runs 40 hours.", page=3),
          citation(2, str(mp3), "ask not what your country", start=7.4, end=11.0),
          citation(3, str(outside), "private", page=1),
          citation(4, '/x/<img src=x onerror=alert(1)>.md', "name attack")]
    answer = Answer("It runs 40 hours [1].", cs, cs)
    html = cards(answer, [hit_for(c) for c in cs], "lamp hours", [served])
    assert f'href="/gradio_api/file={pdf}#page=3"' in html and "page 3" in html
    assert f'src="/gradio_api/file={mp3}#t=7"' in html and "<audio" in html and "0:07-0:11" in html
    assert "secret.pdf" in html and str(outside) not in html  # named, but not served
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.md" in html
    assert "bm25 #2 (3.200)" in html and "dense #1 (0.640)" in html and "fused 0.910" in html
    assert "<mark>hours</mark>" in html


def test_a_declined_answer_says_so_plainly():
    answer = Answer("I could not find the answer in the indexed documents.", [], [], declined=True)
    assert "Not found" in cards(answer, [], "mars", [Path("/")])


def test_a_pdf_page_preview_boxes_the_cited_passage(tmp_path):
    from PIL import Image

    from tests.ui.conftest import PDF_PAGES, make_pdf
    from ui.preview import page_preview

    (tmp_path / "files").mkdir()
    pdf = make_pdf(tmp_path / "files" / "obs.pdf")
    png = page_preview(pdf, 2, PDF_PAGES[1], tmp_path / "previews")
    assert png is not None and png.parent == tmp_path / "previews"
    assert page_preview(pdf, 2, PDF_PAGES[1], tmp_path / "previews") == png  # cached
    pixels = Image.open(png).convert("RGB").getdata()
    assert sum(1 for r, g, b in pixels if r > 200 and g < 60 and b < 60) > 100  # the red box
    assert page_preview(pdf, 9, "x", tmp_path / "previews") is None
    page_preview(pdf, 1, PDF_PAGES[0], tmp_path / "previews")
    from ui.preview import drop_previews

    assert drop_previews(pdf, tmp_path / "previews") == 2
    assert not list((tmp_path / "previews").iterdir())
    assert page_preview(tmp_path / "gone.pdf", 1, "x", tmp_path / "previews") is None
