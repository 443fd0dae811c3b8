"""The named strategies a setting picks, as enums: an unknown name is an error, never a fallback.

Kept apart from the code that implements them so `rag.config` can validate settings without
loading numpy or Milvus.
"""

from __future__ import annotations

from enum import Enum, nonmember


class _Named(str, Enum):
    @classmethod
    def parse(cls, name: str) -> "_Named":
        """The member called `name`, or a ValueError listing the valid names."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"{cls.setting} must be one of {cls.names()}, not {name!r}") from None

    @classmethod
    def names(cls) -> list[str]:
        return [member.value for member in cls]


class Fusion(_Named):
    """How the ranked lists of several retrievers become one (setting `fusion`)."""

    setting = nonmember("fusion")
    ZSCORE = "zscore"
    WEIGHTED = "weighted"
    RRF = "rrf"


class RetrievalMode(_Named):
    """Fuse every retriever, or use one alone (setting `retrieval_mode`)."""

    setting = nonmember("retrieval_mode")
    HYBRID = "hybrid"
    BM25 = "bm25"
    DENSE = "dense"


class SparseBackend(_Named):
    """Where keyword search runs (setting `sparse`)."""

    setting = nonmember("sparse")
    RANK_BM25 = "rank-bm25"  # in-process BM25Index, rank-bm25's BM25Okapi scores
    MILVUS = "milvus"  # Milvus's built-in BM25 function (for a server shared by many processes)
