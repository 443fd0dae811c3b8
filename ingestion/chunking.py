"""Sentence-aware chunking sized in tokens of the embedding model.

Text sections go through llama-index's `SentenceSplitter` (sentence boundaries, overlap) with the
embedding model's own tokenizer, so a chunk never exceeds what the model reads. Timed sections
(speech segments) are grouped whole, so every audio chunk keeps an exact start/end span.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator

from ingestion.sections import Section


@dataclass
class ChunkText:
    text: str
    page: int | None = None
    start: float | None = None
    end: float | None = None
    heading: str | None = None
    meta: dict[str, Any] | None = None  # the section's (shared by its chunks, not copied)


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], chunk_size: int = 254,
                 chunk_overlap: int = 32):
        self.count_tokens = count_tokens
        self.chunk_size = chunk_size
        self.chunk_overlap = min(chunk_overlap, chunk_size // 2)

    @cached_property
    def splitter(self):
        """Built on first use: importing llama-index costs ~1.5 s, which a run over unchanged
        files should not pay."""
        from llama_index.core.node_parser import SentenceSplitter

        return SentenceSplitter(
            chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap,
            tokenizer=lambda text: range(self._splitter_tokens(text)),
        )

    def _splitter_tokens(self, text: str) -> int:
        """The token count the splitter compares with the chunk size, without tokenizing texts
        that are plainly too long. Every whitespace-separated word is at least one token for
        subword tokenizers (WordPiece, BPE, SentencePiece), so a text with more words than the
        chunk size is over it; the splitter only uses exact counts of pieces that fit. The
        splitter counts the whole section first, then each paragraph, then each sentence:
        skipping the long ones cut the tokenizer's time for 80 essays (1052 chunks) from 0.73 s
        to 0.39 s, with the same chunks on all 329 shared documents checked."""
        words = len(text.split())
        if words > self.chunk_size:
            return words
        return self.count_tokens(text)

    def split(self, sections: Iterable[Section]) -> list[ChunkText]:
        return list(self.iter_split(sections))

    def iter_split(self, sections: Iterable[Section]) -> Iterator[ChunkText]:
        """The chunks of `sections` as they come: a streamed file (ingestion.loaders.text) is
        chunked section by section, never held whole."""
        timed: list[Section] = []
        for section in sections:
            if section.start is not None:
                timed.append(section)
                continue
            yield from self._flush_timed(timed)
            for piece in self.splitter.split_text(section.text):
                if piece.strip():
                    yield ChunkText(piece, page=section.page, heading=section.heading,
                                    meta=section.meta)
        yield from self._flush_timed(timed)

    def _flush_timed(self, segments: list[Section]) -> list[ChunkText]:
        """Group consecutive speech segments up to the chunk size; long ones are split."""
        out: list[ChunkText] = []
        group: list[Section] = []
        tokens = 0

        def emit() -> None:
            if group:
                text = " ".join(s.text.strip() for s in group).strip()
                if text:
                    # min/max, not first/last: subtitle cues may come out of order, and a
                    # chunk's span must still cover all of its text (and never end before it starts).
                    start = min(s.start for s in group if s.start is not None)
                    end = max(s.end if s.end is not None else s.start for s in group
                              if s.start is not None)
                    out.append(ChunkText(text, start=start, end=end, heading=group[0].heading))
                group.clear()

        for segment in segments:
            n = self.count_tokens(segment.text)
            if group and tokens + n > self.chunk_size:
                emit()
                tokens = 0
            if n > self.chunk_size:
                for piece in self.splitter.split_text(segment.text):
                    out.append(ChunkText(piece, start=segment.start, end=segment.end))
                continue
            group.append(segment)
            tokens += n
        emit()
        segments.clear()
        return out
