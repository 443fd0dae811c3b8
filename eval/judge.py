"""The evaluation judge: a DeepEval `DeepEvalBaseLLM` over the same backends as answers.

Offline by default: a packaged GGUF run in-process by llama.cpp, whose output is constrained
to the JSON schema DeepEval asks for (llama.cpp turns the schema into a grammar), so a small
model cannot answer in prose or half-JSON. What still does not validate (a truncated object, a
value of the wrong type) is asked again `retries` times, with a little sampling temperature so
the retry can differ, and then raised as `JudgeOutputError`: the metric is counted as failed,
never as a NaN or a silent zero. With `judge_backend = "openai"` any OpenAI-compatible endpoint
judges, with its own JSON-schema mode.

Speed: llama.cpp checks the grammar against every candidate token, 151k of them for Qwen, which
made one constrained token cost ~0.9 s on 2 cores (136 s for a 150-token judgement, 12.7 s
unconstrained). The judge's sampler keeps the model's top 1000 tokens before the grammar sees
them (`TopKFirstLlama`): the same output, token for token, in 11.1 s. Where the grammar allows
none of those 1000 (it forces a token, e.g. the `]` after the last item it allows), llama.cpp
would abort the process; a rescue step then hands the whole vocabulary to a second grammar
sampler, so such positions are slow but safe. That makes length bounds in the grammar possible
(`bounded`): without them the 1.5B model repeated "truths" of a long context until the token
budget cut the JSON off, three tries in a row (4,600 characters at 768 tokens, 12,400 at 2,048).

Every judgement is cached on disk (`JudgeCache`, SQLite, keyed by the judge's fingerprint, the
prompt and the schema), so a re-run with unchanged answers costs almost nothing and an
interrupted run resumes where it stopped. Same prompt, same judge: same output (temperature 0
and a fixed seed on the first try).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eval.cache import JudgeCache, gguf_fingerprint
from rag.config import PACKAGED, Settings
from rag.process import apply_defaults

apply_defaults()  # deepeval's telemetry reads its opt-out when it is imported
from deepeval.models.base_model import DeepEvalBaseLLM  # noqa: E402
from pydantic import BaseModel, ValidationError  # noqa: E402

log = logging.getLogger(__name__)
RETRY_TEMPERATURE = 0.4
GRAMMAR_TOP_K = 1000
# Bounds written into the grammar (not into validation): a small model asked for the "truths"
# of a long context copies it sentence after sentence until max_tokens cuts the JSON off (the
# 1.5B model: 4,600 characters at 768 tokens, 12,400 at 2,048, on the first Solana page). With
# at most 10 items of at most 300 characters every judgement ends as valid JSON.
GRAMMAR_MAX_ITEMS = 10
GRAMMAR_MAX_STRING = 300
# A reason is the longest part of a judgement (54% of the characters of the first Solana
# judgements, most of them cut at 300: the 0.5B model restates the claim); 160 characters say
# why, and the shorter output makes a judged case ~15-20% quicker.
GRAMMAR_MAX_REASON = 160


class JudgeOutputError(RuntimeError):
    """The judge's output did not match the metric's schema after every retry."""


Complete = Callable[[str, "type[BaseModel] | None", int], str]


class Judge(DeepEvalBaseLLM):
    """Schema-constrained, cached, retried judgements from one completion backend.

    `complete(prompt, schema, attempt)` returns the raw text; `fingerprint` names the model and
    its sampling so that the cache never serves another judge's output.
    """

    def __init__(self, name: str, fingerprint: str, complete: Complete,
                 cache: JudgeCache | None = None, retries: int = 2, summary_reasons: bool = True):
        self.model_name = name
        self.summary_reasons = summary_reasons  # read by eval.judged: ask for a summary reason
        self.fingerprint = fingerprint
        self._complete = complete
        self.cache = cache
        self.retries = retries
        self.stats = {"calls": 0, "cached": 0, "retried": 0, "failed": 0}
        super().__init__(model=name)

    def load_model(self) -> Any:  # the backend loads itself on first use
        return None

    def get_model_name(self) -> str:
        return self.model_name

    def generate(self, prompt: str, schema: type[BaseModel] | None = None, **_: Any) -> Any:
        """The judgement: a `schema` instance when one is given, else the text."""
        self.stats["calls"] += 1
        key = JudgeCache.key(self.fingerprint, prompt, schema)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.stats["cached"] += 1
                return schema.model_validate_json(cached) if schema else cached
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retried"] += 1
            try:
                text = self._complete(prompt, schema, attempt)
            except ValueError as exc:  # e.g. llama.cpp: prompt longer than the context window
                problem = str(exc)
                break
            if schema is None:
                value: Any = text
            else:
                try:
                    value = schema.model_validate_json(text)
                except ValidationError as exc:
                    problem = f"{exc.error_count()} schema errors, e.g. {exc.errors()[0]['msg']}"
                    log.debug("judge output did not validate (try %d): %r", attempt + 1, text[:200])
                    continue
            if self.cache is not None:
                self.cache.put(key, text)
            return value
        self.stats["failed"] += 1
        name = schema.__name__ if schema else "text"
        raise JudgeOutputError(f"judge {self.model_name}: no valid {name} after "
                               f"{self.retries + 1} tries ({problem})")

    async def a_generate(self, prompt: str, schema: type[BaseModel] | None = None, **kw: Any) -> Any:
        return await asyncio.to_thread(self.generate, prompt, schema)

    def supports_structured_outputs(self) -> bool:
        return True

    def supports_json_mode(self) -> bool:
        return True


_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


def _token_view(array: Any, n: int) -> np.ndarray:
    """The first `n` entries of a `llama_token_data_array` as a numpy record array (no copy)."""
    address = ctypes.cast(array.data, ctypes.c_void_p).value
    raw = (ctypes.c_char * (n * _TOKEN_DATA.itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=_TOKEN_DATA)


def _top_k_first_llama_class() -> type:
    from rag.models.llama_kernels import prepare

    prepare()  # no-op when the answer model already chose the process's kernels
    from llama_cpp import Llama
    from llama_cpp import _internals as internals

    class TopKFirstLlama(Llama):
        """Greedy decoding under a grammar that first checks only the model's top tokens.

        Chain: save all candidates -> top_k -> grammar -> rescue -> grammar -> greedy. When the
        grammar rejects every one of the top K (a position it forces, e.g. the `]` after the
        last item it allows), the rescue step puts all candidates back, and the second grammar
        sampler then picks among the whole vocabulary: slow, but only at those positions, and
        never the abort llama.cpp makes when asked to accept a token the grammar forbids. Both
        grammar samplers accept every token, so their states stay the same.
        """

        def _init_sampler(self, *args: Any, grammar: Any = None, temp: float = 0.8, **kw: Any):
            if grammar is None or temp != 0.0:
                return super()._init_sampler(*args, grammar=grammar, temp=temp, **kw)
            saved: dict[str, Any] = {}

            def save(p: Any) -> None:
                array = p.contents
                saved["n"], saved["data"] = array.size, _token_view(array, array.size).copy()

            def rescue(p: Any) -> None:
                array = p.contents
                if np.isneginf(_token_view(array, array.size)["logit"]).all():
                    _token_view(array, saved["n"])[:] = saved["data"]
                    array.size, array.sorted = saved["n"], False

            sampler = internals.LlamaSampler()
            sampler.add_custom(save)
            sampler.add_top_k(GRAMMAR_TOP_K)
            sampler.add_grammar(self._model, grammar)
            sampler.add_custom(rescue)
            sampler.add_grammar(self._model, grammar)
            sampler.add_greedy()
            return sampler

    return TopKFirstLlama


# llama-cpp-python 0.3.36's schema-to-grammar converter lets a JSON string hold raw control
# characters (`char ::= [^"\\] | ...`), which llama.cpp's own converter excludes. The 0.5B judge
# then wrote raw newlines inside strings, JSON parsers refuse them, and the judgement failed after
# every retry (faithfulness of 2 of 58 Solana cases, 2026-11-30). This is llama.cpp's rule.
# Outputs that validated before contain no control character anywhere, and greedy decoding
# picks the same token from a set that only lost control characters, so they are unchanged
# (the judge's fingerprint and cache stay valid); only a sampled retry may now differ.
JSON_STRING_CHAR = (r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | '
                    r'"u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])')


def json_grammar(schema: Any) -> Any:
    """A llama.cpp grammar for JSON matching `schema`, whose strings hold no raw control
    characters (see JSON_STRING_CHAR)."""
    from rag.models.llama_kernels import prepare

    prepare()  # importing llama_cpp loads its libraries: the kernels are chosen first
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    rules = json_schema_to_gbnf(json.dumps(schema)).splitlines()
    rules = [JSON_STRING_CHAR if rule.startswith("char ::=") else rule for rule in rules]
    return LlamaGrammar.from_string("\n".join(rules), verbose=False)


def bounded(schema: Any, max_string: int = GRAMMAR_MAX_STRING) -> Any:
    """A copy of a JSON schema whose strings and arrays have a maximum length (see above);
    a verdict's `reason` gets the shorter `GRAMMAR_MAX_REASON`."""
    if isinstance(schema, list):
        return [bounded(item, max_string) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: bounded(sub, GRAMMAR_MAX_REASON if name == "reason" else max_string)
                        for name, sub in value.items()}
        else:
            out[key] = bounded(value, max_string)
    if out.get("type") == "string" and "enum" not in out:
        out.setdefault("maxLength", max_string)
    if out.get("type") == "array":
        out.setdefault("maxItems", GRAMMAR_MAX_ITEMS)
    return out


