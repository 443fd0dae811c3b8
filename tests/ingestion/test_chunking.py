"""Chunks fill the embedding model's window without exceeding it, and speech keeps its time spans."""

from pathlib import Path

from ingestion.chunking import Chunker
from ingestion.loaders import load_markdown
from ingestion.sections import Section

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


def test_long_text_fills_but_never_exceeds_the_window(embedder):
    text = " ".join(
        f"Sentence number {i} talks about tea, lamps and speeches in some detail." for i in range(300)
    )
    chunks = Chunker(embedder.count_tokens, chunk_size=128, chunk_overlap=16).split([Section(text)])
    sizes = [embedder.count_tokens(c.text) for c in chunks]
    assert max(sizes) <= 128
    assert sum(sizes[:-1]) / len(sizes[:-1]) > 100  # not one sentence per chunk
    assert "number 0 " in chunks[0].text and "number 299 " in chunks[-1].text


def test_speech_segments_group_with_their_span(embedder):
    segments = [Section(f"segment {i} words here.", start=i * 2.0, end=i * 2.0 + 2) for i in range(5)]
    chunks = Chunker(embedder.count_tokens, chunk_size=254).split(segments)
    assert len(chunks) == 1
    assert (chunks[0].start, chunks[0].end) == (0.0, 10.0)


def test_markdown_sections_carry_their_heading_trail():
    sections = load_markdown(SAMPLE / "tea_brewing_guide.md")
    headings = [s.heading for s in sections]
    assert "Tea brewing guide > Green tea" in headings
    green = next(s for s in sections if s.heading.endswith("Green tea"))
    assert "80 °C" in green.text
