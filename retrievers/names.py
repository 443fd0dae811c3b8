"""The names a question asks about, and whether a text or a file name holds them.

Shared by retrieval (the hybrid retriever keeps every name of the question that the candidates
hold in the contexts it serves) and by declining (rag/grounding.py: a question whose name no
served context holds asks about something the sources do not cover). Terms are the BM25
tokenizer's (lowercase, stemmed), so the two sides agree on what "holds a name" means.
"""

from __future__ import annotations

import re
from typing import Iterable

from retrievers.text import fold_accents, source_name_terms, tokenize

# Words that frame a question rather than name its subject ("according to the author, ...").
FRAMING = frozenset(tokenize(
    "according author authors essay essays article document documents text passage source "
    "sources mention mentioned mentions describe described explain explained discuss discussed "
    "say says said tell told guide manual write wrote written think thinks view views opinion "
    "suggest suggests suggested example examples reason reasons way ways kind kinds thing things "
    "main key important role purpose mean meaning happen happens happened give given provide "
    "provided use used make makes made get got one two also like much many"
))

POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")


def source_terms(sources: Iterable[str]) -> set[str]:
    """Terms of the file names (without folders or suffix): "papers/RoBERTa_v2.pdf" -> roberta, v2."""
    terms: set[str] = set()
    for source in sources:
        terms.update(source_name_terms(str(source)))
    return terms


def names_held_by(text: str, source: str, names: Iterable[str]) -> set[str]:
    """Which of `names` (stemmed terms) a context holds: its text or its file's name."""
    names = set(names)
    if not names:
        return set()
    # A stem shares its word's first letters once accents and apostrophes go as the tokenizer
    # drops them ("Åland" -> aland, "O'Brien" -> obrien); tokenising (stemming) a text is the
    # slow part, so only texts that might hold a name are tokenised.
    lowered = fold_accents(text).lower().replace("'", "").replace("\u2019", "")
    maybe = {n for n in names if n[:4] in lowered}
    held = maybe & set(tokenize(text)) if maybe else set()
    return held | (names & source_terms([source]))


def name_words(text: str) -> list[str]:
    """Names and numbers in `text` as written: capitalised words not opening a sentence, and
    words with digits, each once, in order. A possessive is not part of the name."""
    words = []
    text = POSSESSIVE.sub("", text)
    for match in re.finditer(r"[\w'’-]+", text):
        word = match.group(0)
        before = text[: match.start()].rstrip()
        opens = not before or before[-1] in ".!?:\"'(“"
        if (word[0].isupper() and not opens and not word.isupper()) or any(ch.isdigit() for ch in word):
            words.append(word)
    return list(dict.fromkeys(words))


def named_terms(question: str) -> list[str]:
    """Stemmed names and numbers in a question (`name_words`, tokenised). A question about
    "Tokyo" over contexts that never say "Tokyo" asks about something the sources do not
    cover, however close the rest of the wording is. "Megatron-LM's" names megatron and lm,
    not "lms"."""
    names = []
    for word in name_words(question):
        names.extend(t for t in tokenize(word) if t not in FRAMING)
    return list(dict.fromkeys(names))
