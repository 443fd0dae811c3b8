"""An offline-first hybrid RAG framework: `from rag import RAG`.

Importing this package is cheap: torch, gradio and deepeval load only when used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Nothing in the default path may phone home.
for _name, _value in {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    # OpenMP threads that sleep instead of spinning: on 2 shared cores, spinning made whisper
    # 7x slower whenever another process was busy (must be set before torch loads).
    "OMP_WAIT_POLICY": "PASSIVE",
}.items():
    os.environ.setdefault(_name, _value)

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
