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


class CatalogDamagedError(RetrieverError):
    """The index's SQLite catalog cannot be read."""


class DenseStoreDamagedError(RetrieverError):
    """Milvus Lite's files in the index cannot be read; the catalog can rebuild them."""


def damaged_catalog(path: object, exc: BaseException) -> CatalogDamagedError:
    """The one-line error for a catalog SQLite cannot read, naming it and what to do."""
    return CatalogDamagedError(
        f"{path}: the index catalog is damaged ({exc}); it is the record every other index file "
        "is checked against, so the index cannot be repaired from it: move the index folder "
        "aside and ingest your files again (`rag ingest PATH... --index DIR`)")
