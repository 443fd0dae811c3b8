"""A second retrieval round for questions that need two documents, seeded by the first.

Why: the second half of a multi-hop question is a bridge fact the question does not name.
"RTML was named after one of Graham's cofounders: when was that person wrong?" finds the RTML
chunk ("... which in fact I named after Rtm."), but the chunk about Rtm shares no name with the
question, so neither BM25 nor the dense side ranks it. The names of the first round's best
sentence that the question lacks ("Rtm") are the bridge: searching again with the question and
those names finds the chunks about it, and the best of them takes the lowest served place.

Seeds are the top served hits; a seed's best sentence is the one sharing most terms with the
question. Sentences are split at ". ", "! " and "? " only: a chunk's sentence just has to
hold the names next to the question's words, and a split after an initial costs nothing here
(rag/sentences.py is the careful splitter, for answers). A bridge hit must hold a bridge name,
so a second round that drifted returns nothing. A bridge hit keeps its second-round scores
(against the question plus the names), which is what the decline checks then read for it.

With a cross-encoder (`rerank`), a bridge hit takes the lowest served place only if the
cross-encoder scores it above the hit it would replace: ungated, the bridge hit displaced a
relevant fifth hit of single-hop questions (README "Choosing quality settings", rule 19).
With `append`, bridge hits are served after the top-k instead of in place of its lowest hits,
so a question that needed no bridge loses nothing (rule 38).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

from retrievers.name_coverage import names_held
from retrievers.names import name_words
from retrievers.records import Hit
from retrievers.text import tokenize

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def bridge_names(question: str, seed: Hit) -> list[str]:
    """Names (as written) in the seed's sentence closest to the question, that the question
    lacks; [] when no sentence shares a term with it."""
    asked = set(tokenize(question))
    best, overlap = "", 0
    for sentence in SENTENCE_END.split(seed.chunk.text):
        shared = len(asked & set(tokenize(sentence)))
        if shared > overlap:
            best, overlap = sentence, shared
    return [w for w in name_words(best) if not set(tokenize(w)) <= asked]


def bridge_round(question: str, served: list[Hit], search: Callable[[str], list[Hit]],
                 seeds: int, slots: int, new_source: bool = False,
                 rerank: Callable[[list[Hit]], list[Hit]] | None = None,
                 append: bool = False) -> list[Hit]:
    """`served` with up to `slots` of its lowest hits replaced by bridge hits (with `append`:
    followed by them): for each of the top `seeds` hits, the best hit of `search(question +
    its bridge names)` that is not served and holds one of those names (and, with
    `new_source`, comes from a file no served hit comes from: the second document). With
    `rerank` (the cross-encoder that ordered `served`, setting `scores["rerank"]`), a bridge
    hit must outscore the served hit it replaces (appended: the lowest served hit)."""
    if seeds <= 0 or slots <= 0 or len(served) < (1 if append else 2):
        return served
    if not append:
        slots = min(slots, len(served) - 1)  # the top hit always stays
    served_ids = {h.chunk.chunk_id for h in served}
    sources = {h.chunk.source for h in served}
    found: list[Hit] = []
    for seed in served[:seeds]:
        if len(found) == slots:
            break
        words = bridge_names(question, seed)
        stems = list(dict.fromkeys(t for w in words for t in tokenize(w)))
        if not stems:
            continue
        for hit in search(f"{question} {' '.join(words)}"):
            if new_source and hit.chunk.source in sources:
                continue
            if hit.chunk.chunk_id not in served_ids and names_held(hit, stems):
                found.append(hit)
                served_ids.add(hit.chunk.chunk_id)
                break
    if not found:
        return served
    if append:
        return served + (found if rerank is None else outscoring_lowest(served[-1], rerank(found)))
    if rerank is None:
        return served[: len(served) - len(found)] + found
    return outscoring(served, found, rerank(found))


def outscoring_lowest(lowest: Hit, reranked: list[Hit]) -> list[Hit]:
    """The bridge hits (`reranked`: rescored by the cross-encoder, best first) that it scores
    above the lowest served hit; all of them when that hit has no cross-encoder score."""
    low = lowest.scores.get("rerank")
    return [hit for hit in reranked if low is None or hit.scores["rerank"] > low]


def outscoring(served: list[Hit], found: list[Hit], reranked: list[Hit]) -> list[Hit]:
    """`served` with its lowest places taken, from the bottom up, by the bridge hits whose
    cross-encoder score (`reranked`: `found` rescored) beats the served hit in that place; a
    bridge hit keeps its own fused score and ranks, and carries the cross-encoder's score."""
    score = {h.chunk.chunk_id: h.scores["rerank"] for h in reranked}
    out, place = list(served), len(served) - 1
    for hit in sorted(found, key=lambda h: -score[h.chunk.chunk_id]):
        ce, low = score[hit.chunk.chunk_id], out[place].scores.get("rerank")
        if low is None or ce <= low or place == 0:
            break
        out[place] = replace(hit, scores={**hit.scores, "rerank": ce})
        place -= 1
    return out
