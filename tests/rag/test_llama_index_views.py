"""llama-index callers get our retriever, cited answers, chat and a tool, with the real model."""

import json
import re

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM
from llama_index.core.schema import NodeWithScore

GREEN_TEA = "How long should green tea steep?"


def test_packaged_model_is_a_llama_index_llm(sample_rag):
    llm = sample_rag.as_llm()
    assert isinstance(llm, LLM) and llm.metadata.is_chat_model
    assert llm.metadata.context_window == 4096
    reply = llm.chat([ChatMessage(role="user", content="Reply with the word: yes")], max_tokens=8)
    assert "yes" in reply.message.content.lower()
    pieces = [r.delta for r in llm.stream_chat([ChatMessage(role="user", content="Count: 1, 2, 3")],
                                               max_tokens=12)]
    assert len(pieces) > 1


def test_any_llama_index_llm_can_be_the_answer_model(sample_rag, embedder):
    """A caller's llama-index LLM object (here our adapter of the real model) answers."""
    from rag.api import RAG

    caller_llm = sample_rag.as_llm()
    rag = RAG(sample_rag.settings, llm=caller_llm, embedder=sample_rag.embedder,
              index=sample_rag.index, retriever=sample_rag.retriever)
    answer = rag.ask(GREEN_TEA)
    assert type(rag.llm).__name__ == "LlamaIndexChat"
    assert "2 minutes" in answer.text and answer.citations


def test_retriever_view_returns_nodes_with_their_sources(sample_rag):
    nodes = sample_rag.as_retriever(top_k=2).retrieve(GREEN_TEA)
    assert len(nodes) == 2 and all(isinstance(n, NodeWithScore) for n in nodes)
    assert nodes[0].node.metadata["source"].endswith("tea_brewing_guide.md")
    assert nodes[0].node.node_id == sample_rag.retrieve(GREEN_TEA, 1)[0].chunk.chunk_id


def test_query_engine_answers_with_cited_source_nodes(sample_rag):
    response = sample_rag.as_query_engine().query(GREEN_TEA)
    assert "2 minutes" in str(response)
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", str(response))}
    assert cited == {n.node.metadata["n"] for n in response.source_nodes} != set()


def test_chat_engine_understands_a_follow_up(sample_rag):
    engine = sample_rag.as_chat_engine()
    first = engine.chat("Which teas does the guide cover?")
    assert first.source_nodes
    history = [ChatMessage(role="user", content="Which teas does the guide cover?"),
               ChatMessage(role="assistant", content="Green tea, black tea and oolong [1].")]
    reply = engine.stream_chat("How hot should the water be for the second one?",
                               chat_history=history)
    text = "".join(reply.response_gen)
    assert "95" in text, text
    assert len(engine.chat_history) == 4


def test_tool_for_agents_has_a_json_schema_and_answers(sample_rag):
    from rag.tools import call_tool, tool_schema

    schema = tool_schema()
    json.dumps(schema)  # plain JSON
    assert schema["type"] == "function"
    assert schema["function"]["parameters"]["required"] == ["question"]
    tool = sample_rag.as_tool()
    assert tool.metadata.name == schema["function"]["name"]
    result = tool.call(question="What does the Harbor L-200 warranty cover?")
    assert not result.raw_output["declined"]
    assert any("harbor_lamp_manual" in c["source"] for c in result.raw_output["citations"])
    declined = call_tool(sample_rag, '{"question": "Who won the 2018 FIFA World Cup?"}')
    assert declined["declined"] and declined["citations"] == []
