"""Answer-writing LLM backends behind one small chat interface.

`LlamaCppChat` runs the packaged GGUF (or any GGUF path) in-process with llama-cpp-python,
offline. `OpenAICompatibleChat` talks to any OpenAI-compatible endpoint (vLLM, Ollama,
llama.cpp server, OpenAI). Both expose `chat`, `stream_chat` and `count_tokens`, which is all
generation needs; llama-index adapters wrap the same objects.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Iterator, Protocol

from rag.config import PACKAGED, Settings
from rag.errors import ConfigError, ModelFileError

Message = dict[str, str]


class ChatBackend(Protocol):
    context_window: int
    name: str

    def chat(self, messages: list[Message], max_tokens: int) -> str: ...

    def stream_chat(self, messages: list[Message], max_tokens: int) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def resolve_gguf(name: str) -> Path:
    """A GGUF path: `packaged` (the default 0.5B), `packaged-1.5b`, or a file."""
    from rag.models.gguf import PACKAGED_GGUFS, packaged_gguf

    if name in ("", PACKAGED):
        return packaged_gguf()
    if name in PACKAGED_GGUFS:
        return packaged_gguf(spec=PACKAGED_GGUFS[name])
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{path}: GGUF model file not found; set llm_model to a .gguf file")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ModelFileError(f"{path}: not a GGUF file (bad magic bytes); re-download it")
    return path


class LlamaCppChat:
    """A GGUF model run in-process by llama.cpp; deterministic at temperature 0 with a seed."""

    def __init__(self, model: str = PACKAGED, context_window: int = 4096, threads: int = 0,
                 temperature: float = 0.0, seed: int = 0):
        self.model_name = model
        self.context_window = context_window
        self.threads = threads or os.cpu_count() or 2
        self.temperature = temperature
        self.seed = seed
        self._lock = threading.Lock()

    @cached_property
    def path(self) -> Path:
        return resolve_gguf(self.model_name)

    @property
    def name(self) -> str:
        from rag.models.gguf import PACKAGED_GGUFS

        spec = PACKAGED_GGUFS.get(self.model_name or PACKAGED)
        return f"{spec.file_name} ({spec.name})" if spec else self.path.name

    @cached_property
    def llama(self):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelFileError(
                "llama-cpp-python is not installed; run `pip install llama-cpp-python==0.3.36` "
                "or set llm_backend = \"openai\""
            ) from exc
        try:
            return Llama(model_path=str(self.path), n_ctx=self.context_window,
                         n_threads=self.threads, seed=self.seed, verbose=False)
        except ValueError as exc:
            raise ModelFileError(f"{self.path}: llama.cpp could not load it ({exc})") from exc

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        with self._lock:
            # Same prompt, same answer: clear llama.cpp's state and reseed per call.
            self.llama.reset()
            self.llama.set_seed(self.seed)
            for part in self.llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=self.temperature,
                seed=self.seed, stream=True,
            ):
                text = part["choices"][0]["delta"].get("content")
                if text:
                    yield text


class OpenAICompatibleChat:
    """Any OpenAI-compatible chat endpoint; the key comes from the environment, never a file."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 context_window: int = 4096, temperature: float = 0.0, seed: int = 0):
        if not base_url:
            raise ConfigError("llm_backend = \"openai\" needs llm_base_url (e.g. http://127.0.0.1:8000/v1)")
        self.base_url, self.model = base_url, model
        self.api_key = os.environ.get(api_key_env) or "not-needed"
        self.context_window = context_window
        self.temperature, self.seed = temperature, seed
        self.name = f"{model} @ {base_url}"

    @cached_property
    def client(self):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # the endpoint's tokenizer is not known here; ~4 chars/token

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        stream = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=max_tokens,
            temperature=self.temperature, seed=self.seed, stream=True,
        )
        for event in stream:
            if event.choices and event.choices[0].delta.content:
                yield event.choices[0].delta.content


def backend_from_settings(settings: Settings) -> ChatBackend:
    if settings.llm_backend == "openai":
        return OpenAICompatibleChat(
            settings.llm_base_url, settings.llm_model, settings.llm_api_key_env,
            settings.llm_context_window, settings.llm_temperature, settings.llm_seed,
        )
    return LlamaCppChat(settings.llm_model, settings.llm_context_window, settings.llm_threads,
                        settings.llm_temperature, settings.llm_seed)
