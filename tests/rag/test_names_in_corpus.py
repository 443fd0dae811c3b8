"""`decline_names_in_corpus`: a name any chunk of the index holds is not missing.

In a corpus of one short file per entity (Wikipedia paragraphs), a two-hop question names the
entity of a hop whose file the top k did not serve ("Humboldt Peak, in the state where Silverton
is located, ..."); with the check reading only the served documents, it was declined as if it
asked about something the corpus lacks (12 of MuSiQue's 13 answerable declines)."""

from __future__ import annotations

import pytest

from rag.grounding import retrieval_evidence
from retrievers.bm25 import BM25Index
from retrievers.names import whole_names
from retrievers.phrases import phrases_held
from retrievers.records import Chunk
from retrievers.text import source_name_terms, tokenize
from tests.conftest import NAME_CHECK_ONLY, rag_over_files, streamed

QUESTION = "Humboldt Peak, in the state where Silverton is located, is part of what range?"
PEAK = "Humboldt Peak is a high mountain summit in the Sangre de Cristo Range of Colorado."
TOWN = "Silverton is a former mining town and the county seat of San Juan County, Colorado."


def test_the_index_vouches_for_a_name_no_served_context_holds():
    alone = retrieval_evidence(QUESTION, [PEAK], [0.6])
    assert alone.missing_names == ("silverton",)
    index = BM25Index()
    index.add_tokens("town-0", tokenize(TOWN))
    index.add_tokens("peak-0", tokenize(PEAK))
    vouched = retrieval_evidence(QUESTION, [PEAK], [0.6], corpus=index.holding)
    assert vouched.missing_names == ()
    absent = retrieval_evidence("Humboldt Peak, near Ouray, is part of what range?", [PEAK], [0.6],
                                corpus=index.holding)
    assert absent.missing_names == ("ouray",)


PARTY = "Who founded the Progressive Labour Party of Bermuda?"
CLUB = "The club is run by a progressive board; its labour costs are paid by the party's members."


def test_whole_names_are_runs_of_name_words_and_words_of_several_terms():
    assert whole_names(PARTY) == ["Progressive Labour Party"]
    assert whole_names("Which team won at the 41st Chess Olympiad in Baku?") == ["41st Chess Olympiad"]
    assert whole_names("Who was Peter Appleyard's first wife?") == ["Peter Appleyard"]
    assert whole_names("Where is Bermuda, near Florida?") == []  # a comma parts two names
    # capitals beside a name join it; a word the tokenizer splits is a name of its own
    assert whole_names("How many TPU v4 chips trained it?") == ["TPU v4"]
    assert whole_names("What score does GPT-4 get on MT-Bench?") == ["GPT-4", "MT-Bench"]
    assert whole_names("What did NASA launch in the US in 1969?") == []  # capitals alone are not


def _corpus(texts: dict[str, tuple[str, str]]):
    """BM25 over `texts` (id -> (text, file)), and the two name checks that read it."""
    index = BM25Index()
    for cid, (text, source) in texts.items():
        index.add_tokens(cid, tokenize(text) + list(source_name_terms(source)))  # as ingest counts
    chunks = {cid: Chunk(chunk_id=cid, text=text, source=source, source_id=source, content_hash="",
                         position=0) for cid, (text, source) in texts.items()}

    def held(phrases):
        return phrases_held(phrases, lambda p: [c for c, _ in index.search(p, 10)],
                            lambda ids: {i: chunks[i] for i in ids if i in chunks})
    return index.holding, held


def test_a_multi_word_name_is_vouched_for_only_by_a_chunk_holding_it_whole():
    terms, phrases = _corpus({"club-0": (CLUB, "docs/Club.txt"),
                              "bermuda-0": ("Bermuda is an island territory.", "docs/Bermuda.txt")})
    by_words = retrieval_evidence(PARTY, ["Tea is a drink."], [0.6], corpus=terms)
    assert by_words.missing_names == ()  # each word is somewhere in the corpus
    whole = retrieval_evidence(PARTY, ["Tea is a drink."], [0.6], corpus=terms, corpus_phrases=phrases)
    assert whole.missing_names == ("progress", "labour", "parti")  # the party itself is not
    terms, phrases = _corpus({"plp-0": ("It won the 1998 election by a wide margin.",
                                        "docs/Progressive Labour Party.txt")})  # named by its file
    assert retrieval_evidence(PARTY, ["Tea is a drink."], [0.6], corpus=terms,
                              corpus_phrases=phrases).missing_names == ("bermuda",)
    terms, phrases = _corpus({"b-0": ("A bench of judges; version v4 of the kernel.", "docs/B.txt")})
    bench = "What score does GPT-4 get on MT-Bench?"
    assert retrieval_evidence(bench, ["Tea is a drink."], [0.6], corpus=terms).missing_names == ("gpt", "4", "mt")
    assert retrieval_evidence(bench, ["Tea is a drink."], [0.6], corpus=terms,
                              corpus_phrases=phrases).missing_names == ("gpt", "4", "mt", "bench")


def test_holding_forgets_the_terms_of_removed_chunks():
    index = BM25Index()
    index.add_tokens("town-0", tokenize(TOWN))
    index.add_tokens("peak-0", tokenize(PEAK))
    assert index.holding(["silverton", "humboldt", "ouray"]) == {"silverton", "humboldt"}
    index.remove(["town-0"])
    assert index.holding(["silverton", "humboldt"]) == {"humboldt"}


@pytest.fixture(scope="module")
def wiki_rag(tmp_path_factory, embedder, llm):
    """Two one-paragraph files and unrelated ones, as a Wikipedia-style corpus."""
    rag = rag_over_files(tmp_path_factory, embedder, llm, {
        "Humboldt Peak.txt": f"Humboldt Peak\n\n{PEAK}\n",
        "Silverton, Colorado.txt": f"Silverton, Colorado\n\n{TOWN}\n",
        "Tea.txt": "Tea\n\nSteep green tea for two minutes in water at 80 degrees.\n",
    }, **NAME_CHECK_ONLY)
    yield rag
    rag.close()


def test_the_setting_lets_a_question_naming_an_unserved_hop_through(wiki_rag):
    with streamed(wiki_rag, QUESTION, decline_names_in_corpus=False) as off:
        assert off.contexts[0].source.endswith("Humboldt Peak.txt")  # the town is not served
        assert off.gated and off.evidence.missing_names == ("silverton",)
    with streamed(wiki_rag, QUESTION, decline_names_in_corpus=True) as on:
        assert on.evidence.missing_names == () and not on.gated
    with streamed(wiki_rag, "Humboldt Peak, near Ouray, is part of what range?",
                  decline_names_in_corpus=True) as absent:
        assert absent.gated and absent.evidence.missing_names == ("ouray",)


def test_the_index_vouches_for_a_multi_word_name_only_as_a_whole(wiki_rag):
    question = "Humboldt Peak, near Juan Silverton, is part of what range?"  # no such place
    with streamed(wiki_rag, question, decline_names_in_corpus=True) as whole:
        assert whole.contexts[0].source.endswith("Humboldt Peak.txt")
        # "juan" and "silverton" are each in the town's file, "Juan Silverton" nowhere
        assert whole.gated and whole.evidence.missing_names == ("juan", "silverton")
