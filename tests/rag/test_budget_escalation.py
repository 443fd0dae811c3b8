"""A short prompt first (the context budget), the whole chunks when the model then finds no
answer: the budget must cost no answers, and a user never sees the refusal it replaces."""

from __future__ import annotations

import pytest

from rag.answering import _refusal_opening
from rag.generation import NOT_FOUND

GREEN_TEA = "How long should green tea steep, and how hot should the water be?"


@pytest.mark.parametrize("text, verdict", [
    ("I", "maybe"), ("I could not", "maybe"), (NOT_FOUND, "refusal"),
    ("I could not find the answer in the", "refusal"),
    ("The sources do not contain the answer.", "refusal"),
    ("The", "maybe"), ("The lamp", "other"), ("Green tea steeps", "other"), ("In 1887", "other"),
])
def test_the_start_of_a_refusal_is_told_from_an_answer(text, verdict):
    assert _refusal_opening(text) == verdict


def test_a_budget_with_no_evidence_escalates_to_the_whole_chunks(sample_rag, monkeypatch):
    # A 1-token budget shows the model (almost) nothing of the sources: it refuses, and the
    # whole chunks are then asked, which hold the answer.
    monkeypatch.setattr(sample_rag.settings, "context_budget_tokens", 1)
    stream = sample_rag.stream("Can sencha be steeped a second time, and for how long?")
    deltas = list(stream)
    answer = stream.answer
    assert stream.escalated
    assert not answer.declined and "30 seconds" in answer.text
    assert "".join(deltas) == answer.text  # the refusal was never shown
    assert "could not find" not in "".join(deltas).lower()


def test_a_budget_that_holds_the_answer_is_not_asked_twice(sample_rag, monkeypatch):
    monkeypatch.setattr(sample_rag.settings, "context_budget_tokens", 250)
    stream = sample_rag.stream(GREEN_TEA)
    answer = stream.answer
    assert not stream.escalated and not answer.declined and "2 minutes" in answer.text


def test_without_a_budget_nothing_is_held_back(sample_rag, monkeypatch):
    monkeypatch.setattr(sample_rag.settings, "context_budget_tokens", 0)
    stream = sample_rag.stream(GREEN_TEA)
    assert stream.fallback_messages is None
    assert not stream.answer.declined and not stream.escalated


def test_an_unsupported_answer_from_the_short_prompt_is_replaced_by_the_whole_chunks_answer(
        sample_rag, monkeypatch):
    # At 12 tokens the model sees too little and states a warranty the sources do not give;
    # the support check catches it and the whole-chunks answer replaces it.
    monkeypatch.setattr(sample_rag.settings, "context_budget_tokens", 12)
    stream = sample_rag.stream("How long is the warranty of the Harbor lamp?")
    shown = "".join(stream)
    answer = stream.answer
    assert stream.escalated and shown != answer.text
    assert not answer.declined and "3-year" in answer.text
