"""Multi-turn: turn a follow-up ("and the second one?") into a standalone query before retrieval.

Retrieval sees one query, not a conversation, so a follow-up that leans on the history must be
rewritten. The LLM does it when it can; a small model's rewrite is checked by a guard (one
line, question-sized, mostly words from the conversation, not an answer or a refusal) and
replaced by a cheap rewrite when the guard fails: the follow-up, the item it points at when it
names one by position ("the second one" -> the second item of the previous answer's list),
and the previous question's content words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rag.grounding import content_terms

Message = dict[str, str]

# Measured with the packaged 0.5B model: framed as a plain request after the turns, it rewrote
# pronoun follow-ups right ("what made him successful?" -> "What made Ron Conway successful?");
# with a rewriting system prompt it mostly repeated the previous question.
REWRITE_REQUEST = (
    "The user now asks: \"{question}\"\nRewrite the user's new question so that it makes sense "
    "on its own, naming what it refers to. Reply with only the rewritten question."
)

# Words that signal a message leans on what came before.
REFERRING = re.compile(
    r"\b(it|its|they|them|their|that|this|those|these|he|she|him|her|his|one|ones|former|"
    r"latter|first|second|third|fourth|fifth|last|other|same|also|too|else|more)\b|"
    r"^\s*(and|but|so|or|what about|how about|why|then)\b",
    re.I,
)
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4,
            "4th": 4, "fifth": 5, "5th": 5, "last": -1}


@dataclass(frozen=True)
class Rewrite:
    """`question` is what the user asked; `query` is what to search; `prompt` is the question
    the answer model is given; `method` says how the rewrite was made."""

    question: str
    query: str
    method: str  # none | llm | append
    prompt: str = ""


def standalone_query(messages: list[Message], llm: Any = None, mode: str = "llm") -> Rewrite:
    """The query to retrieve with for the last user message, given the turns before it."""
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("chat messages must end with a user message")
    question = messages[-1]["content"].strip()
    history = [m for m in messages[:-1] if m.get("role") in ("user", "assistant")]
    if mode == "off" or not any(m["role"] == "user" for m in history) \
            or not needs_rewrite(question):
        return Rewrite(question, question, "none", question)
    # A position ("the second one") in a listed answer is resolved exactly, without the LLM.
    if mode == "llm" and llm is not None and not pointed_item(question, _last_answer(history)):
        candidate = llm_rewrite(question, history, llm)
        if candidate and guard_rewrite(candidate, question, history):
            return Rewrite(question, candidate, "llm", candidate)
    last_user = next(m["content"] for m in reversed(history) if m["role"] == "user")
    item = pointed_item(question, _last_answer(history))
    resolved = name_item(question, item) if item else question
    prompt = resolved if item and len(content_terms(resolved)) >= 3 \
        else f"{resolved} (a follow-up to: {last_user})"
    return Rewrite(question, append_rewrite(question, history), "append", prompt)


def _last_answer(history: list[Message]) -> str:
    return next((m["content"] for m in reversed(history) if m["role"] == "assistant"), "")


def needs_rewrite(question: str) -> bool:
    """Short or referring messages depend on the history; self-contained ones do not."""
    return bool(REFERRING.search(question)) or len(content_terms(question)) < 3


def llm_rewrite(question: str, history: list[Message], llm: Any, turns: int = 2) -> str:
    lines = []
    for m in history[-turns:]:
        text = " ".join(m["content"].split())[:600]
        label = "Previous question" if m["role"] == "user" else "Previous answer"
        lines.append(f"{label}: {text}")
    prompt = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "\n".join(lines) + "\n\n"
               + REWRITE_REQUEST.format(question=question)}]
    raw = llm.chat(prompt, 64)
    line = raw.strip().splitlines()[0] if raw.strip() else ""
    return re.sub(r"^(rewritten question|standalone question|question)\s*:\s*", "", line,
                  flags=re.I).strip(' "')


def guard_rewrite(candidate: str, question: str, history: list[Message]) -> bool:
    """Accept a rewrite that looks like a question built from the conversation's own words."""
    if len(candidate) < 8 or len(candidate) > 300 or "[" in candidate:
        return False
    lowered = candidate.lower()
    if "could not find" in lowered or lowered.startswith(("i ", "sorry", "as an")):
        return False
    terms = content_terms(candidate)
    if not terms:
        return False
    known = set(content_terms(question))
    for m in history:
        known.update(content_terms(m["content"]))
    from_conversation = sum(t in known for t in terms) / len(terms)
    # It must add something the follow-up did not say, and invent little.
    adds = any(t not in content_terms(question) for t in terms)
    # Repeating the previous question drops the follow-up's point (a small model's habit).
    last_user = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
    repeats = set(terms) <= set(content_terms(last_user))
    # "the second one" must become that item.
    item = pointed_item(question, _last_answer(history))
    names_item = item is None or set(content_terms(item)) <= set(terms)
    return from_conversation >= 0.7 and adds and not repeats and names_item


def append_rewrite(question: str, history: list[Message]) -> str:
    """The follow-up with the list item it points at named, plus the previous question's
    content words."""
    last_user = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
    item = pointed_item(question, _last_answer(history))
    parts = [name_item(question, item) if item else question]
    parts.append(" ".join(w for w in re.findall(r"[\w'-]+", last_user) if content_terms(w)))
    return " ".join(p for p in parts if p).strip()


def name_item(question: str, item: str) -> str:
    """"How hot for the second one?" -> "How hot for black tea?"."""
    pattern = r"\b(?:the\s+)?(?:" + "|".join(ORDINALS) + r")(?:\s+(?:one|ones|item|point))?\b"
    named = re.sub(pattern, item, question, count=1, flags=re.I)
    return named if named != question else f"{question} ({item})"


def pointed_item(question: str, answer: str) -> str | None:
    """For "the second one", the second item of a list in `answer` (numbered, bulleted, or
    "A, B and C"); None when the question names no position or the answer has no list."""
    match = re.search(r"\b(" + "|".join(ORDINALS) + r")\b", question, re.I)
    if not match or not answer:
        return None
    items = list_items(answer)
    if len(items) < 2:
        return None
    position = ORDINALS[match.group(1).lower()]
    index = position - 1 if position > 0 else len(items) - 1
    return items[index] if index < len(items) else None


def list_items(text: str) -> list[str]:
    text = re.sub(r"\[\d+\]", "", text)
    lines = [re.sub(r"^\s*(?:\d+[.)]|[-*•])\s+", "", ln).strip()
             for ln in text.splitlines() if re.match(r"^\s*(?:\d+[.)]|[-*•])\s+", ln)]
    if len(lines) >= 2:
        return lines
    inline = re.findall(r"(?:^|\s)\(?\d+[.)]\s*([^,;.()]+?)(?=\s*(?:,|;|\.|\(?\d+[.)]|$))", text)
    if len(inline) >= 2:
        return [i.strip() for i in inline]
    # "A, B, and C" / "A and B": the longest such run in a sentence.
    best: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        body = re.sub(r"^.*?\b(?:are|is|were|was|:)\s+", "", sentence.rstrip(".!?"), count=1)
        pieces = [p.strip() for p in re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", body)
                  if p.strip()]
        if len(pieces) >= 2 and all(len(p.split()) <= 6 for p in pieces) and len(pieces) > len(best):
            best = pieces
    return best
