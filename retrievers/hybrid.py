"""Query several retrievers and fuse them: the retriever behind `ask`, `retrieve` and the
llama-index views.

`HybridRetriever` fuses any set of named ranked searches (`RankedSearch`); today's index gives
two, "bm25" (the keyword index: in-process rank-bm25 scoring, or Milvus's BM25 function with
`sparse="milvus"`) and "dense" (query embedding + the dense store). A retrieval mode is
"hybrid" (all of them, fused) or the name of one. Filters act inside each retriever (a Milvus
expression on the dense side, a facet mask in BM25) so the top-k is taken among matching
chunks, never cut first and filtered after.

Consistency with a concurrent ingest: the searches and the lookup of the hits' text run under
the index's read lock (`ChunkIndex.reading`), so a query never sees an id whose text a publish
has just forgotten.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Mapping

import numpy as np

from retrievers.bridge import bridge_round
from retrievers.diversity import cap_per_source
from retrievers.filters import Filters, as_filters
from retrievers.fusion import Fused, fuse, weights_for
from retrievers.helper_thread import meanwhile
from retrievers.live import top_live
from retrievers.name_coverage import cover_names
from retrievers.names import named_terms
from retrievers.phrases import boost_quoted, chunks_holding, quoted_phrases
from retrievers.protocols import KeywordIndex, Ranked, RankedSearch, Reranker
from retrievers.records import Chunk, Hit
from retrievers.strategies import Fusion, RetrievalMode
from retrievers.tracing import stage

if TYPE_CHECKING:
    from retrievers.index import ChunkIndex

HYBRID = RetrievalMode.HYBRID.value


class KeywordSearch:
    """A `KeywordIndex` as a ranked search (timed as the `bm25` stage)."""

    def __init__(self, keywords: KeywordIndex, tracer: Any = None):
        self.keywords = keywords
        self.tracer = tracer

    @property
    def in_process(self) -> bool:
        """Whether the search runs in this process on numpy (the rank-bm25 index, not Milvus's
        BM25), so a hybrid query can run it while the query helper thread walks the vectors."""
        from retrievers.bm25 import BM25Index

        return isinstance(self.keywords, BM25Index)

    def __call__(self, query: str, k: int, filters: Filters | None = None) -> Ranked:
        with stage(self.tracer, "bm25"):
            return self.keywords.search(query, k, filters)


class DenseSearch:
    """Query embedding + dense store search, restricted to the live ids (timed as the
    `embed` and `dense` stages)."""

    def __init__(self, store: Any, embed_query: Callable[[str], np.ndarray], live: KeywordIndex,
                 tracer: Any = None):
        self.store = store
        self.embed_query = embed_query
        self.live = live
        self.tracer = tracer

    def __call__(self, query: str, k: int, filters: Filters | None = None) -> Ranked:
        return self.embedded(query)(k, filters)

    def embedded(self, query: str) -> Callable[[int, Filters | None], Ranked]:
        """The query embedded now; the store search with its vector, to run next. Apart so that
        a hybrid query can start the keyword search once the embedding (on every core) is done."""
        store = self._store()
        if not len(self.live):
            return lambda k, filters=None: []
        with stage(self.tracer, "embed", **{"rag.tokens.embedded_texts": 1}):
            vector = self.embed_query(query)

        def search(k: int, filters: Filters | None = None) -> Ranked:
            # Rows of an ingest in progress (pending) or just replaced (retired) are not answers.
            with stage(self.tracer, "dense"):
                return top_live(lambda limit: store.search(vector, limit, filters), k, self.live)
        return search

    def _store(self) -> Any:
        return self.store


class IndexDenseSearch(DenseSearch):
    """`DenseSearch` over whatever dense store a `ChunkIndex` serves from at the moment of the
    query (a re-index switches it; the query holds the index's read lock, so the store and the
    query embedding it is given come from the same side of a switch)."""

    def __init__(self, index: "ChunkIndex", embed_query: Callable[[str], np.ndarray],
                 tracer: Any = None):
        super().__init__(index.dense, embed_query, index.keywords, tracer)
        self.index = index

    def _store(self) -> Any:
        return self.index.dense


def keyword_and_dense(index: "ChunkIndex", embed_query: Callable[[str], np.ndarray],
                      tracer: Any = None) -> dict[str, RankedSearch]:
    """The two retrievers of a `ChunkIndex`: {"bm25": keywords, "dense": vectors}."""
    return {"bm25": KeywordSearch(index.keywords, tracer),
            "dense": IndexDenseSearch(index, embed_query, tracer)}


class HybridRetriever:
    """Named retrievers fused by weighted z-scores (default), min-max scores or RRF,
    optionally reranked by a cross-encoder."""

    def __init__(
        self, retrievers: Mapping[str, RankedSearch], chunks: Callable[[list[str]], dict[str, Chunk]],
        *, candidate_k: int = 50, fusion: Fusion | str = Fusion.ZSCORE, rrf_k: int = 60,
        weights: dict[str, float] | None = None, reranker: Reranker | None = None,
        rerank_top_n: int = 20, consistent: Callable[[], ContextManager[Any]] | None = None,
        tracer: Any = None, cover_names: bool = False, max_per_source: int = 0,
        bridge_seeds: int = 0, bridge_slots: int = 1, bridge_new_source: bool = False,
        bridge_rerank_gate: bool = True, bridge_append: bool = False,
        named_weights: dict[str, float] | None = None,
        phrase_boost: float = 0.0, phrase_document_boost: float = 0.0,
        phrase_search: RankedSearch | None = None,
    ):
        """`named_weights` (default: `weights`) fuse a question that names something (a
        capitalised word not opening a sentence, a word with digits: `names.name_words`). Names
        are matched by their words, which keyword search does and a small embedding model does
        loosely, so such questions lean on keywords (README "Choosing quality settings"). In
        hybrid mode, `cover_names` serves a candidate holding each name of the question
        that the served top-k lacks (retrievers/name_coverage.py), `max_per_source` > 0
        caps one file's share of the top-k (retrievers/diversity.py), and `bridge_seeds` > 0
        searches again from the names in that many top hits, serving up to `bridge_slots`
        bridge hits in place of the lowest, or after the top-k with `bridge_append`
        (retrievers/bridge.py; with `bridge_rerank_gate` and a reranker, only those it scores
        above the hit they replace, or above the lowest served one). In hybrid mode, a question
        quoting a phrase raises the candidates holding it by `phrase_boost` and those of a
        document holding it by `phrase_document_boost`, on the fused scale; `phrase_search`
        (a keyword search) finds holders the candidates lack (retrievers/phrases.py)."""
        if not retrievers:
            raise ValueError("HybridRetriever needs at least one retriever")
        if HYBRID in retrievers:
            raise ValueError(f"{HYBRID!r} names the fusion of all retrievers; name yours otherwise")
        self.retrievers = dict(retrievers)
        self.chunks = chunks
        self.candidate_k = candidate_k
        self.fusion = Fusion.parse(fusion)
        self.rrf_k = rrf_k
        self.weights = weights or {name: 1.0 for name in self.retrievers}  # Settings carries tuned ones
        self.named_weights = named_weights or self.weights
        self.reranker = reranker
        self.rerank_top_n = rerank_top_n
        self._consistent = consistent or nullcontext
        self.tracer = tracer  # an OpenTelemetry Tracer: fusion and rerank are timed as stages
        self.cover_names = cover_names
        self.max_per_source = max_per_source
        self.bridge_seeds = bridge_seeds
        self.bridge_slots = bridge_slots
        self.bridge_new_source = bridge_new_source
        self.bridge_rerank_gate = bridge_rerank_gate
        self.bridge_append = bridge_append
        self.phrase_boost = phrase_boost
        self.phrase_document_boost = phrase_document_boost
        self.phrase_search = phrase_search

    @classmethod
    def for_index(cls, index: "ChunkIndex", embed_query: Callable[[str], np.ndarray],
                  tracer: Any = None, **options: Any) -> "HybridRetriever":
        """Keyword + dense search over a `ChunkIndex`, consistent under concurrent writes."""
        searches = keyword_and_dense(index, embed_query, tracer)
        options.setdefault("phrase_search", searches["bm25"])
        return cls(searches, index.chunks, consistent=index.reading, tracer=tracer, **options)

    @property
    def modes(self) -> tuple[str, ...]:
        return (HYBRID, *self.retrievers)

    def retrieve(
        self, query: str, top_k: int = 5, mode: str = HYBRID,
        filters: Filters | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        if mode not in self.modes:
            raise ValueError(f"mode must be one of {self.modes}, not {mode!r}")
        filters = as_filters(filters)
        keep = max(top_k, self.rerank_top_n) if self.reranker is not None else top_k
        depth = max(self.candidate_k, keep)
        # The candidates below the cut are read only when a name may need one of them.
        cover = self.cover_names and mode == HYBRID and bool(named_terms(query))
        diverse = self.max_per_source > 0 and mode == HYBRID
        hits, below = self._candidates(query, mode, depth, keep, filters, cover or diverse)
        if self.reranker is not None and hits:
            with stage(self.tracer, "rerank"):
                hits = self.reranker.rerank(query, hits)
        if diverse:
            served = cap_per_source(hits + below, top_k, self.max_per_source)
            chosen = {id(h) for h in served}
            rest = [h for h in hits + below if id(h) not in chosen]
        else:
            served, rest = hits[:top_k], hits[top_k:] + below
        if self.bridge_seeds > 0 and mode == HYBRID:
            gate = self.reranker if self.bridge_rerank_gate else None
            with stage(self.tracer, "bridge"):
                served = bridge_round(
                    query, served,
                    lambda q: self._candidates(q, mode, depth, 2 * top_k, filters, False)[0],
                    self.bridge_seeds, self.bridge_slots, self.bridge_new_source,
                    None if gate is None else (lambda found: gate.rerank(query, found)),
                    self.bridge_append)
        if not cover:
            return served
        with stage(self.tracer, "names"):
            return cover_names(query, served, iter(rest), max_swaps=top_k // 2)

    def weights_for(self, query: str) -> dict[str, float]:
        """The fusion weights for `query`: `named_weights` when it names something."""
        return weights_for(query, self.weights, self.named_weights)

    def _candidates(self, query: str, mode: str, depth: int, keep: int, filters: Filters | None,
                    read_all: bool) -> tuple[list[Hit], list[Hit]]:
        """The fused hits of one search, as (the first `keep`, the rest when `read_all`)."""
        names = list(self.retrievers) if mode == HYBRID else [mode]
        with self._consistent():
            rankings = self._rankings(query, names, depth, filters)
            with stage(self.tracer, "fusion"):  # fusing, and reading the hits' text
                if len(rankings) > 1:
                    fused = fuse(self.fusion, rankings, self.weights_for(query), self.rrf_k)
                    fused = self._boost_quoted(query, fused, filters)
                else:
                    (name, ranked), = rankings.items()
                    fused = [Fused(cid, score, {name: r}, {name: score})
                             for r, (cid, score) in enumerate(ranked, start=1)]
                wanted = fused if read_all else fused[:keep]
                chunks = self.chunks([f.chunk_id for f in wanted])
                hits = [Hit(chunks[f.chunk_id], f.score, f.ranks, f.scores)
                        for f in wanted if f.chunk_id in chunks]
        return hits[:keep], hits[keep:]

    def _rankings(self, query: str, names: list[str], depth: int, filters: Filters | None
                  ) -> dict[str, Ranked]:
        """Each named retriever's ranking. A hybrid query over the in-process BM25 index runs
        BM25 while the dense search's segment walks run on the query helper thread, once the
        question is embedded (the embedding uses every core): `helper_thread.meanwhile`. Why:
        FAISS walks without the GIL, so the two overlap (README "Where the growth comes
        from"); where no walk goes to the helper (it is busy), BM25 runs after."""
        keywords, dense = self.retrievers.get("bm25"), self.retrievers.get("dense")
        if (names != ["bm25", "dense"] or not getattr(keywords, "in_process", False)
                or not hasattr(dense, "embedded")):
            return {name: self.retrievers[name](query, depth, filters) for name in names}
        search = dense.embedded(query)
        with meanwhile(lambda: keywords(query, depth, filters)) as ranked:
            found = search(depth, filters)
        return {"bm25": ranked.value(), "dense": found}

    def _boost_quoted(self, query: str, fused: list[Fused], filters: Filters | None) -> list[Fused]:
        """`fused` with the candidates holding a phrase the question quotes raised (and holders
        the candidates lack added); unchanged when it quotes none or the boosts are 0."""
        if not (self.phrase_boost or self.phrase_document_boost) or self.phrase_search is None:
            return fused
        phrases = quoted_phrases(query)
        if not phrases:
            return fused
        search = self.phrase_search
        read: dict[str, Chunk] = {}

        def text_of(ids: list[str]) -> dict[str, str]:
            read.update(self.chunks([i for i in ids if i not in read]))
            return {i: read[i].text for i in ids if i in read}

        holding = chunks_holding(phrases, lambda p: [c for c, _ in search(p, self.candidate_k, filters)],
                                 text_of)
        if not holding:
            return fused
        if self.phrase_document_boost:
            text_of([f.chunk_id for f in fused])
        sources = {cid: chunk.source for cid, chunk in read.items()}
        return boost_quoted(fused, holding, sources, self.phrase_boost, self.phrase_document_boost)
