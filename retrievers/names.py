"""The names a question asks about, and whether a text or a file name holds them.

Shared by retrieval (the hybrid retriever keeps every name of the question that the candidates
hold in the contexts it serves) and by declining (rag/grounding.py: a question whose name no
served context holds asks about something the sources do not cover). Terms are the BM25
tokenizer's (lowercase, stemmed), so the two sides agree on what "holds a name" means.
"""

from __future__ import annotations

import re
from typing import Iterable

from retrievers.text import STOP_WORDS, fold_accents, source_name_terms, tokenize

# Words that frame a question rather than name its subject ("according to the author, ...").
FRAMING = frozenset(tokenize(
    "according author authors essay essays article document documents text passage source "
    "sources mention mentioned mentions describe described explain explained discuss discussed "
    "say says said tell told guide manual write wrote written think thinks view views opinion "
    "suggest suggests suggested example examples reason reasons way ways kind kinds thing things "
    "main key important role purpose mean meaning happen happens happened give given provide "
    "provided use used make makes made get got one two also like much many"
))

POSSESSIVE = re.compile(r"(?<=\w)['’][sS]\b")
WORD = re.compile(r"[\w'’-]+")
# Where a sentence ends: the casing of each sentence is read on its own ("I read the essay. What
# Does He Say About Startups?" is a sentence of prose, then a Title Case question).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# The words a title leaves in lower case; any other lower-case word ("is" in "Where is The
# Hague?") says the capitals around it are names.
TITLE_SMALL_WORDS = frozenset(
    "a an the and or but nor of in on at to by for as vs via per off up out from into with over".split())
QUOTED = re.compile(r'"[^"]*"|“[^”]*”')  # a quoted title's "?" ends no sentence


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


def casing_says_nothing(text: str) -> bool:
    """Whether `text` is written in capitals or in Title Case, where a capital letter marks
    every word rather than a name: "WHAT IS THE CAPITAL OF FRANCE?", "What Did Paul Graham Work
    On Before College?". Title Case is told from names by its capitalised stop words ("Did",
    "On") with no lower-case word beside them but those a title leaves in lower case ("of",
    "in"), so a title inside a sentence ("the Attention Is All You Need paper"), a question of
    names ("What is Proof of History in Solana?") and "Where is The Hague?" keep their names."""
    words = [w for w in WORD.findall(text) if w[0].isalpha()]
    if len(words) < 3:
        return False
    if all(w.isupper() for w in words if len(w) > 1):
        return True
    later = words[1:]
    capital_stop = any(w[0].isupper() and w.lower() in STOP_WORDS for w in later)
    return capital_stop and all(w.lower() in TITLE_SMALL_WORDS for w in later if w[0].islower())


def capitals_mark_names_at(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, whether capitals mark names there) for each sentence of `text`: a sentence
    in capitals or Title Case (`casing_says_nothing`) marks none, whatever the others do."""
    quoted = [m.span() for m in QUOTED.finditer(text)]
    starts = [0, *(m.end() for m in SENTENCE_END.finditer(text)
                   if not any(a < m.start() < b for a, b in quoted))]
    ends = [*starts[1:], len(text)]
    return [(start, end, not casing_says_nothing(text[start:end])) for start, end in zip(starts, ends)]


def _marks_names(casing: list[tuple[int, int, bool]], position: int) -> bool:
    """Whether capitals mark names at `position`, by `capitals_mark_names_at`."""
    return next((marks for start, end, marks in casing if start <= position < end), True)


def _name_matches(text: str, casing: list[tuple[int, int, bool]] | None = None
                  ) -> list[re.Match[str]]:
    """The words of `text` (possessives already dropped) that `name_words` counts as names.
    In a sentence where capitals say nothing (`capitals_mark_names_at`, read unless the caller
    already has) only words with digits do, as in the same question written in lower case."""
    matches = []
    if casing is None:
        casing = capitals_mark_names_at(text)
    for match in WORD.finditer(text):
        word = match.group(0)
        before = text[: match.start()].rstrip()
        opens = not before or before[-1] in ".!?:\"'(“"
        capitalised = (word[0].isupper() and not opens and not word.isupper()
                       and _marks_names(casing, match.start()))
        if capitalised or any(ch.isdigit() for ch in word):
            matches.append(match)
    return matches


def unmarked_words(text: str) -> list[str]:
    """The words of `text` in its sentences whose capitals mark no names: in capitals or Title
    Case (`casing_says_nothing`), or with no capital letter after the sentence's first word
    ("what does graham think of tiktok?"). Letters only, three or more, possessives dropped,
    each once, in order: where a name could hide without a capital to show it."""
    text = POSSESSIVE.sub("", text)
    words: list[str] = []
    for start, end, marks in capitals_mark_names_at(text):
        sentence = WORD.findall(text[start:end])
        if marks and any(w[0].isupper() for w in sentence[1:]):
            continue  # capitals there mark names: `name_words` reads them
        words.extend(w for w in sentence if w.isalpha() and len(w) >= 3)
    return list(dict.fromkeys(words))


def name_words(text: str) -> list[str]:
    """Names and numbers in `text` as written: capitalised words not opening a sentence, and
    words with digits, each once, in order. A possessive is not part of the name."""
    return list(dict.fromkeys(m.group(0) for m in _name_matches(POSSESSIVE.sub("", text))))


def whole_names(text: str) -> list[str]:
    """Names that only count whole, as written, each once, in order: runs of adjacent
    `name_words` (only spaces between them), with the all-capital words beside them ("Progressive
    Labour Party", "TPU v4"), and single name words the tokenizer splits into several terms
    ("MT-Bench", "GPT-4"). Why: each part of such a name is often a common word or number
    ("party", "bench", "v4") that a corpus holds without ever naming the thing
    (`decline_names_in_corpus`)."""
    text = POSSESSIVE.sub("", text)
    casing = capitals_mark_names_at(text)  # in capitals no word is an acronym
    named = {m.start() for m in _name_matches(text, casing)}
    runs: list[list[re.Match[str]]] = []
    joinable = False  # whether the next name or capitals word extends the last run
    for match in WORD.finditer(text):
        word = match.group(0)
        acronym = len(word) > 1 and word.isupper() and _marks_names(casing, match.start())
        if match.start() not in named and not acronym:
            joinable = False
            continue
        if joinable and not text[runs[-1][-1].end(): match.start()].strip(" "):
            runs[-1].append(match)
        else:
            runs.append([match])
        joinable = True
    names = []
    for run in runs:
        if not any(m.start() in named for m in run):
            continue  # capitals alone ("NASA") are not names to the check
        name = " ".join(m.group(0) for m in run)
        if len(run) > 1 or len([t for t in tokenize(name) if t not in FRAMING]) > 1:
            names.append(name)
    return list(dict.fromkeys(names))


def named_terms(question: str) -> list[str]:
    """Stemmed names and numbers in a question (`name_words`, tokenised). A question about
    "Tokyo" over contexts that never say "Tokyo" asks about something the sources do not
    cover, however close the rest of the wording is. "Megatron-LM's" names megatron and lm,
    not "lms"."""
    names = []
    for word in name_words(question):
        names.extend(t for t in tokenize(word) if t not in FRAMING)
    return list(dict.fromkeys(names))
