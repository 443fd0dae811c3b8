"""Where a question's capitals mark no names, a word English rarely uses is one (`decline_rare_words`).

"How long should Sencha tea steep?" is declined over sources that never say Sencha; typed
in lower case it had no name to check and reached the model, which answers such questions from
neighbouring facts (rule 42, README "Choosing quality settings"). End to end:
tests/rag/test_question_casing.py."""

from __future__ import annotations

import pytest

from rag.common_words import CommonWords
from retrievers.names import unmarked_words


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
