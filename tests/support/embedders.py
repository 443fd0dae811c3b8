"""A real embedder, counted: for tests that assert how much an ingest embedded."""

from __future__ import annotations

from typing import Any, Callable


class CountingEmbedder:
    """The real embedder, counting the calls that embed chunks (not queries), as the number of
    texts of each call in `calls`, whichever of its paths embeds them: its own `encode`, or the encoder it gives a run that
    fits in one batch (`small_ingest_encoder`). `on_encode(texts)` is told of every call."""

    def __init__(self, real: Any, on_encode: Callable[[list[str]], None] | None = None):
        self._real = real
        self.calls: list[int] = []  # texts per call
        self.on_encode = on_encode

    def encode(self, texts, progress=None, *, through: Any = None):
        self.calls.append(len(texts))
        if self.on_encode:
            self.on_encode(texts)
        return (through or self._real).encode(texts, progress=progress)

    def small_ingest_encoder(self):
        small = self._real.small_ingest_encoder()
        if small is None:
            return None
        counting = self

        class Counted:
            def encode(self, texts, progress=None):
                return counting.encode(texts, progress, through=small)

        return Counted()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
