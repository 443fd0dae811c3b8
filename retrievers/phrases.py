"""Phrases a question quotes, and the fused candidates that hold them.

A question that quotes a phrase ('In "Cities and Ambition", which city ...', 'according to the
source "Ethereum VS EOS"') says which passage or document it is about more exactly than either
retriever reads it: BM25 scores the phrase's words one by one, and a small embedding model
blurs a title into the rest of a long question. So a candidate whose text holds a quoted phrase
word for word is raised by `chunk_boost` on the fused (z-score) scale, and a candidate of a
document holding it elsewhere (an essay whose title line holds it) by `document_boost`.
Chunks holding the phrase that neither retriever ranked among the candidates join them, found
by a keyword search for the phrase itself; any `KeywordIndex` can answer that, so no backend
needs a phrase index. The boosts were chosen by leave-one-dataset-out (README "Choosing quality
settings", rule 17).

Matching is on folded text (lowercase, curly quotes straightened, whitespace collapsed, a PDF
breaking a title's line, Latin accents dropped as the BM25 tokenizer drops them: "Aschenbrodel"
quoted finds "Aschenbrödel"), on word boundaries, with the phrase's trailing punctuation dropped.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Iterable, Mapping

from retrievers.fusion import Fused
from retrievers.records import Chunk
from retrievers.text import fold_accents, source_title

# A phrase the question quotes: straight or curly double quotes, two words or more.
_QUOTED = re.compile(r'"([^"]{3,200})"|\u201c([^\u201d]{3,200})\u201d')

PHRASE_STAGE = "phrase"  # the name a boosted hit's score is kept under in `Hit.scores`


def quoted_phrases(question: str) -> list[str]:
    """The phrases of two words or more the question puts in double quotes (a title, most
    often: 'In "Keep Your Identity Small", ...')."""
    found = (a or b for a, b in _QUOTED.findall(question))
    return [p for p in (" ".join(f.split()) for f in found) if len(p.split()) >= 2]


def folded(text: str) -> str:
    """Lowercase, curly quotes straightened, whitespace folded (a PDF breaks a title's line),
    Latin accents dropped (a question typed on an English keyboard drops them)."""
    text = fold_accents(text.lower().replace("\u2019", "'").replace("\u2018", "'"))
    return " ".join(text.split())


def phrase_patterns(phrases: Iterable[str]) -> list[re.Pattern[str]]:
    """One pattern per phrase, matching folded text on word boundaries ("Great Hackers" is not
    in "great hackersX"), the phrase's trailing punctuation dropped ("Great Hackers." quoted)."""
    return [re.compile(r"(?<!\w)" + re.escape(folded(p).rstrip(".,;:!?")) + r"(?!\w)")
            for p in phrases]


def holds_phrase(text: str, patterns: list[re.Pattern[str]]) -> bool:
    text = folded(text)
    return any(p.search(text) for p in patterns)


def boost_quoted(fused: list[Fused], holding: set[str], sources: Mapping[str, str],
                 chunk_boost: float, document_boost: float) -> list[Fused]:
    """`fused` with the chunks in `holding` (ids of chunks holding a quoted phrase) raised by
    `chunk_boost` and the chunks of their documents (`sources`: chunk id -> source, for every
    candidate and every holding chunk) by `document_boost`, re-sorted. Holding chunks missing
    from `fused` join it at its lowest score first."""
    if not holding or (chunk_boost == 0 and document_boost == 0):
        return fused
    floor = min((f.score for f in fused), default=0.0)
    present = {f.chunk_id for f in fused}
    fused = fused + [Fused(cid, floor) for cid in sorted(holding - present)]
    documents = {sources[cid] for cid in holding if cid in sources}
    # A holder's rank among the holders (in fused order) is kept with the retrievers' ranks, so
    # `rag retrieve` and the UI's source cards say why it was served.
    holder_rank = {cid: n for n, cid in enumerate((f.chunk_id for f in fused if f.chunk_id in holding), 1)}
    out = []
    for f in fused:
        boost = (chunk_boost if f.chunk_id in holding else 0.0) + \
                (document_boost if sources.get(f.chunk_id) in documents else 0.0)
        if not boost:
            out.append(f)
            continue
        ranks = {**f.ranks, PHRASE_STAGE: holder_rank[f.chunk_id]} if f.chunk_id in holder_rank else f.ranks
        out.append(replace(f, score=f.score + boost, ranks=ranks, scores={**f.scores, PHRASE_STAGE: boost}))
    return sorted(out, key=lambda f: -f.score)


def chunks_holding(phrases: list[str], search: Callable[[str], Iterable[str]],
                   text_of: Callable[[list[str]], Mapping[str, str]]) -> set[str]:
    """Ids of the chunks holding one of `phrases`: a keyword search for each phrase (`search`:
    phrase -> chunk ids, best first) checked against the chunks' text (`text_of`)."""
    patterns = phrase_patterns(phrases)
    found: set[str] = set()
    for phrase, pattern in zip(phrases, patterns):
        ids = list(dict.fromkeys(search(phrase)))
        texts = text_of(ids)
        found.update(cid for cid in ids if cid in texts and holds_phrase(texts[cid], [pattern]))
    return found


def phrases_held(phrases: Iterable[str], search: Callable[[str], Iterable[str]],
                 chunks: Callable[[list[str]], Mapping[str, Chunk]]) -> set[str]:
    """Which of `phrases` some chunk holds word for word, in its text or its file's name (a
    paragraph file named "Meet Me in St. Louis.txt" names the film its text calls "the film"):
    a keyword search for each phrase (`search`: phrase -> chunk ids, best first), its hits'
    text checked (`chunks`: ids -> Chunk)."""
    def text_of(ids: list[str]) -> dict[str, str]:
        return {cid: f"{chunk.text}\n{source_title(chunk.source)}" for cid, chunk in chunks(ids).items()}

    return {phrase for phrase in dict.fromkeys(phrases) if chunks_holding([phrase], search, text_of)}

