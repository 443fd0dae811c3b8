"""Where a question's capitals mark no names, a word English rarely uses is one (`decline_rare_words`).

"How long should Sencha tea steep?" is declined over sources that never say Sencha; typed
in lower case it had no name to check and reached the model, which answers such questions from
neighbouring facts (rule 42, README "Choosing quality settings")."""

from __future__ import annotations

import pytest

from rag.common_words import CommonWords
from retrievers.names import unmarked_words
from tests.conftest import NAME_CHECK_ONLY, rag_over_files, streamed


@pytest.mark.parametrize("question, words", [
    ("what does graham think of tiktok?", ["what", "does", "graham", "think", "tiktok"]),
    ("What Does Graham Think Of TikTok?", ["What", "Does", "Graham", "Think", "TikTok"]),
    ("WHAT IS FIREDANCER?", ["WHAT", "FIREDANCER"]),
    ("What does Graham think of TikTok?", []),  # capitals mark the names: name_words reads them
    ("I read Graham's essay. what is viaweb's origin?", ["what", "viaweb", "origin"]),  # per sentence
])
def test_words_where_capitals_mark_no_names(question, words):
    assert unmarked_words(question) == words


def test_british_spellings_are_as_common_as_american_ones(tmp_path):
    common = CommonWords(str(tmp_path / "no-vocab.txt"))
    assert common.rare(["summarises", "characterise", "flavours", "centre", "analysed", "tiktok"]) == [
        "tiktok"]


def test_rare_words_are_those_neither_word_list_knows_as_common(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n##ing\nflavour\ngraham\n", encoding="utf-8")
    common = CommonWords(str(vocab))
    # "flavour": the WordPiece vocabulary; "startups": the spelling list; "tiktok": neither
    assert common.rare(["flavour", "Graham", "startups", "tiktok", "TikTok", "firedancer"]) == [
        "tiktok", "TikTok", "firedancer"]


TEA_FILES = {
    "tea.txt": "Steep green tea for two minutes in water at 80 degrees.\n",
    "lamp.txt": "The desk lamp takes a 40 watt bulb.\n",
}


@pytest.fixture(scope="module")
def tea_rag_rare(tmp_path_factory, embedder, llm):
    rag = rag_over_files(tmp_path_factory, embedder, llm, TEA_FILES, **NAME_CHECK_ONLY)
    yield rag
    rag.close()


@pytest.fixture(scope="module")
def tea_rag_without(tmp_path_factory, embedder, llm):
    rag = rag_over_files(tmp_path_factory, embedder, llm, TEA_FILES, decline_rare_words=False,
                         **NAME_CHECK_ONLY)
    yield rag
    rag.close()


@pytest.mark.parametrize("question", [
    "how long should sencha tea steep?",
    "How Long Should Sencha Tea Steep?",
    "HOW LONG SHOULD SENCHA TEA STEEP?",
])
def test_a_rare_word_the_sources_lack_declines_a_question_in_any_casing(tea_rag_rare, question):
    with streamed(tea_rag_rare, question) as stream:
        assert stream.gated and stream.evidence.missing_names == ("sencha",)


@pytest.mark.parametrize("question", [
    "how long should green tea steep for best flavour?",
    "HOW LONG SHOULD GREEN TEA STEEP FOR BEST FLAVOUR?",
])
def test_common_words_still_reach_the_model(tea_rag_rare, question):
    with streamed(tea_rag_rare, question) as stream:
        assert stream.evidence.missing_names == () and not stream.gated


def test_without_the_setting_a_lower_case_question_has_no_name_to_check(tea_rag_without):
    with streamed(tea_rag_without, "how long should sencha tea steep?") as stream:
        assert stream.evidence.missing_names == ()
