"""Errors the retrieval layer raises on purpose, each a one-line explanation naming the file,
collection or setting and what to do.

They live here, not in `rag`, because layers depend one way (ui -> rag -> ingestion ->
retrievers): a store must be able to say "locked" or "built differently" without importing the
layer above it. `rag.errors` re-exports them so callers of the Python API catch one family.
"""


class RetrieverError(Exception):
    """Base class of the retrieval layer's user-facing errors."""


class IndexLockedError(RetrieverError):
    """Another process owns the embedded index directory."""


class StoreConfigError(RetrieverError):
    """A store or reranker was asked for something its data or files cannot give (a collection
    built with other settings, a missing model folder, a feature it was not opened with)."""
