"""Ranking metrics against reference contexts: hit rate, Recall@k, MRR@k, nDCG@k.

Relevance comes from text, not ids: a retrieved chunk is relevant to a reference context when
`is_hit` says so (the rule `benchmarks/retrieval_quality.py` uses, so figures match it). That is
why these are a few hand-written lines: ranx or pytrec_eval want qrels of document ids, which
an evaluation set written against text (or against another chunking) does not have.

Definitions, with R reference contexts and the top-k chunks:
- hit_rate@k: 1 when any of the top k hits any reference (the benchmark's "recall@k");
- recall@k: the share of the R references hit by some top-k chunk (equal to hit rate when R=1);
- mrr@k: 1 / rank of the first chunk that hits a reference, 0 when none does;
- ndcg@k: binary gains, a chunk earning one when it hits a reference not yet credited to an
  earlier chunk; the ideal ranking credits min(k, R) references at ranks 1, 2, ...
- served_recall: recall over the top_k chunks the answer is written from (`settings.top_k`).
A case without reference contexts is not scored.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

from eval.datasets import EvalCase
from eval.scoring import CaseResult, Metric, Score, register

WORD = re.compile(r"\w+")
HIT_THRESHOLD = 0.6
RANK_CUTOFFS = (5, 10)
DEPTH = max(RANK_CUTOFFS)  # how many chunks the runner retrieves for ranking metrics
# Retrieval is deterministic for a given index and models; the tolerance only absorbs ranks
# of near-tied chunks swapping between machines (float/bf16 differences): about one case in 50.
RETRIEVAL_TOLERANCE = 0.02


def _folded(text: str) -> str:
    """NFKC and lower case: a reference copied from a PDF with its ligatures ("\ufb01ne") is
    the same text as a chunk whose loader spelled them out ("fine")."""
    return unicodedata.normalize("NFKC", text).lower()


def _norm(text: str) -> str:
    return " ".join(_folded(text).split())


def is_hit(chunk: str, reference: str, threshold: float = HIT_THRESHOLD) -> bool:
    """A chunk hits a reference when it contains it (whitespace-normalised, case-folded) or
    when their shared word tokens cover at least `threshold` of the shorter text.

    The overlap clause serves both kinds of reference: a quote shorter than a chunk must be
    mostly inside the chunk; a page-long reference is hit by a chunk lying mostly inside it.
    """
    if _norm(reference) in _norm(chunk):
        return True
    a, b = Counter(WORD.findall(_folded(chunk))), Counter(WORD.findall(_folded(reference)))
    shorter = min(sum(a.values()), sum(b.values()))
    return shorter > 0 and sum((a & b).values()) / shorter >= threshold


def hit_matrix(case: EvalCase, result: CaseResult) -> list[list[bool]]:
    """matrix[i][j]: the i-th ranked chunk hits the j-th reference (computed once per case)."""
    if "hits" not in result.memo:
        result.memo["hits"] = [[is_hit(chunk.text, ref) for ref in case.reference_contexts]
                               for chunk in result.ranked]
    return result.memo["hits"]


def hit_rate_at(matrix: list[list[bool]], k: int) -> float:
    return float(any(any(row) for row in matrix[:k]))


def recall_at(matrix: list[list[bool]], k: int, references: int) -> float:
    found = {j for row in matrix[:k] for j, hit in enumerate(row) if hit}
    return len(found) / references


def mrr_at(matrix: list[list[bool]], k: int) -> float:
    for rank, row in enumerate(matrix[:k], start=1):
        if any(row):
            return 1.0 / rank
    return 0.0


def ndcg_at(matrix: list[list[bool]], k: int, references: int) -> float:
    credited: set[int] = set()
    dcg = 0.0
    for rank, row in enumerate(matrix[:k], start=1):
        new = next((j for j, hit in enumerate(row) if hit and j not in credited), None)
        if new is not None:
            credited.add(new)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, references) + 1))
    return dcg / ideal


def _ranked(fn, k: int):
    def score(case: EvalCase, result: CaseResult) -> Score:
        if not case.reference_contexts:
            return Score.skip("no reference contexts")
        return Score.of(fn(hit_matrix(case, result), k, len(case.reference_contexts)))

    return score


def _served_recall(case: EvalCase, result: CaseResult) -> Score:
    if not case.reference_contexts:
        return Score.skip("no reference contexts")
    matrix = [[is_hit(chunk.text, ref) for ref in case.reference_contexts]
              for chunk in result.served]
    return Score.of(recall_at(matrix, len(matrix), len(case.reference_contexts)))


def _register() -> None:
    for k in RANK_CUTOFFS:
        register(Metric(f"hit_rate@{k}", "retrieval", _ranked(lambda m, k, r: hit_rate_at(m, k), k),
                        tolerance=RETRIEVAL_TOLERANCE,
                        description=f"any of the top {k} chunks hits a reference context"))
    for k in RANK_CUTOFFS:
        register(Metric(f"recall@{k}", "retrieval", _ranked(recall_at, k),
                        tolerance=RETRIEVAL_TOLERANCE,
                        description=f"share of reference contexts hit in the top {k}"))
    register(Metric(f"mrr@{DEPTH}", "retrieval", _ranked(lambda m, k, r: mrr_at(m, k), DEPTH),
                    tolerance=RETRIEVAL_TOLERANCE,
                    description="1 / rank of the first chunk that hits a reference"))
    register(Metric(f"ndcg@{DEPTH}", "retrieval", _ranked(ndcg_at, DEPTH),
                    tolerance=RETRIEVAL_TOLERANCE,
                    description="discounted gain of references found, against the ideal order"))
    register(Metric("served_recall", "retrieval", _served_recall, tolerance=RETRIEVAL_TOLERANCE,
                    description="share of reference contexts among the top_k chunks the "
                                "answer is written from"))


_register()
