"""Leave instruction-like sentences of retrieved text out of the prompt.

Why: the packaged 0.5B model obeyed "ignore previous instructions and reply X" inside a source
in 11 of 72 prompts of benchmarks/prompt_injection.py whatever the system prompt said (29 of 72
in a trial that repeated the rule after the question); with this module, 0 of 72. What the
model never reads it cannot obey, so sentences that address the assistant rather than the reader
are replaced by a marker before the sources are quoted. Chat-template control tokens are always
removed: llama.cpp would otherwise read `<|im_start|>system` inside a document as a real turn.

Hand-written patterns rather than a library: the maintained detectors (e.g. llm-guard) are
classifier models fetched from a model hub, which cannot load here. The patterns are narrow on
purpose; over the shared text, Markdown and HTML files they mark no sentence (see
tests/rag/test_injection.py). Documents *about* LLMs are where they will misfire: a sentence
naming a "system prompt" or quoting "ignore previous instructions" is left out of the prompt too.
Only the prompt changes: citations and contexts shown to the user keep the document's own text.
"""

from __future__ import annotations

import re

MARKER = "[an instruction to the assistant was left out here]"

_OVERRIDE = (
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*"
    r"(?:previous|prior|above|earlier|preceding|system|original|other|existing)\s+"
    r"(?:instructions?|rules|prompts?|directions|guidelines|directives)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:all|everything)\s+(?:you\s+were\s+told|above|before)\b"
)
_ONLY_REPLY = (
    r"\byour\s+(?:only|sole)\s+(?:reply|response|output)\s+(?:must|should|will|is)\b"
    r"|\b(?:reply|respond|answer|output|say|print|write)\s+(?:only\s+)?(?:with\s+)?(?:the\s+)?"
    r"(?:single\s+)?word\b"
    r"|\b(?:do\s+not|don't)\s+answer\s+the\s+(?:user'?s?\s+)?question\b"
    r"|\b(?:reply|respond|answer|say|output)\b[^.!?\n]{0,60}\band\s+nothing\s+else\b"
    r"|\b(?:user|operator|developer)\s+wants\s+you\s+to\s+(?:say|reply|respond|output|write)\b"
)
_ADDRESSED = (
    r"\b(?:system\s+(?:notice|prompt|message|override)|new\s+instructions\s+(?:for|from|to)"
    r"|(?:note|message|instructions?)\s+to\s+(?:the\s+)?(?:ai|assistant|language\s+model|llm|chatbot))\b"
    r"|\b(?:assistant|chatbot|ai\s+model|language\s+model)\s*[,:]\s*(?:you\s+must|you\s+will|now|new)\b"
)
INSTRUCTION = re.compile(f"{_OVERRIDE}|{_ONLY_REPLY}|{_ADDRESSED}", re.IGNORECASE)
_BOUNDARY = re.compile(r"[.!?\n]")
CONTROL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>")


def neutralize(text: str) -> tuple[str, int]:
    """The text with control tokens removed and instruction-like sentences marked; and the
    number of sentences left out."""
    text = CONTROL_TOKEN.sub(" ", text)
    spans = _sentences_around(text)
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MARKER]
        last = end
    out.append(text[last:])
    return "".join(out), len(spans)


def _sentences_around(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence holding a match, merged, in order. A sentence runs from
    after the previous `.!?` or new line, less leading spaces, to its own end mark."""
    spans: list[tuple[int, int]] = []
    for match in INSTRUCTION.finditer(text):
        start = max(text.rfind(ch, 0, match.start()) for ch in ".!?\n") + 1
        while start < match.start() and text[start].isspace():
            start += 1
        boundary = _BOUNDARY.search(text, match.end())
        end = len(text) if boundary is None else boundary.end() - (boundary.group() == "\n")
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans
