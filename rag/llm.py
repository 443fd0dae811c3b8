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
from typing import Any, Iterator, Protocol

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
                 temperature: float = 0.0, seed: int = 0, prefix_cache: bool = True,
                 kernels: str = "auto", weights: str = "shipped", **llama_options: Any):
        """`llama_options` go to `llama_cpp.Llama` as they are (n_batch, flash_attn, ...);
        `prefix_cache=False` evaluates every prompt from scratch (for comparisons)."""
        self.model_name = model
        self.prefix_cache = prefix_cache
        self.kernels = kernels  # llm_cpu_kernels (rag/models/llama_kernels.py)
        self.weights = weights  # llm_weights (rag/models/gguf_requant.py)
        self.llama_options = llama_options
        self.context_window = context_window
        self.threads = threads or os.cpu_count() or 2
        self.temperature = temperature
        self.seed = seed
        self._lock = threading.Lock()
        self._prefixes: dict[str, list[int]] = {}

    @cached_property
    def path(self) -> Path:
        shipped = resolve_gguf(self.model_name)
        if self.weights == "shipped":
            return shipped
        from rag.models.gguf import PACKAGED_GGUFS
        from rag.models.gguf_requant import converted

        spec = PACKAGED_GGUFS.get(self.model_name or PACKAGED)
        stat = shipped.stat()
        identity = spec.sha256 if spec else f"{shipped}:{stat.st_size}:{stat.st_mtime_ns}"
        return converted(shipped, identity, self.weights)

    @property
    def name(self) -> str:
        from rag.models.gguf import PACKAGED_GGUFS

        spec = PACKAGED_GGUFS.get(self.model_name or PACKAGED)
        return f"{spec.file_name} ({spec.name})" if spec else self.path.name

    @cached_property
    def llama(self):
        from rag.models.llama_kernels import prepare

        prepare(self.kernels)  # before llama_cpp loads: AVX-512 kernels where this CPU has them
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelFileError(
                "llama-cpp-python is not installed; run `pip install llama-cpp-python==0.3.36` "
                "or set llm_backend = \"openai\""
            ) from exc
        from rag.models.llama_lifetime import close_at_exit

        try:
            return close_at_exit(Llama(model_path=str(self.path), n_ctx=self.context_window,
                                       n_threads=self.threads, seed=self.seed, verbose=False,
                                       **self.llama_options), self._lock)
        except ValueError as exc:
            raise ModelFileError(f"{self.path}: llama.cpp could not load it ({exc})") from exc

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        with self._lock:
            # Same prompt, same answer: llama.cpp's state holds only the fixed prefix (or
            # nothing), and the seed is set again, before every call.
            self._keep_only_prefix(messages)
            self.llama.set_seed(self.seed)
            for part in self.llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=self.temperature,
                seed=self.seed, stream=True,
            ):
                text = part["choices"][0]["delta"].get("content")
                if text:
                    yield text


    def _keep_only_prefix(self, messages: list[Message]) -> None:
        """Leave llama.cpp's KV cache holding exactly the prompt's system-message prefix.

        The system rules are the same for every question (~90 tokens, about half a second on
        2 cores), so they are evaluated once and kept; llama-cpp-python's own prefix match
        then skips them. The prefix is always evaluated on its own, from an empty cache, and
        the rest always starts right after it: the arithmetic, hence the answer, does not
        depend on which question came before.
        """
        prefix = self._prefix_tokens(messages) if self.prefix_cache else []
        llama = self.llama
        if not prefix:
            llama.reset()
            return
        if llama.n_tokens >= len(prefix) and list(llama.input_ids[:len(prefix)]) == prefix \
                and llama._ctx.kv_cache_seq_rm(-1, len(prefix), -1):
            llama.n_tokens = len(prefix)
            return
        llama.reset()
        llama.eval(prefix)

    def _prefix_tokens(self, messages: list[Message]) -> list[int]:
        """The tokens the prompt shares with any prompt of the same system message ([] when
        there is none, or the model has no chat template to render it with)."""
        if not messages or messages[0].get("role") != "system" or self._formatter is None:
            return []
        system = messages[0]["content"]
        if system not in self._prefixes:
            renders = [self._tokens([messages[0], {"role": "user", "content": probe}])
                       for probe in ("A", "Z")]
            common = 0
            for a, b in zip(*renders):
                if a != b:
                    break
                common += 1
            self._prefixes = {system: renders[0][:common]}
        prefix = self._prefixes[system]
        whole = self._tokens(messages)
        return prefix if whole[:len(prefix)] == prefix and len(whole) > len(prefix) else []

    def _tokens(self, messages: list[Message]) -> list[int]:
        """The prompt tokens llama-cpp-python's chat handler builds for `messages`."""
        result = self._formatter(messages=messages)
        return self.llama.tokenize(result.prompt.encode("utf-8"),
                                   add_bos=not result.added_special, special=True)

    @cached_property
    def _formatter(self):
        """The GGUF's own chat template, as llama-cpp-python renders it (None: none)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self.llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not template or llama.chat_handler is not None or \
                llama.chat_format != "chat_template.default":
            return None
        def text(token: int) -> str:
            return llama._model.token_get_text(token) if token != -1 else ""

        return Jinja2ChatFormatter(template=template, eos_token=text(llama.token_eos()),
                                   bos_token=text(llama.token_bos()))


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
                        settings.llm_temperature, settings.llm_seed,
                        kernels=settings.llm_cpu_kernels, weights=settings.llm_weights)
