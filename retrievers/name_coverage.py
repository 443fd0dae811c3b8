"""Serve a context for every name the question asks about, when the candidates hold one.

Why: fusion ranks by overall similarity, and a question that names two things ("How does
RoBERTa compare to BERT on GLUE?", "Which came first, X or Y?") often gets a top-k filled by
the more common one; the rarer name's chunks sit at BM25 rank 1-3 but below the cut once the
dense side has its say. The model then cannot answer, and the decline check (rag/grounding.py)
rightly refuses: "no source mentions roberta". On ARAGOG that was one answerable question
declined in 98. Keeping one carrier of each name in the served set is the "entity expansion"
step of multi-hop retrieval, without a second search: the candidates of the first one
(`candidate_k` per retriever) already hold the name when the corpus does.

Names are `named_terms` (capitalised words not opening a sentence, words with digits), held
by a chunk when its text or its file name holds the term, as the decline check counts them. A
name no candidate holds changes nothing, so a question about something the corpus lacks is
still declined. At most `max_swaps` of the served hits give way, from the bottom.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from retrievers.names import named_terms, names_held_by
from retrievers.records import Hit


def names_held(hit: Hit, names: Iterable[str]) -> set[str]:
    """Which of `names` the hit's text or file name holds."""
    return names_held_by(hit.chunk.text, hit.chunk.source, names)


def cover_names(question: str, served: list[Hit], pool: Iterator[Hit],
                max_swaps: int) -> list[Hit]:
    """`served`, with its lowest hits replaced by the best-ranked hits of `pool` (the rest of
    the candidates, in rank order) that hold a name of `question` no served hit holds."""
    names = named_terms(question)
    if not names or not served or max_swaps <= 0:
        return served
    held = [names_held(h, names) for h in served]
    missing = [n for n in names if not any(n in s for s in held)]
    if not missing:
        return served
    served_ids = {h.chunk.chunk_id for h in served}
    promoted: list[tuple[Hit, set[str]]] = []
    for hit in pool:
        if not missing or len(promoted) == max_swaps:
            break
        if hit.chunk.chunk_id in served_ids:
            continue
        found = names_held(hit, missing)
        if found:
            promoted.append((hit, found))
            missing = [n for n in missing if n not in found]
    if not promoted:
        return served
    keep = list(range(len(served)))
    for _ in promoted:  # drop from the bottom, never the last carrier of a name
        for i in reversed(keep[1:]):
            others = set().union(*(held[j] for j in keep if j != i), *(f for _, f in promoted))
            if held[i] <= others:
                keep.remove(i)
                break
    if len(keep) + len(promoted) > len(served):
        promoted = promoted[: len(served) - len(keep)]
    return [served[i] for i in keep] + [h for h, _ in promoted]
