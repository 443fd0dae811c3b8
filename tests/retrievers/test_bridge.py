"""The bridge round: a question whose second half names nothing the question says is served the
chunk about the bridge the first round's best sentence names (retrievers/bridge.py), through the
hybrid retriever over a real BM25 index."""

from __future__ import annotations

from retrievers.bm25 import BM25Index
from retrievers.bridge import bridge_names, bridge_round
from retrievers.hybrid import HybridRetriever, KeywordSearch
from retrievers.records import Chunk, Hit
from retrievers.text import tokenize

TEXTS = {
    "rtml": "Viaweb was a store builder. For describing pages, we had a template language called "
            "RTML, which in fact I named after Rtm. It ran on our servers.",
    "viaweb-1": "Viaweb made software for online stores and was bought by Yahoo.",
    "viaweb-2": "At Viaweb we wrote the pages language ourselves; users edited pages in a browser.",
    "viaweb-3": "The template pages of Viaweb stores were rendered on the server.",
    "rtm": "Robert Morris, or Rtm, was wrong only once: he said desktop computers would never "
           "be suitable for real hacking.",
    "yahoo": "Yahoo bought many companies in 1998.",
}
QUESTION = ("Viaweb's page template language RTML was named after a cofounder. "
            "When was that person mistaken?")


def _chunk(cid: str) -> Chunk:
    return Chunk(chunk_id=cid, text=TEXTS[cid], source=f"/essays/{cid}.txt", source_id=cid,
                 content_hash="h", position=0)


def _retriever(seeds: int, slots: int = 1) -> HybridRetriever:
    index = BM25Index()
    for cid, text in TEXTS.items():
        index.add_tokens(cid, tokenize(text))
    return HybridRetriever({"bm25": KeywordSearch(index)},
                           lambda ids: {i: _chunk(i) for i in ids if i in TEXTS},
                           candidate_k=10, bridge_seeds=seeds, bridge_slots=slots)


def _ids(hits: list[Hit]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def test_the_bridge_names_come_from_the_sentence_closest_to_the_question():
    assert bridge_names(QUESTION, Hit(_chunk("rtml"), 1.0)) == ["Rtm"]
    assert bridge_names("What is tea?", Hit(_chunk("rtml"), 1.0)) == []  # nothing shared


def test_the_chunk_about_the_bridge_takes_the_lowest_place_only_when_asked_to():
    plain = _retriever(seeds=0).retrieve(QUESTION, top_k=3)
    assert _ids(plain)[0] == "rtml" and "rtm" not in _ids(plain)
    bridged = _retriever(seeds=1).retrieve(QUESTION, top_k=3)
    assert _ids(bridged) == _ids(plain)[:2] + ["rtm"]


def test_a_second_round_finding_no_holder_of_a_bridge_name_changes_nothing():
    served = [Hit(_chunk(cid), 1.0) for cid in ("rtml", "viaweb-1", "viaweb-2")]
    unrelated = lambda query: [Hit(_chunk("yahoo"), 1.0)]  # holds no bridge name  # noqa: E731
    assert _ids(bridge_round(QUESTION, served, unrelated, seeds=1, slots=2)) == _ids(served)
    assert _ids(bridge_round(QUESTION, served, lambda q: [Hit(_chunk("rtm"), 1.0)],
                             seeds=1, slots=0)) == _ids(served)


def test_with_new_source_a_bridge_hit_from_a_served_file_is_passed_over():
    served = [Hit(_chunk(cid), 1.0) for cid in ("rtml", "viaweb-1", "viaweb-2")]
    same_file = Chunk(chunk_id="rtml-2", text="Rtm wrote the compiler.", source="/essays/rtml.txt",
                      source_id="rtml", content_hash="h", position=1)
    found = lambda query: [Hit(same_file, 2.0), Hit(_chunk("rtm"), 1.0)]  # noqa: E731
    assert _ids(bridge_round(QUESTION, served, found, seeds=1, slots=1))[-1] == "rtml-2"
    assert _ids(bridge_round(QUESTION, served, found, seeds=1, slots=1, new_source=True))[-1] == "rtm"
