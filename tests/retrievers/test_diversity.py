"""A file's share of the served top-k is capped; the rest comes from other files in rank order."""

from __future__ import annotations

from retrievers.diversity import cap_per_source
from retrievers.records import Chunk, Hit


def _hits(*sources: str) -> list[Hit]:
    return [Hit(Chunk(chunk_id=f"c{n}", text="t", source=f"/d/{s}.txt", source_id=s,
                      content_hash="h", position=n), 10.0 - n) for n, s in enumerate(sources)]


def _ids(hits: list[Hit]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def test_one_long_file_no_longer_fills_the_top_k():
    ranked = _hits("a", "a", "a", "a", "b", "a", "c")
    assert _ids(cap_per_source(ranked, 4, per_source=2)) == ["c0", "c1", "c4", "c6"]


def test_capped_hits_fill_the_places_no_other_file_can():
    ranked = _hits("a", "a", "a", "b")
    assert _ids(cap_per_source(ranked, 4, per_source=1)) == ["c0", "c1", "c2", "c3"]


def test_no_cap_is_the_ranking_itself():
    ranked = _hits("a", "a", "a", "b")
    assert _ids(cap_per_source(ranked, 3, per_source=0)) == ["c0", "c1", "c2"]
