"""Name coverage: a question naming two things gets a context for each, when the candidates
hold one (retrievers/name_coverage.py), through the hybrid retriever as `ask` uses it."""

from __future__ import annotations

from retrievers.hybrid import HybridRetriever
from retrievers.name_coverage import cover_names
from retrievers.records import Chunk, Hit

TEXTS = {
    "bert-1": "BERT obtains new state-of-the-art results on eleven tasks, including GLUE.",
    "bert-2": "BERT is pre-trained with a masked language model objective on GLUE-like data.",
    "bert-3": "Fine-tuning BERT on GLUE takes an hour on one accelerator.",
    "glue-1": "The GLUE benchmark collects nine sentence understanding tasks.",
    "glue-2": "GLUE scores are averaged over its tasks.",
    "rob-1": "RoBERTa matches or exceeds BERT on every GLUE task with longer training.",
    "intro": "We present a replication study of pretraining.",
}
SOURCES = {"intro": "/papers/roberta.pdf"}


def _hit(cid: str, score: float) -> Hit:
    chunk = Chunk(chunk_id=cid, text=TEXTS[cid], source=SOURCES.get(cid, f"/papers/{cid}.pdf"),
                  source_id=cid, content_hash="h", position=0)
    return Hit(chunk, score)


def _hits(*ids: str) -> list[Hit]:
    return [_hit(cid, 10.0 - n) for n, cid in enumerate(ids)]


def _ids(hits: list[Hit]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


QUESTION = "How does RoBERTa compare to BERT on the GLUE benchmark?"


def test_a_name_the_served_contexts_lack_is_brought_in_from_the_candidates():
    served, pool = _hits("bert-1", "glue-1", "bert-2", "glue-2", "bert-3"), _hits("rob-1")
    covered = cover_names(QUESTION, served, iter(pool), max_swaps=2)
    assert _ids(covered) == ["bert-1", "glue-1", "bert-2", "glue-2", "rob-1"]


def test_the_file_name_holds_a_name_too():
    served = _hits("bert-1", "glue-1", "bert-2")
    covered = cover_names(QUESTION, served, iter(_hits("intro", "rob-1")), max_swaps=1)
    assert _ids(covered) == ["bert-1", "glue-1", "intro"]  # the best-ranked carrier


def test_nothing_changes_when_no_candidate_holds_the_name_or_the_question_has_none():
    served = _hits("bert-1", "glue-1", "bert-2")
    assert _ids(cover_names(QUESTION, served, iter(_hits("glue-2")), 2)) == _ids(served)
    assert _ids(cover_names("how is glue scored?", served, iter(_hits("rob-1")), 2)) == _ids(served)
    assert _ids(cover_names(QUESTION, served, iter(_hits("rob-1")), 0)) == _ids(served)


def test_the_only_carrier_of_another_name_is_not_the_one_dropped():
    question = "Did Marconi or Tesla patent radio first?"
    TEXTS.update({"marconi": "Marconi filed his patent in 1896.", "tesla": "Tesla filed in 1897.",
                  "radio-1": "Radio grew from many inventors.", "radio-2": "Early radio patents."})
    served = _hits("radio-1", "radio-2", "marconi")
    covered = cover_names(question, served, iter(_hits("tesla")), max_swaps=1)
    assert _ids(covered) == ["radio-1", "marconi", "tesla"]


def _ranked(*ids: str):
    return lambda query, k, filters=None: [(cid, 10.0 - n) for n, cid in enumerate(ids)][:k]


def _retriever(cover: bool) -> HybridRetriever:
    chunks = {cid: _hit(cid, 0).chunk for cid in TEXTS}
    retrievers = {  # two ranked lists as the keyword and dense sides would give them
        "bm25": _ranked("rob-1", "bert-1", "bert-2", "glue-1", "bert-3", "glue-2"),
        "dense": _ranked("bert-1", "glue-1", "bert-2", "glue-2", "bert-3", "intro"),
    }
    return HybridRetriever(retrievers, lambda ids: {i: chunks[i] for i in ids if i in chunks},
                           candidate_k=6, weights={"bm25": 0.2, "dense": 1.0}, cover_names=cover)


def test_the_hybrid_retriever_serves_each_name_only_when_asked_to():
    assert "rob-1" not in _ids(_retriever(False).retrieve(QUESTION, top_k=3))
    covered = _retriever(True).retrieve(QUESTION, top_k=3)
    assert len(covered) == 3 and "rob-1" in _ids(covered)
    assert _ids(_retriever(True).retrieve(QUESTION, top_k=3, mode="dense")) == [
        "bert-1", "glue-1", "bert-2"]  # a single retriever's ranking is left as it is


def test_a_name_spelled_with_an_accent_or_an_apostrophe_is_held_as_the_tokenizer_reads_it():
    from retrievers.names import names_held_by, named_terms

    names = named_terms("How far is Mariehamn in the Åland Islands from O'Brien's Tower?")
    assert {"aland", "obrien"} <= set(names)
    text = "Mariehamn, capital of Åland, lies far from O'Brien's Tower in County Clare."
    assert names_held_by(text, "notes.txt", names) >= {"aland", "obrien", "mariehamn"}
    assert names_held_by("Steep green tea for two minutes.", "Åland.txt", names) == {"aland"}
