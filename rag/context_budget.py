"""The model reads the sentences that answer, not whole chunks: a prompt budget for passages.

On 2 CPU cores the packaged 0.5B model reads a prompt at ~160 tokens/s, so five 254-token
chunks (~1,600 prompt tokens) cost ~10 s before the first word. The reference evidence of a
question is one or two sentences, so each retrieved chunk is cut down to its sentences that
share the most (rare) terms with the question, plus their neighbours while the budget lasts.
The contexts themselves (citations, the support check, what the user sees) stay whole.

Scoring is lexical on the BM25 tokenizer's stemmed terms (IDF over the candidate sentences,
a small bonus for better-ranked chunks): it costs well under a millisecond, where embedding
each sentence would add about a third of a second on 2 cores. Hand-written because no
library here picks sentences to a token budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from rag.grounding import content_terms
from retrievers.text import tokenize

# Sentence ends, and paragraph breaks (titles, list items and headings end without a stop).
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n\s*\n\s*|\s*\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)")
GAP = " ... "
RANK_DECAY = 0.1  # a sentence of the n-th chunk scores (1 - 0.1 n) of the same one in the first


@dataclass
class _Sentence:
    chunk: int
    index: int
    text: str
    tokens: int
    score: float = 0.0
    broken: bool = False  # a line break comes before it in the chunk (a title, a new paragraph)


def split_sentences(text: str) -> list[str]:
    """Sentences (and paragraph-separated lines) of `text`, stripped, empty ones dropped."""
    return [sentence for sentence, _ in _sentences_and_breaks(text)]


def distinct_sentences(texts: Sequence[str]) -> list[str]:
    """The sentences of all `texts` in order, each once (neighbouring chunks can overlap): what
    the decline gate's cross-encoder reads one by one (`evidence+rerank+sentences`)."""
    return list(dict.fromkeys(s for text in texts for s in split_sentences(text)))


def _sentences_and_breaks(text: str) -> list[tuple[str, bool]]:
    """(sentence, whether a line break comes before it) for each of `split_sentences`."""
    out: list[tuple[str, bool]] = []
    start, broken = 0, False
    for match in (*SENTENCE_END.finditer(text), None):
        end = match.start() if match else len(text)
        if piece := text[start:end].strip():
            out.append((piece, broken))
            broken = False
        if match:
            start, broken = match.end(), broken or "\n" in match.group()
    return out


def extract_passages(question: str, texts: Sequence[str], budget_tokens: int,
                     count_tokens: Callable[[str], int]) -> list[str]:
    """For each text (best-ranked first), the part the model is shown ("" = leave it out).

    Sentences are taken best first (question terms weighted by rarity among the candidate
    sentences) until `budget_tokens` is spent; the budget left then goes to the sentences right
    after and before the chosen ones (an answer often runs over two sentences). Chosen
    sentences keep their order; a gap between them is marked with " ... ".
    """
    sentences = [_Sentence(c, i, s, 0, broken=broken) for c, text in enumerate(texts)
                 for i, (s, broken) in enumerate(_sentences_and_breaks(text))]
    if not sentences:
        return ["" for _ in texts]
    terms = content_terms(question)
    bags = [set(tokenize(s.text)) for s in sentences]
    n = len(sentences)
    idf = {t: math.log(1 + n / (1 + sum(t in bag for bag in bags))) for t in terms}
    for s, bag in zip(sentences, bags):
        s.score = sum(idf[t] for t in terms if t in bag) * (1 - RANK_DECAY * min(s.chunk, 5))
    by_key = {(s.chunk, s.index): s for s in sentences}
    chosen: set[tuple[int, int]] = set()
    used = 0

    def take(s: _Sentence) -> bool:
        nonlocal used
        if (s.chunk, s.index) in chosen:
            return False
        s.tokens = s.tokens or count_tokens(s.text) + 1
        if used + s.tokens > budget_tokens:
            return False
        chosen.add((s.chunk, s.index))
        used += s.tokens
        return True

    ranked = sorted((s for s in sentences if s.score > 0), key=lambda s: (-s.score, s.chunk, s.index))
    picked = [s for s in ranked if take(s)]
    if not picked:  # nothing shares a term with the question: the best chunk's opening
        picked = [s for s in sentences if s.chunk == 0 and take(s)]
    for step in (1, -1):  # then neighbours: the sentence after each chosen one, then before
        for s in list(picked):
            neighbour = by_key.get((s.chunk, s.index + step))
            if neighbour is not None:
                take(neighbour)
    shown: list[str] = []
    for c in range(len(texts)):
        kept = sorted(i for chunk, i in chosen if chunk == c)
        # Kept sentences joined as the chunk had them: a title or a new paragraph stays on its
        # own line (joined by spaces, "Defining Property March 2012 As a child ..." read to
        # the 0.5B model as one sentence whose subject was the essay's title).
        pieces: list[str] = []
        for j, i in enumerate(kept):
            sentence = by_key[(c, i)]
            if j and i != kept[j - 1] + 1:
                pieces.append(GAP)
            elif j:
                pieces.append("\n" if sentence.broken else " ")
            pieces.append(sentence.text)
        shown.append("".join(pieces))
    return shown
