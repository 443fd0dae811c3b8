"""Citation marks go after whole sentences, never inside a name, an abbreviation or a number."""

import pytest

from rag.generation import Citation, resolve_citations
from rag.sentences import split_sentences

CONTEXTS = [
    Citation(1, "id1", "/docs/1.md", None, None, None,
             "John F. Kennedy was the 35th president of the United States, elected in 1960."),
    Citation(2, "id2", "/docs/2.md", None, None, None,
             "Roger O. Egeberg was Assistant Secretary for Health; Dr. Egeberg served 1969-1971."),
    Citation(3, "id3", "/docs/3.md", None, None, None,
             "The U.S. Army budget grew 3.5 percent, e.g. for training, said Prof. Miller."),
]


def sentences(text: str) -> list[str]:
    return [p for i, p in enumerate(split_sentences(text)) if i % 2 == 0]


@pytest.mark.parametrize("text, expected", [
    ("John F. Kennedy was president. He was elected in 1960.",
     ["John F. Kennedy was president.", "He was elected in 1960."]),
    ("Dr. Egeberg served. Mr. Smith and Mrs. Jones did not.",
     ["Dr. Egeberg served.", "Mr. Smith and Mrs. Jones did not."]),
    ("The U.S. Army grew. It grew 3.5 percent, e.g. for training.",
     ["The U.S. Army grew.", "It grew 3.5 percent, e.g. for training."]),
    ("Costs rose, e.g. Travel and rent. Prof. Miller said so.",
     ["Costs rose, e.g. Travel and rent.", "Prof. Miller said so."]),
    ("The answer is no. The next one is yes!", ["The answer is no.", "The next one is yes!"]),
])
def test_sentences_do_not_end_at_initials_abbreviations_or_decimals(text, expected):
    assert sentences(text) == expected
    assert "".join(split_sentences(text)) == text  # nothing lost or added


@pytest.mark.parametrize("answer, cited_as", [
    ("John F. Kennedy was the 35th president, elected in 1960.",
     "John F. Kennedy was the 35th president, elected in 1960 [1]."),
    ("Roger O. Egeberg was Assistant Secretary for Health.",
     "Roger O. Egeberg was Assistant Secretary for Health [2]."),
    ("Dr. Egeberg served from 1969 to 1971.", "Dr. Egeberg served from 1969 to 1971 [2]."),
    ("The U.S. Army budget grew 3.5 percent, e.g. for training.",
     "The U.S. Army budget grew 3.5 percent, e.g. for training [3]."),
])
def test_no_citation_mark_lands_inside_a_name_or_abbreviation(answer, cited_as):
    text, _ = resolve_citations(answer, CONTEXTS)
    assert text == cited_as
