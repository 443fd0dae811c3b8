"""`decline_quoted_anchor`: a phrase the question quotes that a served document holds word for
word lets weak evidence through to the model (rule 14 of issue 16).

A reader asks 'In "Keep Your Identity Small", what abbreviation does Graham liken ...' in 25
words; MiniLM gives that question and the paragraph that answers it a cosine under the decline
threshold, and the cross-encoder scores it low too, so the gate declined answerable questions
about a document the user named exactly."""

from __future__ import annotations

import pytest

from rag.grounding import quoted_anchor, quoted_phrases
from retrievers.catalog import Catalog
from retrievers.text import tokenize
from tests.conftest import publish_documents, rag_over_files, streamed

TITLE = "Filters that Fight Back"
OPENING = f"{TITLE}\n\nAugust 2003\n\nSpam filters could crawl the sites that spam points to."
ANSWERING = "The original version of this article said whitelist where it now says blacklist."
QUESTION = (f'In "{TITLE}", which word did the original version of this article use in the '
            "place where it now says blacklist?")


def test_quoted_phrases_of_two_words_or_more_in_straight_or_curly_quotes():
    assert quoted_phrases(QUESTION) == [TITLE]
    assert quoted_phrases("In \u201cGreat  Hackers.\u201d, who?") == ["Great Hackers."]
    assert quoted_phrases('What does "spam" mean?') == []  # one word: not a title
    assert quoted_phrases("What is spam?") == []


def test_the_anchor_is_a_quoted_phrase_a_document_holds_on_word_boundaries():
    assert quoted_anchor(QUESTION, lambda: [OPENING.replace("Fight ", "Fight\n")]) == TITLE.lower()
    assert quoted_anchor(QUESTION, lambda: ["Filters that Fight Backwards"]) is None
    assert quoted_anchor(QUESTION, lambda: [ANSWERING]) is None
    read = []
    assert quoted_anchor("Which word?", lambda: read.append(1) or [OPENING]) is None
    assert read == []  # no quote: the documents are not read


def test_document_texts_are_the_live_chunks_of_the_served_chunks_documents(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    publish_documents(catalog, {"ffb": [OPENING, ANSWERING], "tea": ["Steep green tea for two minutes."]})
    try:
        assert catalog.document_texts(["ffb-1"]) == [OPENING, ANSWERING]
        assert len(catalog.document_texts(["tea-0", "ffb-1"])) == 3
        assert catalog.document_texts(["gone-0"]) == []
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def essay_rag(tmp_path_factory, embedder, llm):
    """An essay whose title chunk is far from its answering paragraph, behind a gate that finds
    every question's evidence weak (a cosine of 0.99 asked for), so only the anchor can pass."""
    filler = " ".join(f"Spam filters learn from the mail each user marks, week {n}." for n in range(12))
    rag = rag_over_files(tmp_path_factory, embedder, llm,
                         {"ffb.txt": f"{OPENING}\n\n{filler}\n\n{ANSWERING}\n"},
                         chunk_size=60, chunk_overlap=0, decline_gate="evidence",
                         decline_min_dense=0.99)
    yield rag
    rag.close()


def test_a_question_quoting_its_documents_title_reaches_the_model(essay_rag):
    with streamed(essay_rag, QUESTION, decline_quoted_anchor=False) as off:
        assert "fight" not in tokenize(off.contexts[0].text)  # the title chunk is not served
        assert off.gated and off.anchor is None
    with streamed(essay_rag, QUESTION, decline_quoted_anchor=True) as on:
        assert not on.gated and on.anchor == TITLE.lower()


def test_a_quote_no_document_holds_or_a_missing_name_still_declines(essay_rag):
    with streamed(essay_rag, QUESTION.replace(TITLE, "Filters that Crawl Back"),
                  decline_quoted_anchor=True) as elsewhere:
        assert elsewhere.gated and elsewhere.anchor is None
    with streamed(essay_rag, f'In "{TITLE}", what did Kubernetes change about blacklists?',
                  decline_quoted_anchor=True) as named:
        assert named.gated and named.evidence.missing_names == ("kubernet",)
