"""At most `per_source` of the served chunks from one file, the rest of the top_k from others.

Why: a question that needs two documents (a comparison, a bridge) is often answered by one
long document's chunks filling the whole top_k, because they all share its vocabulary. Capping
a file's share is the simplest form of result diversity; MMR over embeddings would need the
candidates' vectors, which the fused list does not carry, and on these sets the near-duplicates
that MMR removes are the same file's neighbouring chunks.
"""

from __future__ import annotations

from typing import Iterable

from retrievers.records import Hit


def cap_per_source(ranked: Iterable[Hit], top_k: int, per_source: int) -> list[Hit]:
    """The first `top_k` of `ranked` taking at most `per_source` from one file, in rank order;
    when too few files are left, the capped hits fill the remaining places in rank order."""
    ranked = list(ranked)
    if per_source <= 0:
        return ranked[:top_k]
    taken: list[Hit] = []
    skipped: list[Hit] = []
    count: dict[str, int] = {}
    for hit in ranked:
        if len(taken) == top_k:
            break
        source = hit.chunk.source
        if count.get(source, 0) < per_source:
            count[source] = count.get(source, 0) + 1
            taken.append(hit)
        else:
            skipped.append(hit)
    if len(taken) < top_k:
        taken += skipped[: top_k - len(taken)]
    order = {id(h): n for n, h in enumerate(ranked)}
    return sorted(taken, key=lambda h: order[id(h)])
