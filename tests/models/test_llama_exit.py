"""Loaded llama.cpp models are closed by an exit handler, before module teardown.

Why it matters: a Llama freed during interpreter teardown printed llama-cpp-python's
"Exception ignored in: <function Llama.__del__ ...> AttributeError: 'NoneType' object has no
attribute 'llama_model_free'" after full test runs, which reads like a failure.
"""

from __future__ import annotations

from rag.llm import LlamaCppChat
from rag.models import llama_lifetime


def _loaded_chat() -> LlamaCppChat:
    chat = LlamaCppChat(context_window=256, threads=1)
    assert chat.count_tokens("hello world") > 0  # loads the model, registering it
    return chat


def test_exit_handler_frees_a_loaded_model_once_and_waits_for_its_user():
    chat = _loaded_chat()
    busy = _loaded_chat()
    assert llama_lifetime._registered
    assert chat.llama in llama_lifetime._OPEN and busy.llama in llama_lifetime._OPEN
    with busy._lock, _short_wait():  # a generation still running in another thread
        llama_lifetime.close_all()
    assert chat.llama._model.model is None  # freed while llama_cpp is whole
    assert busy.llama._model.model is not None  # in use: left alone
    llama_lifetime.close_all()  # the user finished: freed now; running twice is harmless
    assert busy.llama._model.model is None
    llama_lifetime.close_all()
    assert chat.llama not in llama_lifetime._OPEN


class _short_wait:
    def __enter__(self):
        self.saved, llama_lifetime.LOCK_WAIT_S = llama_lifetime.LOCK_WAIT_S, 0.05

    def __exit__(self, *exc):
        llama_lifetime.LOCK_WAIT_S = self.saved
        return False

