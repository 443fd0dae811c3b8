"""Errors the framework raises on purpose: each message names the file or setting and what to do.

The retrieval layer's errors are defined in `retrievers.errors` (a lower layer cannot import
this one) and re-exported here; `USER_ERRORS` is every error the CLI prints as one line.
"""

from retrievers.errors import (CatalogDamagedError, DenseStoreDamagedError, DiskFullError,
                               IndexLockedError, RetrieverError, StoreConfigError)


class RagError(Exception):
    """Base class: every error a user should read as a one-line explanation."""


class ModelFileError(RagError):
    """A model file is missing or corrupt; the message names the file and the fix."""


class ConfigError(RagError):
    """A setting is invalid or conflicts with the index it is used on."""


USER_ERRORS: tuple[type[Exception], ...] = (RagError, RetrieverError)

__all__ = ["RagError", "ModelFileError", "ConfigError", "IndexLockedError", "RetrieverError",
           "StoreConfigError", "CatalogDamagedError", "DenseStoreDamagedError", "DiskFullError", "USER_ERRORS"]
