"""`decline_uncited_names`: an answer whose cited sources mention none of the question's names,
while a served source does, was drawn from a passage about something else; it is withdrawn like
an unsupported answer (and asked once more with `answer_retry_withdrawn`)."""

from __future__ import annotations

import re

from rag.grounding import uncited_names
from tests.conftest import sharing_parts

LAMP = ("Harbor L-200 signal lamp: owner's manual. The Harbor L-200 carries a 3-year warranty.",
        "docs/harbor_lamp_manual.txt")
TEA = ("Steep green tea for 2 minutes. Japanese sencha can be steeped a second time.",
       "docs/tea_brewing_guide.md")
QUESTION = "How long is the warranty of the Harbor L-200?"


def test_an_answer_citing_only_a_source_about_something_else_is_flagged():
    assert uncited_names(QUESTION, [LAMP, TEA], cited=[TEA]) == ("harbor", "l", "200")
    assert uncited_names(QUESTION, [LAMP, TEA], cited=[LAMP]) == ()
    assert uncited_names(QUESTION, [LAMP, TEA], cited=[TEA, LAMP]) == ()  # one holder is enough


def test_a_file_name_holds_a_name_and_nothing_to_check_changes_nothing():
    about_lamp = ("It carries a 3-year warranty.", "manuals/Harbor L-200.txt")
    assert uncited_names(QUESTION, [about_lamp, TEA], cited=[about_lamp]) == ()
    assert uncited_names(QUESTION, [TEA], cited=[TEA]) == ()  # no served source names it
    assert uncited_names("How long should green tea steep?", [LAMP, TEA], cited=[TEA]) == ()
    assert uncited_names(QUESTION, [LAMP, TEA], cited=[]) == ()  # nothing cited: not this check


class ScriptedCitingTheTeaGuideLLM:
    """The packaged model's answers from the wrong passage depend on the corpus and cannot be
    provoked on demand over the sample, so this wrapper scripts the first answer (or, with
    `always`, every answer): a claim from the tea guide, cited to it, for a question about the
    lamp. Otherwise later prompts (the whole chunks, or "reply with the name, number or phrase
    ...") go to the real model."""

    def __init__(self, real, always: bool = False):
        self.real, self.always, self.prompts = real, always, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def chat(self, messages, max_tokens):
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages, max_tokens):
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if len(self.prompts) > 1 and not self.always:
            yield from self.real.stream_chat(messages, max_tokens)
            return
        tea = re.search(r"Source (\d+) \(tea_brewing_guide", prompt)
        yield f"The warranty lasts for a second steeping of green tea [{tea.group(1)}]."


def test_off_the_answer_from_the_wrong_source_is_kept(sample_rag):
    llm = ScriptedCitingTheTeaGuideLLM(sample_rag.llm, always=True)
    kept = sharing_parts(sample_rag, llm=llm).ask(QUESTION)
    assert not kept.declined and "green tea" in kept.text and len(llm.prompts) == 1


def test_on_it_is_withdrawn_and_declined_when_asking_again_gives_the_same(sample_rag):
    llm = ScriptedCitingTheTeaGuideLLM(sample_rag.llm, always=True)
    declined = sharing_parts(sample_rag, llm=llm, decline_uncited_names=True).ask(QUESTION)
    assert declined.declined and len(llm.prompts) >= 2  # asked again, as a withdrawn answer is
    assert declined.decline_reason == "support: no source it cites mentions harbor, l, 200"


def test_on_the_answer_asked_again_replaces_it_when_it_cites_the_lamp(sample_rag):
    llm = ScriptedCitingTheTeaGuideLLM(sample_rag.llm)
    answer = sharing_parts(sample_rag, llm=llm, decline_uncited_names=True).ask(QUESTION)
    assert not answer.declined and "3" in answer.text and len(llm.prompts) >= 2, answer.text
    assert any("harbor" in c.source for c in answer.citations)
