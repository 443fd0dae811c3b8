"""The system prompt stays in llama.cpp's cache across questions without changing any answer."""

from __future__ import annotations

from rag.generation import Citation, build_messages

TEA = Citation(1, "t", "tea.md", None, None, None,
               "Steep green tea for two minutes in water at 80 degrees.")
LAMP = Citation(1, "l", "lamp.txt", None, None, None,
                "The harbour lamp is visible for 18 nautical miles on a clear night.")


def test_an_answer_does_not_depend_on_the_question_asked_before(llm):
    tea = build_messages("How long should green tea steep?", [TEA])
    lamp = build_messages("How far away is the lamp visible?", [LAMP])
    llm.llama.reset()
    lamp_first = llm.chat(lamp, 16)
    tea_answer = llm.chat(tea, 16)
    assert "two minutes" in tea_answer or "2 minutes" in tea_answer
    lamp_after_tea = llm.chat(lamp, 16)
    assert lamp_after_tea == lamp_first
    assert llm.chat(tea, 16) == tea_answer


def test_the_system_prefix_is_what_stays_cached(llm):
    lamp = build_messages("How far away is the lamp visible?", [LAMP])
    llm.chat(lamp, 4)
    prefix = llm._prefix_tokens(lamp)
    assert 20 < len(prefix) < llm.count_tokens(lamp[0]["content"]) + 20
    assert list(llm.llama.input_ids[: len(prefix)]) == prefix
    # Without a system message nothing is shared: the cache starts empty.
    assert llm._prefix_tokens(lamp[1:]) == []
