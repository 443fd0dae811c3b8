"""`decline_names_in_documents`: the name check also reads the served contexts' whole documents.

A question that quotes an essay's title ("In 'Filters that Fight Back', ...") names words the
essay holds in its title line, not in the paragraph that answers; with the check reading only
the served chunks, such questions were declined as if they asked about something absent."""

from __future__ import annotations

import pytest

from rag.grounding import retrieval_evidence
from retrievers.catalog import Catalog
from retrievers.text import tokenize
from tests.conftest import publish_documents, rag_over_files, streamed

QUESTION = 'In "Filters that Fight Back", which lists did the first version call whitelists?'
ANSWERING = "The original version of this article said whitelist where it now says blacklist."
TITLE = "Filters that Fight Back. Spam filters could crawl the sites that spam points to."


def test_the_whole_document_vouches_for_a_name_the_served_chunk_lacks():
    alone = retrieval_evidence(QUESTION, [ANSWERING], [0.6])
    assert alone.missing_names == ("fight", "back")  # "Filters" opens the quote
    whole = set(tokenize(TITLE + " " + ANSWERING))
    vouched = retrieval_evidence(QUESTION, [ANSWERING], [0.6], documents=lambda: whole)
    assert vouched.missing_names == () and not vouched.weak(0.4, 0.35)


def test_a_name_no_document_holds_is_still_missing_and_documents_are_read_only_then():
    asked = []

    def documents():
        asked.append(1)
        return set(tokenize(TITLE))

    other = retrieval_evidence("What did Kubernetes add to Filters?", [ANSWERING], [0.6],
                               documents=documents)
    assert other.missing_names == ("kubernet",) and asked == [1]
    named = retrieval_evidence("What does the article call whitelists?", [ANSWERING], [0.6],
                               documents=documents)
    assert named.missing_names == () and asked == [1]  # nothing missing: not asked


def test_document_terms_are_every_live_chunk_of_the_served_chunks_documents(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    publish_documents(catalog, {"ffb": [TITLE, ANSWERING], "tea": ["Steep green tea for two minutes."]})
    try:
        terms = catalog.document_terms(["ffb-1"])
        assert {"fight", "whitelist"} <= terms and "tea" not in terms
        assert catalog.document_terms(["tea-0", "ffb-1"]) >= {"tea", "fight"}
        assert catalog.document_terms(["gone-0"]) == set()
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def essay_rag(tmp_path_factory, embedder, llm):
    """An essay of two chunks: its title line, and (far from it) the answering paragraph."""
    filler = " ".join(f"Spam filters learn from the mail each user marks, week {n}." for n in range(12))
    rag = rag_over_files(tmp_path_factory, embedder, llm,
                         {"ffb.txt": f"{TITLE}\n\n{filler}\n\n{ANSWERING}\n"},
                         chunk_size=60, chunk_overlap=0, decline_gate="evidence",
                         decline_min_dense=0.0)
    yield rag
    rag.close()


def test_the_setting_lets_a_title_quoting_question_through_to_the_model(essay_rag):
    with streamed(essay_rag, QUESTION, decline_names_in_documents=False,
                  decline_names_in_corpus=False) as off:  # the whole index would vouch too
        assert ANSWERING.split()[0] in off.contexts[0].text or "whitelist" in off.contexts[0].text
        assert "fight" not in tokenize(off.contexts[0].text)  # the title chunk is not served
        assert off.gated and "no source mentions" in off.evidence.why_weak(0.4, 0.0)
    with streamed(essay_rag, QUESTION, decline_names_in_documents=True) as on:
        assert on.evidence.missing_names == () and not on.gated
    # a name the essay never holds is still declined with the setting on
    with streamed(essay_rag, 'In "Filters that Fight Back", what did Kubernetes change?',
                  decline_names_in_documents=True) as absent:
        assert absent.gated and absent.evidence.missing_names == ("kubernet",)
