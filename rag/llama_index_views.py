"""llama-index views of a `RAG`: LLM adapters both ways, a retriever, a query and a chat engine.

- `ChatBackendLLM` makes the packaged GGUF (`LlamaCppChat`) or an OpenAI-compatible endpoint
  (`OpenAICompatibleChat`) a llama-index `LLM`, so llama-index pipelines can use them.
- `LlamaIndexChat` goes the other way: any llama-index `LLM` a caller passes as `llm=` becomes
  the answer model (`RAG.open(dir, llm=Ollama(...))`).
- `RAGRetriever`, `RAGQueryEngine`, `RAGChatEngine` serve llama-index callers from our hybrid
  retriever and cited answers (declining, citation repair and follow-up rewriting included),
  with each citation as a `NodeWithScore` in `source_nodes`.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.base.response.schema import Response, StreamingResponse
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.llms import LLM, CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field, PrivateAttr

from rag.generation import Answer, Citation


# --- LLMs ----------------------------------------------------------------------------------
def _plain(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": str(m.role.value), "content": m.content or ""} for m in messages]


class ChatBackendLLM(CustomLLM):
    """A `rag.llm` chat backend (local GGUF or OpenAI-compatible) as a llama-index `LLM`."""

    max_tokens: int = Field(default=384, description="Most tokens generated per call.")
    _backend: Any = PrivateAttr()

    def __init__(self, backend: Any, max_tokens: int = 384, **kwargs: Any):
        super().__init__(max_tokens=max_tokens, **kwargs)
        self._backend = backend

    @classmethod
    def class_name(cls) -> str:
        return "rag_chat_backend_llm"

    @property
    def backend(self) -> Any:
        return self._backend

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self._backend.context_window,
                           num_output=self.max_tokens, is_chat_model=True,
                           model_name=self._backend.name)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._backend.chat(_plain(messages), kwargs.get("max_tokens", self.max_tokens))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for delta in self._backend.stream_chat(_plain(messages),
                                                   kwargs.get("max_tokens", self.max_tokens)):
                text += delta
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
                                   delta=delta)
        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = self._backend.chat([{"role": "user", "content": prompt}],
                                  kwargs.get("max_tokens", self.max_tokens))
        return CompletionResponse(text=text)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for delta in self._backend.stream_chat([{"role": "user", "content": prompt}],
                                                   kwargs.get("max_tokens", self.max_tokens)):
                text += delta
                yield CompletionResponse(text=text, delta=delta)
        return gen()


def as_llama_index_llm(backend: Any, max_tokens: int = 384) -> LLM:
    """The answer model as a llama-index `LLM` (a llama-index LLM is returned as is)."""
    if isinstance(backend, LlamaIndexChat):
        return backend.llm
    if isinstance(backend, LLM):
        return backend
    return ChatBackendLLM(backend, max_tokens=max_tokens)


class LlamaIndexChat:
    """Any llama-index `LLM` as the answer model (`chat`, `stream_chat`, `count_tokens`)."""

    def __init__(self, llm: LLM):
        if not isinstance(llm, LLM):
            raise TypeError(f"llm must be a rag.llm backend or a llama-index LLM, not {type(llm)}")
        self.llm = llm
        meta = llm.metadata
        self.context_window = int(meta.context_window or 4096)
        self.name = meta.model_name or type(llm).__name__

    def count_tokens(self, text: str) -> int:
        # llama-index's default tokenizer (tiktoken) downloads its vocabulary: estimate instead.
        return max(1, len(text) // 4)

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        response = self.llm.chat([ChatMessage(role=m["role"], content=m["content"])
                                  for m in messages], max_tokens=max_tokens)
        return response.message.content or ""

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        for part in self.llm.stream_chat([ChatMessage(role=m["role"], content=m["content"])
                                          for m in messages], max_tokens=max_tokens):
            if part.delta:
                yield part.delta


# --- retrieval and answers -----------------------------------------------------------------
def node_for(citation_or_hit: Any) -> NodeWithScore:
    """A retrieved chunk or a citation as a llama-index node (metadata says where it is from)."""
    if isinstance(citation_or_hit, Citation):
        c = citation_or_hit
        meta = {"source": c.source, "page": c.page, "start": c.start, "end": c.end,
                "section": c.section, "n": c.n}
        return NodeWithScore(node=TextNode(id_=c.chunk_id, text=c.text, metadata=meta),
                             score=c.score)
    chunk = citation_or_hit.chunk
    meta = {"source": chunk.source, "page": chunk.page, "start": chunk.start, "end": chunk.end,
            "section": chunk.section, "file_type": chunk.file_type}
    return NodeWithScore(node=TextNode(id_=chunk.chunk_id, text=chunk.text, metadata=meta),
                         score=citation_or_hit.score)


class RAGRetriever(BaseRetriever):
    """Our hybrid (BM25 + Milvus) retriever behind llama-index's retriever interface."""

    def __init__(self, rag: Any, top_k: int | None = None, mode: str | None = None,
                 filters: Any = None):
        super().__init__()
        self.rag, self.top_k, self.mode, self.filters = rag, top_k, mode, filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.rag.retrieve(query_bundle.query_str, self.top_k, self.mode,
                                 filters=self.filters)
        return [node_for(h) for h in hits]


