"""Answers of a deterministic local answer model, kept on disk between runs of `rag eval`.

A judged run spends most of its time in the judge, whose judgements are cached; without this,
a re-run with nothing changed would still write every answer again (10-15 s a case on 2
cores), and a 58-case re-run could not come under a few percent of the first. An answer is
only reused when the same model file (by content hash), context window, seed and prompt asked
for it at temperature 0: then llama.cpp would write the same text again (the backend resets
its state and seed per call). Other backends (an endpoint, a sampling temperature) are never
cached: nothing here can prove they would answer the same.

Answers live in the judgement cache's SQLite file under keys of their own
(`JudgeCache.key("answer|" + fingerprint, ...)`), so one `--judge-cache FILE` holds a run's
whole state. A case answered from the cache is not timed: the runner drops its generation
latency rather than report a lookup as a generation.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from eval.cache import JudgeCache, gguf_fingerprint


def answer_fingerprint(chat: Any) -> str | None:
    """What makes a local answer repeatable, or None when `chat` cannot be cached."""
    from rag.llm import LlamaCppChat

    if not isinstance(chat, LlamaCppChat) or chat.temperature != 0.0:
        return None
    from rag.models.llama_kernels import expected

    # AVX-512 kernels round differently from AVX2 ones, so their answers are kept apart (AVX2
    # keys stay as they were).
    kernels = expected(chat.kernels).kernels
    return (f"answer|{gguf_fingerprint(chat.model_name, chat.path)}|ctx={chat.context_window}"
            f"|seed={chat.seed}|t=0" + ("" if kernels == "avx2" else f"|kernels={kernels}")
            + ("" if chat.weights == "shipped" else f"|weights={chat.weights}"))


class CachedChat:
    """A `rag.llm.ChatBackend` that answers a prompt seen before from the cache.

    `hits` counts the answers served from the cache, so a runner can tell them apart."""

    def __init__(self, inner: Any, cache: JudgeCache, fingerprint: str):
        self.inner = inner
        self.cache = cache
        self.fingerprint = fingerprint
        self.hits = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        key = JudgeCache.key(self.fingerprint, json.dumps([messages, max_tokens]), None)
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
            yield cached
            return
        pieces = []
        for piece in self.inner.stream_chat(messages, max_tokens):
            pieces.append(piece)
            yield piece
        self.cache.put(key, "".join(pieces))  # only a whole answer: an interrupted one is not kept


def cache_answers(rag: Any, cache: JudgeCache) -> CachedChat | None:
    """Wrap `rag`'s answer model in a `CachedChat` when its answers are repeatable; returns the
    wrapper, or None when they are not (the model is left as it is)."""
    fingerprint = answer_fingerprint(rag.llm)
    if fingerprint is None:
        return None
    return rag.wrap_llm(lambda chat: CachedChat(chat, cache, fingerprint))
