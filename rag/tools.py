"""The knowledge base as a tool for agents: a llama-index `FunctionTool` and a plain JSON schema.

`tool_schema()` is the OpenAI-style function description (`tools=[tool_schema()]` in a chat
completion request); `call_tool(rag, arguments)` runs a call the model made and returns the
JSON-ready result to send back as the tool message. `as_function_tool(rag)` is the same tool for
llama-index agents. Answers come back with their sources, so the agent can cite them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

TOOL_NAME = "search_documents"
TOOL_DESCRIPTION = (
    "Answer a question from the user's indexed documents and recordings. Returns an answer "
    "with numbered citations [n] and the cited passages (source file, page or time span). "
    "If `declined` is true the documents do not contain the answer: do not guess."
)


class ToolArguments(BaseModel):
    """The tool's parameters (the JSON schema is generated from this model)."""

    question: str = Field(description="A standalone question in natural language.")
    top_k: int | None = Field(default=None, ge=1, le=50,
                              description="How many passages to retrieve (default from settings).")


def tool_schema(name: str = TOOL_NAME) -> dict[str, Any]:
    """An OpenAI-style tool description: `{"type": "function", "function": {...}}`."""
    parameters = {
        "type": "object",
        "properties": {
            "question": {"type": "string",
                         "description": ToolArguments.model_fields["question"].description},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 50,
                      "description": ToolArguments.model_fields["top_k"].description},
        },
        "required": ["question"],
        "additionalProperties": False,
    }
    return {"type": "function",
            "function": {"name": name, "description": TOOL_DESCRIPTION, "parameters": parameters}}


def call_tool(rag: Any, arguments: str | dict[str, Any]) -> dict[str, Any]:
    """Run a tool call (arguments as the model sent them, JSON text or dict); JSON-ready result."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments or "{}")
    args = ToolArguments.model_validate(arguments)
    answer = rag.ask(args.question, top_k=args.top_k)
    return {
        "answer": answer.text,
        "declined": answer.declined,
        "citations": [{"n": c.n, "source": c.source, "page": c.page, "start": c.start,
                       "end": c.end, "text": c.text} for c in answer.citations],
    }


def as_function_tool(rag: Any, name: str = TOOL_NAME):
    """The same tool as a llama-index `FunctionTool` (for `FunctionAgent`, `ReActAgent`, ...)."""
    from llama_index.core.tools import FunctionTool

    def search_documents(question: str, top_k: int | None = None) -> dict[str, Any]:
        return call_tool(rag, {"question": question, "top_k": top_k})

    return FunctionTool.from_defaults(fn=search_documents, name=name,
                                      description=TOOL_DESCRIPTION, fn_schema=ToolArguments)
