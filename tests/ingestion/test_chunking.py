"""Chunks fill the embedding model's window without exceeding it, and speech keeps its time spans."""

import threading
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


def test_chunking_while_another_thread_is_busy(embedder):
    """An ingest chunks one file while other threads embed and write the previous batch. nltk
    3.10.4's punkt timed its regexes by the wall clock, GIL waits included, and failed such
    files with "regular-expression match exceeded its 5.0s time limit" (pinned below it)."""
    text = " ".join(f"Essay line {i} says that tea keeps well. It is sold by the pound."
                    for i in range(500))  # ~33 KB, no paragraph breaks: the sentence tokenizer runs
    chunker = Chunker(embedder.count_tokens, chunk_size=128, chunk_overlap=16)
    chunker.split([Section("Warm up. The tokenizer loads once.")])
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=busy, daemon=True)
    spinner.start()
    try:
        chunks = chunker.split([Section(text)])
    finally:
        stop.set()
        spinner.join()
    assert "line 0 " in chunks[0].text and "line 499 " in chunks[-1].text
    assert max(embedder.count_tokens(c.text) for c in chunks) <= 128
