"""An offline-first hybrid RAG framework: `from rag import RAG`.

Importing this package is cheap (torch, gradio and deepeval load only when used) and changes
nothing in the process: the environment defaults the framework needs are applied when a `RAG`
is created or the CLI runs (`rag.process.apply_defaults`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["RAG", "Answer", "Citation", "Settings", "load_settings"]

if TYPE_CHECKING:
    from rag.api import RAG
    from rag.config import Settings, load_settings
    from rag.generation import Answer, Citation


def __getattr__(name: str) -> Any:
    if name == "RAG":
        from rag.api import RAG

        return RAG
    if name in ("Answer", "Citation"):
        from rag import generation

        return getattr(generation, name)
    if name in ("Settings", "load_settings"):
        from rag import config

        return getattr(config, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