def llama_cpp_completion(model: str = PACKAGED, context_window: int = 4096, max_tokens: int = 768,
                         threads: int = 0, seed: int = 0, temperature: float = 0.0
                         ) -> tuple[Complete, str, str]:
    """(complete, display name, fingerprint) for a local GGUF judged by llama.cpp with grammar."""
    import os

    from rag.llm import LlamaCppChat

    chat = LlamaCppChat(model, context_window=context_window, threads=threads, seed=seed)
    n_threads = threads or os.cpu_count() or 2

    def complete(prompt: str, schema: type[BaseModel] | None, attempt: int) -> str:
        grammar = json_grammar(bounded(schema.model_json_schema())) if schema is not None else None
        model_, lock = _shared_llama(chat.path, context_window, n_threads)
        with lock:
            model_.reset()
            model_.set_seed(seed + attempt)
            out = model_.create_chat_completion(
                messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                temperature=temperature if attempt == 0 else RETRY_TEMPERATURE, seed=seed + attempt,
                grammar=grammar,
            )
        return out["choices"][0]["message"]["content"] or ""

    fingerprint = (gguf_fingerprint(model, chat.path) + f"|ctx={context_window}|max={max_tokens}"
                   f"|seed={seed}|t={temperature}|grammar-top-k={GRAMMAR_TOP_K}"
                   f"|bounds={GRAMMAR_MAX_ITEMS}x{GRAMMAR_MAX_STRING}/{GRAMMAR_MAX_REASON}")
    return complete, chat.name, fingerprint


