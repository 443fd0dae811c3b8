"""The prompt budget: the model reads the sentences that answer, within a token budget."""

from __future__ import annotations

from rag.context_budget import extract_passages, split_sentences
from rag.generation import Citation, build_messages


def words(text: str) -> int:
    return len(text.split())


CHUNKS = [
    "The harbour lamp was built in 1887. Its lens came from Paris. Keepers climbed 120 steps "
    "every night. The paint is red and white.",
    "Storms were common in winter. The lamp burns kerosene and is visible for 18 nautical "
    "miles on a clear night. Fishermen relied on it.",
    "Tourists visit in summer. A small museum sells postcards.",
]


def test_the_answering_sentence_of_a_lower_ranked_chunk_is_kept_and_filler_is_not():
    shown = extract_passages("How far away is the lamp visible?", CHUNKS, 25, words)
    assert "visible for 18 nautical miles" in shown[1]
    assert "postcards" not in " ".join(shown)
    assert sum(words(s) for s in shown) <= 25 + 3  # the budget, give or take the gap marks


def test_neighbours_fill_the_budget_and_gaps_are_marked():
    shown = extract_passages("When was the harbour lamp built and who climbed the steps?",
                             CHUNKS, 40, words)
    assert shown[0].startswith("The harbour lamp was built in 1887.")
    assert "Keepers climbed 120 steps" in shown[0]
    small = extract_passages("Who climbed the steps of the lamp?", CHUNKS[:1], 14, words)
    assert small[0] == "Keepers climbed 120 steps every night. The paint is red and white."


def test_with_no_shared_term_the_best_chunk_opens_the_prompt():
    shown = extract_passages("Qu'est-ce que c'est?", CHUNKS, 15, words)
    assert shown[0].startswith("The harbour lamp was built in 1887.")
    assert shown[1] == shown[2] == ""


def test_sources_left_out_keep_their_numbers():
    contexts = [Citation(n, f"c{n}", f"doc{n}.txt", None, None, None, text)
                for n, text in enumerate(CHUNKS, start=1)]
    shown = ["", "The lamp is visible for 18 nautical miles.", ""]
    user = build_messages("How far?", contexts, shown=shown)[-1]["content"]
    assert "Source 2 (doc2.txt)" in user and "Source 1" not in user and "Source 3" not in user
    assert "Fishermen" not in user


def test_paragraph_breaks_split_headings_from_text():
    assert split_sentences("Tea\n\nSteep green tea for 2 minutes. Serve.") == \
        ["Tea", "Steep green tea for 2 minutes.", "Serve."]


def test_a_title_the_budget_keeps_stays_on_its_own_line():
    # Joined by spaces, the 0.5B model read "Defining Property March 2012 As a child I read ..."
    # as one sentence and answered "Paul Graham Defining Property was the judge".
    chunk = ("Written by Paul Graham\n\nDefining Property\n\nMarch 2012\n\nAs a child I read a "
             "book of stories about a famous judge in Japan called Ooka Tadasuke. One case was "
             "brought by the owner of a food shop.")
    shown = extract_passages("Who was the famous judge in Japan?", [chunk], 25, words)[0]
    assert shown == ("March 2012\nAs a child I read a book of stories about a famous judge in "
                     "Japan called Ooka Tadasuke.")
    opening = extract_passages("Qu'est-ce que c'est?", [chunk], 12, words)[0]
    assert opening == "Written by Paul Graham\nDefining Property\nMarch 2012"
