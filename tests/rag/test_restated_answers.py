"""An answer that only turns the question into a statement ("The palliative care nurse made a
list of the biggest regrets of the dying [1].") tells the user nothing: it is asked once more for
the name, number or phrase itself (`answer_retry_restated`), and the new answer replaces it only
when it says more. An answer the support check withdraws is asked the same way
(`answer_retry_withdrawn`): a near restatement with one word the sources lack is withdrawn before
the restatement retry could see it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.answering import best_quotable
from rag.generation import ANSWER_DIRECTLY, NOT_FOUND
from rag.grounding import restates_question

GREEN_TEA = "How long should green tea steep?"
RESTATED = "Green tea should steep [1]."
# "for 9 minutes": a number no source states, so the support check withdraws it
UNSUPPORTED = "Green tea should steep for 9 minutes [1]."


@pytest.mark.parametrize("answer, question, restated", [
    ("The palliative care nurse made a list of the biggest regrets of the dying [1].",
     "Which palliative care nurse made a list of the biggest regrets of the dying?", True),
    ("Bronnie Ware made a list of the biggest regrets of the dying [1].",
     "Which palliative care nurse made a list of the biggest regrets of the dying?", False),
    ("According to Source 2, Moore's Law will double every 18 months [2].",
     "According to Graham, what does Moore's Law actually say will double every 18 months?", True),
    ("Intel launched 4K DRAMs in 1975 [1].", "In what year did Intel launch 4K DRAMs?", False),
    ("Yes.", "Can sencha be steeped a second time?", False),  # nothing to restate
])
def test_a_restatement_is_told_from_an_answer(answer, question, restated):
    assert restates_question(answer, question) is restated


# A real batch-k question and served sentences, best cross-encoder score first: the essay's title
# line shares the question's words; only the second says anything the question does not.
LISP = ('In "If Lisp is So Great", Graham likens less popular languages to Jane Austen and '
        "wonders why John Grisham outsells her; which Grisham novel does he quote a sales rank "
        "for, next to Pride and Prejudice?")
LISP_SENTENCES = ["If Lisp is So Great", "Why does John Grisham (King of Torts sales rank, 44) "
                  "outsell Jane Austen (Pride and Prejudice sales rank, 6191)?"]


def test_the_quoted_sentence_is_the_best_one_that_does_not_restate_the_question_too():
    scores = [4.1, 1.2]
    assert best_quotable(LISP_SENTENCES, scores, LISP) == LISP_SENTENCES[1]
    assert best_quotable(LISP_SENTENCES, scores, LISP, skip_restatements=False) == LISP_SENTENCES[0]
    assert best_quotable(LISP_SENTENCES[:1], scores[:1], LISP) is None  # nothing to quote: kept
    assert best_quotable([], [], LISP) is None
    # an essay's byline, for a question that names the author
    byline = ["Written by Paul Graham", "He calls it a potboiler."]
    question = "In Paul Graham's essay on judgements, what kind of novel is written to sell?"
    assert best_quotable(byline, [2.0, 1.0], question) == "He calls it a potboiler."


class ScriptedRestatementFirstLLM:
    """The packaged model's restatements depend on the corpus and cannot be provoked on demand
    over the sample, so this wrapper scripts the first answer (a restatement of the question,
    or `first`) and lets the real model answer the prompt that asks again (unless `again`
    scripts it too)."""

    def __init__(self, real, again: str | None = None, first: str = RESTATED):
        self.real, self.again, self.first = real, again, first
        self.prompts: list[str] = []

    def __getattr__(self, name):  # the real model's token counts, context window, name, ...
        return getattr(self.real, name)

    def chat(self, messages, max_tokens):
        return "".join(self.stream_chat(messages, max_tokens))

    def stream_chat(self, messages, max_tokens):
        self.prompts.append(messages[-1]["content"])
        if not messages[-1]["content"].endswith(ANSWER_DIRECTLY):
            words = self.first.split(" ")
            yield from words[:1] + [" " + w for w in words[1:]]
        elif self.again is not None:
            yield self.again
        else:
            yield from self.real.stream_chat(messages, max_tokens)


def _rag(sample_rag, llm, retry: bool, quote: bool = False, withdrawn: bool = False):
    from rag.api import RAG

    settings = replace(sample_rag.settings, answer_retry_restated=retry,
                       answer_quote_restated=quote, answer_retry_withdrawn=withdrawn)
    return RAG(settings, llm=llm, embedder=sample_rag.embedder, index=sample_rag.index,
               retriever=sample_rag.retriever, reranker=None)


def test_a_restated_answer_is_replaced_by_the_answer_asked_for_directly(sample_rag):
    llm = ScriptedRestatementFirstLLM(sample_rag.llm)
    stream = _rag(sample_rag, llm, retry=True).stream(GREEN_TEA)
    shown = "".join(stream)
    answer = stream.answer
    assert shown.startswith("Green tea should steep")  # what the user saw first
    assert stream.retried and not answer.declined
    assert "minute" in answer.text, answer.text  # the real model, asked directly, says how long
    assert answer.citations and len(llm.prompts) == 2


def test_the_first_answer_stays_when_asking_again_says_no_more(sample_rag):
    for again in ("Green tea should steep.", NOT_FOUND):
        llm = ScriptedRestatementFirstLLM(sample_rag.llm, again=again)
        stream = _rag(sample_rag, llm, retry=True).stream(GREEN_TEA)
        answer = stream.answer
        assert not stream.retried and len(llm.prompts) == 2
        assert answer.text == RESTATED and not answer.declined  # no answer is lost to a refusal


def test_without_the_setting_the_model_is_asked_once(sample_rag):
    llm = ScriptedRestatementFirstLLM(sample_rag.llm)
    stream = _rag(sample_rag, llm, retry=False).stream(GREEN_TEA)
    assert stream.answer.text == RESTATED and not stream.retried and len(llm.prompts) == 1


def test_a_restatement_asking_again_cannot_fix_is_replaced_by_the_source_sentence_that_answers(
        sample_rag):
    """answer_quote_restated: the cross-encoder's best sentence of the served sources, quoted
    with a mark naming the source that holds it."""
    llm = ScriptedRestatementFirstLLM(sample_rag.llm, again="Green tea should steep.")
    stream = _rag(sample_rag, llm, retry=True, quote=True).stream(GREEN_TEA)
    answer = stream.answer
    assert stream.quoted and not stream.retried and not answer.declined
    assert answer.text.startswith('The sources say: "') and "minute" in answer.text, answer.text
    quoted = answer.text.split('"')[1]
    assert [c.n for c in answer.citations] == [int(answer.text.rsplit("[", 1)[1].rstrip("]"))]
    assert quoted in " ".join(answer.citations[0].text.split())  # the cited source holds it
    assert answer.timings["quote"] > 0 and len(llm.prompts) == 2


def test_an_answer_that_says_something_is_never_quoted_over(sample_rag):
    stream = _rag(sample_rag, sample_rag.llm, retry=True, quote=True).stream(GREEN_TEA)
    assert not stream.quoted and "quote" not in stream.answer.timings
    assert not stream.answer.text.startswith("The sources say")


def test_the_command_line_says_why_the_answer_changed(sample_rag, capsys):
    from rag.cli import _print_stream

    _print_stream(_rag(sample_rag, ScriptedRestatementFirstLLM(sample_rag.llm), retry=True)
                  .stream(GREEN_TEA))
    out = capsys.readouterr().out
    assert "(asked again: that only restated the question)" in out and "minute" in out
    _print_stream(_rag(sample_rag, ScriptedRestatementFirstLLM(sample_rag.llm, again=RESTATED),
                       retry=True, quote=True).stream(GREEN_TEA))
    out = capsys.readouterr().out
    assert "(that only restated the question; from the sources instead) The sources say" in out
    _print_stream(_rag(sample_rag, ScriptedRestatementFirstLLM(sample_rag.llm, first=UNSUPPORTED),
                       retry=True, withdrawn=True).stream(GREEN_TEA))
    out = capsys.readouterr().out
    assert "(withdrawn: not supported by the sources; asked again)" in out and "minute" in out


def test_a_withdrawn_answer_is_replaced_by_the_answer_asked_for_directly(sample_rag):
    llm = ScriptedRestatementFirstLLM(sample_rag.llm, first=UNSUPPORTED)
    stream = _rag(sample_rag, llm, retry=True, withdrawn=True).stream(GREEN_TEA)
    answer = stream.answer
    assert stream.withdrawn_retried and not stream.retried and not answer.declined
    assert "minute" in answer.text and "9" not in answer.text, answer.text
    assert answer.citations and llm.prompts[-1].endswith(ANSWER_DIRECTLY)


def test_a_withdrawn_answer_stays_declined_when_asking_again_is_no_better(sample_rag):
    for again in ("Green tea should steep for 12 minutes [1].", NOT_FOUND, "Green tea should steep."):
        llm = ScriptedRestatementFirstLLM(sample_rag.llm, again=again, first=UNSUPPORTED)
        stream = _rag(sample_rag, llm, retry=True, withdrawn=True).stream(GREEN_TEA)
        answer = stream.answer
        assert answer.declined and answer.decline_reason.startswith("support"), again
        assert not stream.withdrawn_retried and llm.prompts[-1].endswith(ANSWER_DIRECTLY)


def test_without_the_setting_a_withdrawn_answer_is_not_asked_again(sample_rag):
    llm = ScriptedRestatementFirstLLM(sample_rag.llm, first=UNSUPPORTED)
    stream = _rag(sample_rag, llm, retry=True, withdrawn=False).stream(GREEN_TEA)
    assert stream.answer.declined and not stream.withdrawn_retried
    assert not any(p.endswith(ANSWER_DIRECTLY) for p in llm.prompts)
