"""BM25 tokenisation: lowercase, strip punctuation, drop English stop words, Snowball-stem.

Stemming uses PyStemmer (the C Snowball stemmers); the stop list is the classic English list
used by scikit-learn and Lucene, inlined so the sparse side needs no NLTK download. An acronym's
plural is read as the acronym first ("LLMs" -> llm, "VCs" -> vc, "GPUs" -> gpu): Snowball English
leaves a word without a vowel, or ending in "-us", as it is, so "VC" and "VCs" were two terms to
BM25 and two names to the decline check ("CNN-based" in a question, "CNNs" in the paper). And a
Latin letter's accents are dropped ("Aschenbrödel" -> aschenbrodel, "Tekezé" -> tekez): a question
typed without them named nothing the corpus held (README "Choosing quality settings", rule 29);
other scripts keep theirs.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import PurePath

import Stemmer

# Bump when tokenize() changes: BM25 snapshots made with another version are rebuilt, and a
# catalog's stored terms are derived again from its texts (retrievers.catalog.TOKENIZER_KEY).
TOKENIZER_VERSION = "3:snowball-english:pystemmer3:acronym-plurals:latin-accents-folded"

# An uppercase run of two or more letters or digits, then a lowercase plural "s": "LLMs",
# "RTX3090s". Not "Ms", "As" (one capital), nor "BUS" (the s is part of the word).
ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Z0-9]+)s\b")

# Combining accents after a Latin letter, once the text is decomposed (NFKD): "é" is "e" + U+0301.
LATIN_ACCENTS = re.compile(r"(?<=[A-Za-z])[\u0300-\u036f]+")

TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can cannot could couldn't did didn't do does doesn't doing don't
    down during each few for from further had hadn't has hasn't have haven't having he he'd he'll
    he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is
    isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only or
    other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't
    so some such than that that's the their theirs them themselves then there there's these they
    they'd they'll they're they've this those through to too under until up very was wasn't we we'd
    we'll we're we've were weren't what what's when when's where where's which while who who's whom
    why why's with won't would wouldn't you you'd you'll you're you've your yours yourself
    yourselves s t d ll m o re ve y""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> "Stemmer.Stemmer":
    stemmer = Stemmer.Stemmer("english")
    stemmer.maxCacheSize = 100_000
    return stemmer


def fold_accents(text: str) -> str:
    """`text` with the accents of Latin letters dropped ("Akinoshū" -> "Akinoshu") and
    compatibility forms spelled out ("ﬁ" -> "fi"); other scripts' marks are kept (NFC again)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", LATIN_ACCENTS.sub("", unicodedata.normalize("NFKD", text)))


def tokenize(text: str) -> list[str]:
    """Terms for BM25, in order (duplicates kept: BM25 counts them)."""
    text = fold_accents(ACRONYM_PLURAL.sub(r"\1", text))
    words = [
        w.replace("'", "") for w in TOKEN.findall(text.lower().replace("\u2019", "'"))
        if w not in STOP_WORDS
    ]
    return _stemmer().stemWords(words)


def source_title(source: str) -> str:
    """A file's name as words, without folders or suffix: "papers/RoBERTa_v2.pdf" -> "RoBERTa v2"."""
    stem = PurePath(str(source).replace("\\", "/")).stem if source else ""
    return re.sub(r"[_.+-]", " ", stem).strip()


@lru_cache(maxsize=4096)
def source_name_terms(source: str) -> tuple[str, ...]:
    """BM25 terms of a source's file name, without its folders and extension ("roberta.pdf" ->
    "roberta"; `_`, `-` and `.` separate words). Why: a chunk seldom repeats the name of the
    paper or manual it comes from, yet questions ask by that name; llama-index's BM25Retriever
    reads each node's metadata (its file path) with the text for the same reason."""
    return tuple(tokenize(source_title(source)))
