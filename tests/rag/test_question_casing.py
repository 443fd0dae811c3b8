"""A question in Title Case or in capitals is read like the same question in lower case.

The name check (rag/grounding.py) and the fusion weights treat a capitalised word that does not
open a sentence as a name. In "How Long Should Green Tea Steep For Best Flavour?" every word is
capitalised, so "Best" and "Flavour" became names that no served context holds, and the question
was declined: 122 of 405 answerable dev questions retyped in Title Case were declined before
generation, against 6 as written (2026-12-06)."""

from __future__ import annotations

import pytest

from retrievers.names import casing_says_nothing, name_words, whole_names
from tests.conftest import NAME_CHECK_ONLY, rag_over_files, streamed


@pytest.mark.parametrize("question", [
    "WHAT IS THE CAPITAL OF FRANCE?",
    "What Is The Capital Of France?",
    "What Did Paul Graham Work On Before College?",
    "What Is Proof of History in Solana?",  # small words left in lower case, as titles do
])
def test_capitals_on_every_word_mark_no_names(question):
    assert casing_says_nothing(question)
    assert name_words(question) == [] and whole_names(question) == []


@pytest.mark.parametrize("question, names", [
    ("What is Proof of History in Solana?", ["Proof", "History", "Solana"]),
    ("What does the Attention Is All You Need paper propose?", ["Attention", "Is", "All", "You", "Need"]),
    ("Who is Paul Graham?", ["Paul", "Graham"]),
    ("How many TPU v4 chips trained PaLM?", ["v4", "PaLM"]),
    ("Where is The Hague?", ["The", "Hague"]),  # "is": not a word a title leaves in lower case
])
def test_names_in_a_sentence_stay_names(question, names):
    assert not casing_says_nothing(question)
    assert name_words(question) == names


def test_in_capitals_words_with_digits_stay_names_and_no_word_is_an_acronym():
    question = "IS GPT-4 BETTER THAN LLAMA ON MMLU?"
    assert name_words(question) == ["GPT-4"]
    assert whole_names(question) == ["GPT-4"]  # not the whole question joined to it
    assert name_words("WHAT ARE GRAHAM'S VIEWS ON 2005?") == ["2005"]  # possessive dropped


@pytest.mark.parametrize("question, names", [
    # prose, then a question typed in Title Case: each sentence's casing is read on its own
    ("I read the essay. What Does He Say About Startups?", []),
    ("I read the essay by Paul Graham. What Does He Say About Startups?", ["Paul", "Graham"]),
    # a quoted title's "?" ends no sentence, so the title stays names
    ('In "Can You Buy a Silicon Valley? Maybe.", which city does Graham name?',
     ["You", "Buy", "Silicon", "Valley", "Graham"]),
])
def test_casing_is_read_sentence_by_sentence(question, names):
    assert name_words(question) == names


TEA_FILES = {
    "tea.txt": "Steep green tea for two minutes in water at 80 degrees.\n",
    "lamp.txt": "The desk lamp takes a 40 watt bulb.\n",
}


@pytest.fixture(scope="module")
def tea_rag(tmp_path_factory, embedder, llm):
    rag = rag_over_files(tmp_path_factory, embedder, llm, TEA_FILES, **NAME_CHECK_ONLY)
    yield rag
    rag.close()


@pytest.fixture(scope="module")
def tea_rag_without_rare_words(tmp_path_factory, embedder, llm):
    rag = rag_over_files(tmp_path_factory, embedder, llm, TEA_FILES, **NAME_CHECK_ONLY,
                         decline_rare_words=False)
    yield rag
    rag.close()


def typed_three_ways(question: str) -> list[str]:
    """`question` in lower case, in Title Case and in capitals."""
    return [question.lower(), question.title(), question.upper()]


@pytest.mark.parametrize("question", [
    "How long should green tea steep for best flavour?",
    *typed_three_ways("How long should green tea steep for best flavour?"),
])
def test_the_same_question_in_any_casing_reaches_the_model(tea_rag, question):
    with streamed(tea_rag, question) as stream:
        assert stream.contexts[0].source.endswith("tea.txt")
        assert stream.evidence.missing_names == () and not stream.gated


def test_a_name_the_sources_lack_still_declines_a_question_in_sentence_case(tea_rag):
    with streamed(tea_rag, "How long should Darjeeling tea steep?") as stream:
        assert stream.gated and stream.evidence.missing_names == ("darjeel",)


# Rule 42 (`decline_rare_words`, on): where the casing marks no names, a word English rarely
# uses is one, so "sencha" declines the question however it is typed.
@pytest.mark.parametrize("question", typed_three_ways("How long should sencha tea steep?"))
def test_a_rare_word_the_sources_lack_declines_a_question_in_any_casing(tea_rag, question):
    with streamed(tea_rag, question) as stream:
        assert stream.gated and stream.evidence.missing_names == ("sencha",)


def test_without_rare_words_a_lower_case_question_has_no_name_to_check(tea_rag_without_rare_words):
    with streamed(tea_rag_without_rare_words, "how long should sencha tea steep?") as stream:
        assert stream.evidence.missing_names == () and not stream.gated
