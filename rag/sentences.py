"""Where an answer's sentences end, so a citation mark lands after a whole sentence.

A period followed by a space and a capital is not always a sentence end: "John F. Kennedy",
"Dr. Smith", "the U.S. Army", "e.g. Paris" and "No. 5" are one sentence each. Splitting there
put marks inside names ("John F [1]. Kennedy [1].").

Why not a library: pysbd (rule-based, accurate on these cases) costs ~9 ms per kilobyte, and the
streaming citation resolver re-splits the growing answer after every token (about a second
added to each streamed answer); it has also had no release since 2021. nltk's punkt needs a
data download that offline machines cannot make. The rules below are the subset of pysbd's
that answers need: candidate ends (".", "!" or "?" then space then a capital, digit or quote,
or a new list item), minus ends that follow an initial, an abbreviation or a dotted acronym.
Decimals ("3.5") never qualify: no space follows their period.
"""

from __future__ import annotations

import re

# Candidate boundaries: after end punctuation (and any closing quote/bracket/citation mark) and
# before a capital, digit, quote or bracket; or a new line that starts a list item.
CANDIDATE = re.compile(
    r"((?<=[.!?])\s+(?=[A-Z0-9\"'(“‘])|\s*\n\s*(?=(?:\d{1,2}[.)]|[-*\u2022])\s))")
LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*\u2022])$")

# Abbreviations that end in a period but rarely end a sentence (lowercase, without the period).
# Words that also end sentences as plain words ("no", "sec", "mar") are left out.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx dept fig figs vol vols eq eqs "
    "lt sgt capt gov sen rev hon inc ltd corp jan feb apr jun jul aug sept oct nov dec u.s u.k "
    "u.n a.m p.m ph.d".split()
)
# The word a sentence ends with, when it ends in a period: "F.", "Dr.", "U.S.", "e.g.".
_LAST_WORD = re.compile(r"(?:^|[\s(\[“\"'])([A-Za-z][A-Za-z.]*)\.$")


def ends_sentence(text: str) -> bool:
    """False when `text` ends with an initial ("F."), a known abbreviation ("Dr.", "e.g.") or a
    dotted acronym ("U.S."): the period does not close a sentence there."""
    match = _LAST_WORD.search(text.rstrip())
    if not match:
        return True
    word = match.group(1)
    if len(word) == 1 and word.isupper():
        return False  # an initial
    if word.lower() in ABBREVIATIONS:
        return False
    return not re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word)  # "U.S", "e.g" spelled oddly


def split_sentences(text: str) -> list[str]:
    """Sentences and list items, alternating with the separators between them (kept as is), so
    that `"".join(split_sentences(t)) == t`.

    A bare list marker ("1.") is not a sentence: it is joined to the item after it; neither is a
    piece that ends with an initial or an abbreviation: it is joined to the next.
    """
    parts = CANDIDATE.split(text)
    merged = [parts[0]]
    for i in range(1, len(parts), 2):
        separator, following = parts[i], parts[i + 1]
        list_item = "\n" in separator
        if LIST_MARKER.match(merged[-1]) or (not list_item and not ends_sentence(merged[-1])):
            merged[-1] += separator + following
        else:
            merged += [separator, following]
    return merged
