"""Drift statistics: do new documents, or recent queries, still look like the indexed corpus?

Documents: a domain classifier, as Evidently's embedding drift ("model" method) and Arize
Phoenix do. A logistic regression (scikit-learn) learns to tell new chunk embeddings from the
reference sample of the index's profile (rag/drift_profile.py); its cross-validated ROC AUC is
the statistic: 0.5 when it cannot tell them apart, 1.0 when they separate perfectly. The folds
are grouped by document (or, for a side of fewer than 5 documents, by passage: runs of
`PASSAGE_CHUNKS` consecutive chunks), so the classifier is scored on documents it never saw:
with chunks split at random, neighbouring chunks of one essay land on both sides and any two
halves of one corpus look separable. The centroid cosine distance is reported beside it (not
gated).

Queries: the share whose best dense match (logged at query time) falls under a similarity
floor: questions the index has nothing close to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rag.config import Settings

STATISTIC = "domain-classifier ROC AUC"
# Chosen on Paul Graham essays only (one half as the reference, the other as new documents:
# 0.46-0.50 over 5 random splits, benchmarks/drift_detection.py); a new domain scores far higher.
DEFAULT_THRESHOLD = 0.65
PASSAGE_CHUNKS = 8
QUERY_FLOOR = Settings.decline_min_dense  # the cosine under which answers are declined
DEFAULT_QUERY_SHARE = 0.5
MIN_PER_CLASS = 10


@dataclass
class DocumentDrift:
    statistic: str
    value: float | None  # None: too few chunks to decide
    threshold: float
    drifted: bool
    reference: int
    new: int
    centroid_distance: float
    folds: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "value": _round(self.value),
                "threshold": self.threshold, "drifted": self.drifted,
                "reference_chunks": self.reference, "new_chunks": self.new,
                "centroid_cosine_distance": _round(self.centroid_distance), "folds": self.folds,
                "note": self.note}


@dataclass
class QueryDrift:
    queries: int
    floor: float
    below_floor: float | None  # share of queries under the floor
    threshold: float
    drifted: bool
    statistic: str = field(default="share of queries whose best match is under the floor")

    def to_json(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "queries": self.queries, "floor": self.floor,
                "value": _round(self.below_floor), "threshold": self.threshold,
                "drifted": self.drifted}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def passage_groups(sources: Sequence[int], positions: Sequence[int],
                   size: int = PASSAGE_CHUNKS, folds: int = 5) -> np.ndarray:
    """One group id per chunk: its source when the chunks come from at least `folds` sources
    (whole documents are held out), else its source and run of `size` chunks (one long PDF
    is held out a passage at a time)."""
    if len(set(int(s) for s in sources)) >= folds:
        size = 1 << 62
    pairs = list(zip((int(s) for s in sources), (int(p) // size for p in positions)))
    ids = {pair: n for n, pair in enumerate(dict.fromkeys(pairs))}
    return np.array([ids[pair] for pair in pairs], dtype=np.int64)


def document_drift(reference: np.ndarray, reference_groups: np.ndarray, new: np.ndarray,
                   new_groups: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                   folds: int = 5, seed: int = 0) -> DocumentDrift:
    """The cross-validated ROC AUC of a classifier telling `new` from `reference` embeddings
    (folds grouped by passage: `*_groups`), and their centroid cosine distance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    centroid = _unit(reference.mean(axis=0)) @ _unit(new.mean(axis=0)) if len(reference) and len(new) else 1.0
    distance = float(1.0 - centroid)
    n_ref, n_new = len(reference), len(new)
    # Groups of the two sides must not collide.
    groups = np.concatenate([reference_groups, new_groups + int(reference_groups.max(initial=-1)) + 1])
    k = min(folds, len(np.unique(reference_groups)), len(np.unique(new_groups)))
    if min(n_ref, n_new) < MIN_PER_CLASS or k < 2:
        return DocumentDrift(STATISTIC, None, threshold, False, n_ref, n_new, distance, 0,
                             note=f"too few chunks or passages to decide (need {MIN_PER_CLASS} "
                                  "chunks and 2 passages on each side)")
    x = np.concatenate([reference, new]).astype(np.float64)
    y = np.concatenate([np.zeros(n_ref), np.ones(n_new)])
    scores = np.zeros(len(y))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            scores[test] = 0.5
            continue
        model = LogisticRegression(max_iter=2000, class_weight="balanced")
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    auc = float(roc_auc_score(y, scores))
    return DocumentDrift(STATISTIC, auc, threshold, auc > threshold, n_ref, n_new, distance, k)


def query_drift(best_scores: Sequence[float], floor: float = QUERY_FLOOR,
                threshold: float = DEFAULT_QUERY_SHARE) -> QueryDrift:
    """The share of queries whose best match is under `floor`; drifted past `threshold`."""
    values = np.asarray([s for s in best_scores if s is not None], dtype=np.float64)
    if not len(values):
        return QueryDrift(0, floor, None, threshold, False)
    share = float((values < floor).mean())
    return QueryDrift(len(values), floor, share, threshold, share > threshold)


def best_match(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each query's highest cosine to the reference sample (when its search logged none)."""
    if not len(queries) or not len(reference):
        return np.zeros(len(queries))
    return (_unit_rows(queries) @ _unit_rows(reference).T).max(axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