_LOADED: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}
_LOADING = threading.Lock()


def _shared_llama(path: Path, context_window: int, threads: int) -> tuple[Any, threading.Lock]:
    """One loaded model per file and shape, shared by the judges of all repeats (with its lock:
    a llama.cpp context serves one call at a time)."""
    key = (str(path), context_window, threads)
    with _LOADING:
        if key not in _LOADED:
            from rag.models.llama_lifetime import close_at_exit

            model = _top_k_first_llama_class()(model_path=str(path), n_ctx=context_window,
                                               n_threads=threads, verbose=False)
            lock = threading.Lock()
            _LOADED[key] = (close_at_exit(model, lock), lock)
        return _LOADED[key]


def openai_completion(base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                      max_tokens: int = 768, seed: int = 0, temperature: float = 0.0
                      ) -> tuple[Complete, str, str]:
    """(complete, display name, fingerprint) for an OpenAI-compatible endpoint's JSON-schema mode."""
    from rag.llm import OpenAICompatibleChat

    chat = OpenAICompatibleChat(base_url, model, api_key_env, seed=seed)

    def complete(prompt: str, schema: type[BaseModel] | None, attempt: int) -> str:
        extra: dict[str, Any] = {}
        if schema is not None:
            extra["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema.__name__, "schema": schema.model_json_schema()}}
        out = chat.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
            temperature=temperature if attempt == 0 else RETRY_TEMPERATURE, seed=seed + attempt,
            **extra)
        return out.choices[0].message.content or ""

    return (complete, f"{model} @ {base_url}",
            f"openai:{base_url}:{model}|max={max_tokens}|seed={seed}|t={temperature}")


def judge_from_settings(settings: Settings, cache: JudgeCache | None = None,
                        model: str | None = None, repeat: int = 0) -> Judge:
    """The configured judge (`judge_*` settings); `model` overrides `judge_model`.

    `repeat` > 0 gives the same judge sampling at a little temperature with another seed: the
    second and later scorings of `--repeats N`, which measure how much the judge's own noise
    moves a score (repeat 0 is the deterministic one)."""
    s = settings
    name = model or s.judge_model
    seed = s.llm_seed + 1000 * repeat
    temperature = 0.0 if repeat == 0 else RETRY_TEMPERATURE
    if s.judge_backend == "openai":
        complete, display, fingerprint = openai_completion(
            s.judge_base_url, name, s.judge_api_key_env, s.judge_max_tokens, seed, temperature)
    else:
        complete, display, fingerprint = llama_cpp_completion(
            name, s.judge_context_window, s.judge_max_tokens, s.judge_threads, seed, temperature)
    return Judge(display, fingerprint, complete, cache, s.judge_retries, s.judge_summary_reasons)
