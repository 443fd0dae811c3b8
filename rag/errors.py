"""Errors the framework raises on purpose: each message names the file or setting and what to do."""


class RagError(Exception):
    """Base class: every error a user should read as a one-line explanation."""


class ModelFileError(RagError):
    """A model file is missing or corrupt; the message names the file and the fix."""


class ConfigError(RagError):
    """A setting is invalid or conflicts with the index it is used on."""


class IndexLockedError(RagError):
    """Another process owns the embedded index directory."""
