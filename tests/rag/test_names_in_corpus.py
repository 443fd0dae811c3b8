"""`decline_names_in_corpus`: a name any chunk of the index holds is not missing.

In a corpus of one short file per entity (Wikipedia paragraphs), a two-hop question names the
entity of a hop whose file the top k did not serve ("Humboldt Peak, in the state where Silverton
is located, ..."); with the check reading only the served documents, it was declined as if it
asked about something the corpus lacks (12 of MuSiQue's 13 answerable declines)."""

from __future__ import annotations

import pytest

from rag.grounding import retrieval_evidence
from retrievers.bm25 import BM25Index
from retrievers.text import tokenize
from tests.conftest import streamed

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
    from rag.api import RAG

    docs = tmp_path_factory.mktemp("wiki")
    (docs / "Humboldt Peak.txt").write_text(f"Humboldt Peak\n\n{PEAK}\n")
    (docs / "Silverton, Colorado.txt").write_text(f"Silverton, Colorado\n\n{TOWN}\n")
    (docs / "Tea.txt").write_text("Tea\n\nSteep green tea for two minutes in water at 80 degrees.\n")
    rag = RAG.open(tmp_path_factory.mktemp("index"), llm=llm, embedder=embedder,
                   decline_gate="evidence", decline_min_dense=0.0, rerank_model="")
    assert all(r.status == "added" for r in rag.ingest([docs]))
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
