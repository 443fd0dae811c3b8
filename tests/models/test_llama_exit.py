"""Loaded llama.cpp models are closed by an exit handler, before module teardown.

Why it matters: a Llama freed during interpreter teardown printed llama-cpp-python's
"Exception ignored in: <function Llama.__del__ ...> AttributeError: 'NoneType' object has no
attribute 'llama_model_free'" after full test runs, which reads like a failure.
"""

from __future__ import annotations

from rag.llm import LlamaCppChat
from rag.models.llama_lifetime import AT_EXIT, LlamaRegistry


def _loaded_chat() -> LlamaCppChat:
    chat = LlamaCppChat(context_window=256, threads=1)
    assert chat.count_tokens("hello world") > 0  # loads the model
    return chat


def test_every_loaded_answer_model_is_registered_for_exit():
    chat = _loaded_chat()
    assert chat.llama in AT_EXIT  # closed by the atexit handler, not by module teardown


def test_closing_frees_idle_models_and_waits_for_busy_ones():
    # A private registry: the session's shared models (registered in AT_EXIT) stay open.
    registry = LlamaRegistry()
    idle, busy = _loaded_chat(), _loaded_chat()
    registry.add(idle.llama, idle._lock)
    registry.add(busy.llama, busy._lock)
    with busy._lock:  # a generation still running in another thread
        registry.close_all(wait_s=0.05)
    assert idle.llama._model.model is None  # freed while llama_cpp is whole
    assert busy.llama._model.model is not None  # in use: left alone
    registry.close_all()  # the user finished: freed now; running twice is harmless
    assert busy.llama._model.model is None
    registry.close_all()
    assert idle.llama not in registry and busy.llama not in registry
