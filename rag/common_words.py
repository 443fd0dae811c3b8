"""Which words English writing uses often: a name check for questions whose capitals mark no names.

A question typed in lower case, in Title Case or in capitals has no capitals to tell its names
by (`retrievers.names.casing_says_nothing`), so "what does graham think of tiktok?" got no name
check and was answered from neighbouring facts. A word that English rarely uses ("tiktok",
"firedancer", "vicuna") is there what a capital says elsewhere: something named. Two word lists
that are installed anyway decide what is common: the packaged embedding model's WordPiece
vocabulary (whole words only; it knows British spellings and much of the web's vocabulary) and
pyspellchecker's English frequency list (a well-kept MIT package; a word counted more than 50
times there is common). A word is rare when neither knows it as common, in its own spelling or,
for a British one, the American ("summarises": "summarizes").
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

# pyspellchecker's list counts every word it holds at least 50 times; names and rare words sit
# at that floor, so only a count above it says common.
COMMON_COUNT = 50


@lru_cache(maxsize=1)
def _spelling_counts() -> dict[str, int]:
    """pyspellchecker's English word counts ({} when the package is missing)."""
    try:
        data = resources.files("spellchecker").joinpath("resources/en.json.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        log.warning("pyspellchecker's English word list is missing (%s): rare words go unchecked", exc)
        return {}
    return json.loads(gzip.decompress(data))


@lru_cache(maxsize=4)
def _wordpiece_words(vocab: str) -> frozenset[str]:
    """The whole words (not "##" pieces, not "[unused]" slots) of a WordPiece vocab.txt."""
    try:
        lines = Path(vocab).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        log.warning("%s: cannot read the WordPiece vocabulary (%s)", vocab, exc)
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower())


def packaged_vocabulary() -> str | None:
    """The packaged embedding model's vocab.txt, or None when it is not installed."""
    try:
        from rag.models.embedding import PACKAGED, resolve_embedding_model

        path = Path(resolve_embedding_model(PACKAGED)) / "vocab.txt"
    except Exception:  # noqa: BLE001 - a missing model only means one word list fewer
        return None
    return str(path) if path.is_file() else None


# British spellings the American word list spells otherwise ("summarises", "flavour", "centre",
# "analyse"): a word is common when its American spelling is.
AMERICAN = ((re.compile(r"is(e|ed|es|ing|ation|ations|er|ers)$"), r"iz\1"),
            (re.compile(r"our(s|ed|ing|ite|ites|able)?$"), r"or\1"),
            (re.compile(r"tre(s)?$"), r"ter\1"),
            (re.compile(r"ys(e|ed|es|ing)$"), r"yz\1"))


def spellings(word: str) -> list[str]:
    """`word` and its American spelling where it has a British one."""
    return list(dict.fromkeys([word, *(pattern.sub(repl, word) for pattern, repl in AMERICAN)]))


class CommonWords:
    """`rare(words)`: the words neither list knows as common, each once, in order."""

    def __init__(self, vocab: str | None = None):
        self._vocab = vocab if vocab is not None else packaged_vocabulary()

    def known(self) -> bool:
        """Whether any word list could be read (with none, no word is called rare)."""
        return bool(_spelling_counts()) or bool(self._vocab and _wordpiece_words(self._vocab))

    def rare(self, words: Iterable[str]) -> list[str]:
        if not self.known():
            return []
        counts = _spelling_counts()
        pieces = _wordpiece_words(self._vocab) if self._vocab else frozenset()
        out = []
        for word in words:
            if not any(w in pieces or counts.get(w, 0) > COMMON_COUNT
                       for w in spellings(word.lower())):
                out.append(word)
        return list(dict.fromkeys(out))
