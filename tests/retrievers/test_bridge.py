"""The bridge round: a question whose second half names nothing the question says is served the
chunk about the bridge the first round's best sentence names (retrievers/bridge.py), through the
hybrid retriever over a real BM25 index; with the packaged cross-encoder, only past its gate."""

from __future__ import annotations

from retrievers.bm25 import BM25Index
from retrievers.bridge import bridge_names, bridge_round, outscoring
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


def _retriever(seeds: int, slots: int = 1, **options) -> HybridRetriever:
    index = BM25Index()
    for cid, text in TEXTS.items():
        index.add_tokens(cid, tokenize(text))
    return HybridRetriever({"bm25": KeywordSearch(index)},
                           lambda ids: {i: _chunk(i) for i in ids if i in TEXTS},
                           candidate_k=10, bridge_seeds=seeds, bridge_slots=slots, **options)


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


def _scored(cid: str, rerank: float) -> Hit:
    return Hit(_chunk(cid), 1.0, {"bm25": 1}, {"bm25": 1.0, "rerank": rerank})


def test_a_gated_bridge_hit_must_outscore_the_hit_whose_place_it_takes():
    served = [_scored("rtml", 5.0), _scored("viaweb-1", 2.0), _scored("viaweb-2", 1.0)]
    found = [Hit(_chunk("rtm"), 0.3), Hit(_chunk("yahoo"), 0.2)]
    rescored = lambda ces: [_scored(h.chunk.chunk_id, ce) for h, ce in zip(found, ces)]  # noqa: E731
    # rtm beats the lowest (1.0) but not the next (2.0): one place taken, the rest kept
    kept = outscoring(served, found, rescored([1.5, 1.7]))
    assert _ids(kept) == ["rtml", "viaweb-1", "yahoo"]
    assert kept[-1].score == 0.2 and kept[-1].scores["rerank"] == 1.7  # its own fused score
    assert _ids(outscoring(served, found, rescored([0.5, -3.0]))) == _ids(served)
    # both beat their places; the best takes the lowest place first, as the replay measured it
    assert _ids(outscoring(served, found, rescored([9.0, 8.0]))) == ["rtml", "yahoo", "rtm"]


def test_the_packaged_cross_encoder_lets_a_bridge_hit_pass_only_above_the_hit_it_replaces(
        packaged_reranker):
    rerank = lambda hits: packaged_reranker.rerank(QUESTION, hits)  # noqa: E731
    to_rtm = lambda query: [Hit(_chunk("rtm"), 0.5)]  # noqa: E731
    weak_last = rerank([Hit(_chunk(c), 1.0) for c in ("rtml", "viaweb-1", "yahoo")])
    assert _ids(weak_last)[-1] == "yahoo"  # a stock deal: nothing to do with RTML
    bridged = bridge_round(QUESTION, weak_last, to_rtm, seeds=1, slots=1, rerank=rerank)
    assert _ids(bridged) == _ids(weak_last)[:2] + ["rtm"] and "rerank" in bridged[-1].scores
    # a served page-language chunk outscores the Rtm chunk (which says "wrong", not
    # "mistaken"), so the gate keeps it, where the ungated round swaps it out
    strong_last = rerank([Hit(_chunk(c), 1.0) for c in ("rtml", "viaweb-3", "viaweb-2")])
    assert _ids(bridge_round(QUESTION, strong_last, to_rtm, 1, 1, rerank=rerank)) == _ids(strong_last)
    assert _ids(bridge_round(QUESTION, strong_last, to_rtm, 1, 1))[-1] == "rtm"


def test_the_hybrid_retriever_gates_its_bridge_round_with_its_reranker(packaged_reranker):
    gated = _retriever(seeds=1, reranker=packaged_reranker).retrieve(QUESTION, top_k=3)
    ungated = _retriever(seeds=1, reranker=packaged_reranker, bridge_rerank_gate=False)
    assert "rtm" not in _ids(gated)
    assert _ids(ungated.retrieve(QUESTION, top_k=3)) == _ids(gated)[:2] + ["rtm"]


def test_appended_the_bridge_hit_follows_the_top_k_and_displaces_nothing():
    plain = _retriever(seeds=0).retrieve(QUESTION, top_k=3)
    appended = _retriever(seeds=1, bridge_append=True).retrieve(QUESTION, top_k=3)
    assert _ids(appended) == _ids(plain) + ["rtm"]
    # a question whose first round names no bridge is served its top-k alone
    assert _ids(_retriever(seeds=1, bridge_append=True).retrieve("Who bought Viaweb?", top_k=3)) \
        == _ids(_retriever(seeds=0).retrieve("Who bought Viaweb?", top_k=3))


def test_appended_and_gated_a_bridge_hit_must_outscore_the_lowest_served_hit():
    served = [_scored("rtml", 5.0), _scored("viaweb-1", 2.0), _scored("viaweb-2", 1.0)]
    to_rtm = lambda query: [Hit(_chunk("rtm"), 0.3)]  # noqa: E731
    rescored = lambda ce: (lambda found: [_scored(h.chunk.chunk_id, ce) for h in found])  # noqa: E731
    assert _ids(bridge_round(QUESTION, served, to_rtm, 1, 1, rerank=rescored(1.5), append=True)) \
        == _ids(served) + ["rtm"]
    assert _ids(bridge_round(QUESTION, served, to_rtm, 1, 1, rerank=rescored(0.5), append=True)) \
        == _ids(served)
    # one served hit is enough to append to (replacing needs two: the top hit always stays)
    assert _ids(bridge_round(QUESTION, served[:1], to_rtm, 1, 1, append=True)) == ["rtml", "rtm"]
    assert _ids(bridge_round(QUESTION, served[:1], to_rtm, 1, 1)) == ["rtml"]
