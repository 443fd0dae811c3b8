"""The records that flow between ingestion, the indexes and answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Chunk:
    """One indexed piece of a source, with everything a citation needs."""

    chunk_id: str
    text: str
    source: str  # path as given to ingest (resolved)
    source_id: str
    content_hash: str
    position: int
    page: int | None = None
    start: float | None = None
    end: float | None = None
    section: str | None = None
    file_type: str = ""
    ingested_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        data = asdict(self)
        del data["text"], data["chunk_id"]
        return data

    @classmethod
    def from_meta(cls, chunk_id: str, text: str, meta: dict[str, Any]) -> "Chunk":
        known = {k: v for k, v in meta.items() if k in cls.__dataclass_fields__}
        return cls(chunk_id=chunk_id, text=text, **known)


def chunk_id_for(source_id: str, content_hash: str, position: int) -> str:
    """Deterministic: the same bytes at the same place always give the same id."""
    return f"{source_id[:16]}-{content_hash[:16]}-{position:05d}"


@dataclass
class Hit:
    """A retrieved chunk with its fused score and each retriever's rank and score."""

    chunk: Chunk
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "chunk_id": c.chunk_id,
            "source": c.source,
            "page": c.page,
            "start": c.start,
            "end": c.end,
            "section": c.section,
            "score": self.score,
            "ranks": self.ranks,
            "scores": self.scores,
            "text": c.text,
        }


def titled_text(text: str, source: str, titled: bool) -> str:
    """What the dense model embeds for a passage of `source`: its text, after a line with its
    file's name where the index embeds titles. A chunk deep in a paper or essay rarely says
    which one it belongs to (stock llama-index embeds the file path for the same reason); with
    the title, "What tasks is BERT pre-trained on?" finds bert.pdf's chunks that never say BERT."""
    if not titled:
        return text
    from retrievers.text import source_title

    title = source_title(source)
    return f"{title}\n{text}" if title else text


def passage_texts(chunks: "list[Chunk]", titled: bool) -> list[str]:
    """`titled_text` of each chunk, in order."""
    return [titled_text(c.text, c.source, titled) for c in chunks]