def _response(answer: Answer) -> Response:
    return Response(response=answer.text, source_nodes=[node_for(c) for c in answer.citations],
                    metadata={"answer": answer, "declined": answer.declined,
                              "contexts": [c.to_json() for c in answer.contexts]})


class RAGQueryEngine(CustomQueryEngine):
    """`query(q)` -> a `Response` whose `source_nodes` are the cited chunks, in `[n]` order."""

    rag: Any
    top_k: int | None = None
    streaming: bool = False
    filters: Any = None

    def __init__(self, rag: Any, **kwargs: Any):
        super().__init__(rag=rag, **kwargs)

    def custom_query(self, query_str: str) -> Response | StreamingResponse:
        if not self.streaming:
            return _response(self.rag.ask(query_str, self.top_k, filters=self.filters))
        stream = self.rag.stream(query_str, self.top_k, filters=self.filters)
        return StreamingResponse(response_gen=iter(stream),
                                 source_nodes=[node_for(c) for c in stream.contexts],
                                 metadata={"stream": stream})


class RAGChatEngine(BaseChatEngine):
    """A chat engine over `RAG.chat`: keeps the turns, rewrites follow-ups, cites sources."""

    def __init__(self, rag: Any, top_k: int | None = None, filters: Any = None):
        self.rag, self.top_k, self.filters = rag, top_k, filters
        self._history: list[ChatMessage] = []

    @property
    def chat_history(self) -> list[ChatMessage]:
        return list(self._history)

    def reset(self) -> None:
        self._history = []

    def _messages(self, message: str, chat_history: list[ChatMessage] | None) -> list[dict]:
        if chat_history is not None:
            self._history = list(chat_history)
        return [*_plain(self._history), {"role": "user", "content": message}]

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None
             ) -> AgentChatResponse:
        answer = self.rag.chat(self._messages(message, chat_history), self.top_k,
                               filters=self.filters)
        self._remember(message, answer.text)
        return AgentChatResponse(response=answer.text,
                                 source_nodes=[node_for(c) for c in answer.citations],
                                 metadata={"answer": answer, "query": answer.query})

    def stream_chat(self, message: str, chat_history: list[ChatMessage] | None = None
                    ) -> StreamingAgentChatResponse:
        stream = self.rag.stream_chat(self._messages(message, chat_history), self.top_k,
                                      filters=self.filters)

        def gen() -> ChatResponseGen:
            text = ""
            for delta in stream:
                text += delta
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
                                   delta=delta)
            self._remember(message, stream.answer.text)

        return StreamingAgentChatResponse(
            chat_stream=gen(), source_nodes=[node_for(c) for c in stream.contexts],
            is_writing_to_memory=False,
        )

    async def achat(self, message: str, chat_history: list[ChatMessage] | None = None
                    ) -> AgentChatResponse:
        return self.chat(message, chat_history)

    async def astream_chat(self, message: str, chat_history: list[ChatMessage] | None = None
                           ) -> StreamingAgentChatResponse:
        return self.stream_chat(message, chat_history)

    def _remember(self, message: str, reply: str) -> None:
        self._history += [ChatMessage(role=MessageRole.USER, content=message),
                          ChatMessage(role=MessageRole.ASSISTANT, content=reply)]
