"""One answer as a stream: decline early on weak evidence, stream cited text, check support at the end.

`RAG.ask` is this stream consumed to the end, so streamed and non-streamed answers are the
same text.

With a context budget (`context_budget_tokens`), the model first reads only the best sentences
of the retrieved chunks (a short prompt: the first word comes ~4x sooner on 2 cores). When it
then says it found no answer, the question is asked again over the whole chunks before
declining, so the short prompt costs no answers. The start of the first attempt is held back
while it still reads like that refusal, so a user never sees a refusal that is then replaced.
When instead its (already shown) answer fails the support check, the whole-chunks answer is
worked out and replaces it as `answer.text`, as a withdrawn answer is replaced. An answer that
only restates the question ("The palliative care nurse made a list of ... [1].") is asked once
more for the name, number or phrase itself (`answer_retry_restated`), and replaced the same way;
when the answer still restates it, the sources' sentence the cross-encoder finds most relevant is
quoted instead (`answer_quote_restated`), passing over sentences that restate it too.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator, Sequence

from rag.config import RERANK_GATES
from rag.context_budget import distinct_sentences, split_sentences
from rag.generation import (CITATION, NOT_FOUND, Answer, Citation, CitationResolver, ask_directly,
                            is_refusal, resolve_citations)
from rag.grounding import (Evidence, answer_support, quoted_anchor, restates_question,
                           retrieval_evidence, uncited_names)
from rag.telemetry import FIRST_TOKEN_ATTR, STAGE_ATTR


QUOTED_OPENING = "The sources say: "  # before a quoted sentence that replaces a restatement

REFUSAL_OPENINGS = (NOT_FOUND.lower(), "the sources do not contain the answer",
                    "the provided sources do not contain the answer")


def _refusal_opening(text: str) -> str:
    """"refusal" when `text` starts with a refusal, "maybe" while it may still become one,
    "other" once it cannot."""
    start = " ".join(text.lower().split())
    if any(start.startswith(o[:28]) for o in REFUSAL_OPENINGS):
        return "refusal"
    return "maybe" if any(o.startswith(start) for o in REFUSAL_OPENINGS) else "other"



def best_quotable(sentences: Sequence[str], scores: Sequence[float], question: str,
                  skip_restatements: bool = True) -> str | None:
    """The best-scored sentence to quote in place of a restatement, or None. With
    `skip_restatements`, one that itself restates the question is passed over: an essay's byline
    ("Written by Paul Graham") or title line shares the question's words, so the cross-encoder
    scores it high, and quoting it answers nothing (`answer_quote_skips_restatements`)."""
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        if not (skip_restatements and restates_question(sentences[i], question)):
            return sentences[i]
    return None

class AnswerStream:
    """Iterate for text deltas as the model writes them; `.answer` is the final `Answer`.

    The deltas already carry resolved `[n]` marks (invalid ones never appear). If, once
    finished, the answer turns out unsupported by the contexts, `answer.text` replaces it: the
    refusal (`answer.declined` is True), or, when the model read only the best sentences first
    (`escalated` is True), the answer it gave over the whole chunks; or, when the answer only
    restated the question, the answer asked for directly (`retried` is True) or the most relevant
    source sentence, quoted (`quoted` is True); or, when the answer was unsupported, the answer
    asked for directly (`withdrawn_retried` is True). Show
    `answer.text` as the last word whenever it differs from the streamed text.

        stream = rag.stream("How long should green tea steep?")
        for delta in stream:
            print(delta, end="", flush=True)
        print(stream.answer.citations)
    """

    def __init__(self, question: str, query: str, hits: list, contexts: list[Citation],
                 messages: list[dict[str, str]], llm: Any, settings: Any, started: float,
                 retrieved: float, operation: Any = None,
                 fallback_messages: list[dict[str, str]] | None = None, relevance: Any = None,
                 document_terms: Callable[[list[str]], Iterable[str]] | None = None,
                 document_texts: Callable[[list[str]], Iterable[str]] | None = None,
                 corpus_terms: Callable[[Sequence[str]], set[str]] | None = None,
                 corpus_phrases: Callable[[Sequence[str]], set[str]] | None = None,
                 rare_words: Sequence[str] = (),
                 nothing_because: str | None = None):
        """`nothing_because`: why nothing was retrieved, when filters left nothing to search."""
        self.question, self.query = question, query
        self.nothing_because = nothing_because
        # A cross-encoder (`.scores(query, texts)`) that may overrule a weak-evidence decline
        # (`decline_gate = "evidence+rerank"`, and "evidence+rerank+sentences", which also
        # scores the contexts' single sentences); asked only when the evidence is weak.
        self.relevance = relevance
        self.rerank_top: float | None = None  # its best score over the contexts, when asked
        self.sentence_top: float | None = None  # its best over their sentences, when asked
        self.decline_rerank_s: float | None = None  # seconds the cross-encoder took, when asked
        # The whole-chunks prompt, asked when the budgeted one (`messages`) gets a refusal.
        self.fallback_messages = fallback_messages
        self.escalated = False  # True when the answer came from the fallback prompt
        self.retried = False  # True when a restatement of the question was replaced
        self.withdrawn_retried = False  # True when an unsupported answer was asked again and replaced
        self.quoted = False  # True when a restatement was replaced by a quoted source sentence
        self.quote_s: float | None = None  # seconds the cross-encoder took to pick it
        self.hits, self.contexts, self.messages = hits, contexts, messages
        self.llm, self.settings = llm, settings
        self.started, self.retrieved = started, retrieved
        self.operation = operation  # rag.telemetry.Operation: stage spans go under it
        self.evidence: Evidence = retrieval_evidence(
            query, [c.text for c in contexts],
            [h.scores["dense"] for h in hits if "dense" in h.scores],
            sources=[c.source for c in contexts],
            # `decline_names_in_documents`: the contexts' whole documents vouch for names too
            documents=None if document_terms is None else (
                lambda: document_terms([c.chunk_id for c in contexts])),
            corpus=corpus_terms,  # `decline_names_in_corpus`: the whole index vouches too
            corpus_phrases=corpus_phrases,  # ... a name that only counts whole, whole
            rare_words=rare_words,  # `decline_rare_words`: names a question's casing hides
        )
        # `decline_quoted_anchor`: the chunk texts of the served contexts' whole documents
        self._document_texts = document_texts
        self.anchor: str | None = None  # the quoted phrase that let weak evidence through
        self.support: float | None = None
        self.first_token_s: float | None = None  # seconds from the call to the first delta
        self.tokens = 0  # streamed pieces (one per token for llama.cpp)
        self.generate_s = 0.0  # prompt processing + writing
        self.decode_start = 0.0
        self.decode_tokens_per_s: float | None = None  # writing speed after the first token
        self._attempt_tokens = 0
        self._answer: Answer | None = None
        self._iterator = self._run()

    @cached_property
    def gated(self) -> bool:
        """True when retrieval evidence is too weak to ask the model at all."""
        s = self.settings
        if not self.contexts:
            return True
        if not s.decline or s.decline_gate == "off" or not self.evidence.weak(
                s.decline_min_coverage, s.decline_min_dense):
            return False
        if self.evidence.missing_names and not s.decline_names_rescue:
            return True  # a name no source holds: no score of other things speaks for it
        if (s.decline_quoted_anchor and self._document_texts is not None
                and not self.evidence.missing_names):
            # A phrase the question quotes (a title) that a served document holds word for
            # word says which document it is about: the model is asked, and the support check
            # still judges what it writes.
            self.anchor = quoted_anchor(self.question, lambda: self._document_texts(
                [c.chunk_id for c in self.contexts]))
            if self.anchor is not None:
                return False
        if s.decline_gate in RERANK_GATES and self.relevance is not None:
            span = self._stage("decline_rerank")
            start = time.perf_counter()
            try:
                texts = [c.text for c in self.contexts]
                self.rerank_top = max(self.relevance.scores(self.query, texts))
                if self.rerank_top >= s.decline_rescue_rerank:
                    return False
                if s.decline_gate == "evidence+rerank+sentences":
                    # one sentence that answers, diluted in its chunk, may still score high alone
                    self.sentence_top = max(self._scored_sentences[1], default=None)
                    return self.sentence_top is None or self.sentence_top < s.decline_rescue_sentence
            finally:
                self.decline_rerank_s = time.perf_counter() - start
                if span is not None:
                    span.end()
            return True
        return True

    @cached_property
    def _scored_sentences(self) -> tuple[list[str], list[float]]:
        """The contexts' distinct sentences and the cross-encoder's score of each: asked once,
        for the decline gate's sentence step and for the quote that replaces a restated answer."""
        sentences = distinct_sentences([c.text for c in self.contexts])
        return sentences, (self.relevance.scores(self.query, sentences) if sentences else [])

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    def close(self) -> None:
        """Stop writing now (a no-op once the answer is complete). The local model holds its
        lock while a stream is open, and a stream dropped half-read sits in a reference cycle
        (it holds its own generator) until the garbage collector runs: every later answer
        would wait for it. Callers that may stop early (a Stop button) close it."""
        self._iterator.close()

    @property
    def answer(self) -> Answer:
        """The final answer (consumes the rest of the stream if needed)."""
        for _ in self._iterator:
            pass
        assert self._answer is not None
        return self._answer

    def _stage(self, name: str):
        """A stage span of this answer's operation, started now (None without telemetry)."""
        if self.operation is None:
            return None
        return self.operation.telemetry.tracer.start_span(
            name, context=self.operation.context, attributes={STAGE_ATTR: name})

    def _run(self) -> Iterator[str]:
        try:
            yield from self._answer_stream()
        finally:  # also when the stream is closed half-read: the operation ends either way
            if self.operation is not None:
                self.operation.finish()

    def _answer_stream(self) -> Iterator[str]:
        if self.gated:
            self._mark_first()
            yield NOT_FOUND
            s = self.settings
            why = (self.evidence.why_weak(s.decline_min_coverage, s.decline_min_dense)
                   if self.contexts else self.nothing_because or "nothing was retrieved")
            if self.rerank_top is not None:
                why += (f"; no context scores {s.decline_rescue_rerank:g} with the cross-encoder "
                        f"(best {self.rerank_top:.2f})")
            if self.sentence_top is not None:
                why += (f"; no sentence scores {s.decline_rescue_sentence:g} "
                        f"(best {self.sentence_top:.2f})")
            self._finish(NOT_FOUND, [], declined=True, reason="retrieval: " + why)
            return
        span = self._stage("generate")
        gen_start = time.perf_counter()
        try:
            resolver = CitationResolver(self.contexts)
            hold = self.fallback_messages is not None
            shown = yield from self._generate(self.messages, resolver, hold_refusal=hold)
            if hold and not shown:  # held back and it was a refusal (or nothing)
                self.escalated = True
                resolver = CitationResolver(self.contexts)
                yield from self._generate(self.fallback_messages, resolver, hold_refusal=False)
        finally:
            if span is not None:
                if self.first_token_s is not None:  # the first word shown, as a user waits for it
                    span.set_attribute(FIRST_TOKEN_ATTR,
                                       (self.started + self.first_token_s - gen_start) * 1000)
                span.set_attribute("rag.tokens.completion", self.tokens)
                span.set_attribute("rag.answer.escalated", self.escalated)
                span.end()
        self.generate_s = time.perf_counter() - gen_start
        if self._attempt_tokens > 1:  # writing speed of the attempt that gave the answer
            self.decode_tokens_per_s = ((self._attempt_tokens - 1)
                                        / (time.perf_counter() - self.decode_start))
        text, cited, declined, reason = self._verdict(resolver)
        if declined and reason.startswith("support") and self.fallback_messages is not None \
                and not self.escalated:
            # The short prompt led the model to claims its sources do not hold, and that text
            # was already shown: work out the whole-chunks answer, which replaces it as
            # `answer.text` (the same contract as a withdrawn answer).
            self.escalated = True
            resolver = self._write_unshown(self.fallback_messages, "rag.answer.escalated")
            text, cited, declined, reason = self._verdict(resolver)
        if declined and reason.startswith("support") and self.settings.answer_retry_withdrawn:
            text, cited, declined, reason = self._ask_after_withdrawal(text, cited, reason)
        if not declined and self.settings.answer_retry_restated \
                and restates_question(text, self.question):
            text, cited = self._ask_directly(text, cited)
        if not declined and self.settings.answer_quote_restated \
                and restates_question(text, self.question):
            text, cited = self._quote_best_sentence(text, cited)
        self._finish(text, cited, declined, reason)

    def _quote_best_sentence(self, text: str, cited: list[Citation]) -> tuple[str, list[Citation]]:
        """The sources' sentence the cross-encoder finds most relevant, quoted with its mark, in
        place of an answer that only restates the question (kept when there is no
        cross-encoder). The 0.5B model, asked again, mostly restates again; the sentence that
        answers is usually among the served ones, diluted in its chunk."""
        if self.relevance is None:
            return text, cited
        span = self._stage("quote")
        start = time.perf_counter()
        try:  # already scored when the decline gate read the sentences
            sentences, scores = self._scored_sentences
        finally:
            self.quote_s = time.perf_counter() - start
            if span is not None:
                span.end()
        best = best_quotable(sentences, scores, self.question,
                             self.settings.answer_quote_skips_restatements)
        if best is None:
            return text, cited
        holder = next(c.n for c in reversed(self.contexts) if best in split_sentences(c.text))
        self.quoted = True
        # one line, without the document's own note marks ("1964.[5]": not our citations)
        quote = " ".join(CITATION.sub("", best).split())
        return resolve_citations(f'{QUOTED_OPENING}"{quote}" [{holder}]', self.contexts)

    def _ask_directly(self, text: str, cited: list[Citation]) -> tuple[str, list[Citation]]:
        """Ask again for the answer itself; keep the first answer unless the second says more
        and passes the same checks (a refusal or an unsupported answer would cost an answer)."""
        better = self._asked_again()
        if better is None:
            return text, cited
        self.retried = True
        return better

    def _ask_after_withdrawal(self, text: str, cited: list[Citation], reason: str
                              ) -> tuple[str, list[Citation], bool, str]:
        """Ask once more for the answer itself after the support check withdrew one. A near
        restatement with one word the sources lack ("Rajat Suri took to learn how restaurants
        worked [1]": "took") is withdrawn before the restatement retry could see it; asked
        directly, the model names the job. The new answer counts only when it is not a
        refusal, says more than the question and passes the same support check; otherwise the
        decline stays, with its first reason."""
        better = self._asked_again()
        if better is None:
            return text, cited, True, reason
        self.withdrawn_retried = True
        return (*better, False, "")

    def _asked_again(self) -> tuple[str, list[Citation]] | None:
        """The answer to the direct prompt ("reply with the name, number or phrase ..."), or
        None when it is a refusal, fails the support check or only restates the question (the
        first answer's support figure is then kept)."""
        support = self.support
        messages = self.fallback_messages if self.escalated else self.messages
        resolver = self._write_unshown(ask_directly(messages), "rag.answer.retried")
        again, again_cited, declined, _ = self._verdict(resolver)
        if declined or restates_question(again, self.question):
            self.support = support
            return None
        return again, again_cited

    def _write_unshown(self, messages: list[dict[str, str]], attribute: str) -> CitationResolver:
        """Write a whole answer to `messages` after the stream's text was shown (it replaces
        that text as `answer.text`), in a "generate" span marked with `attribute`."""
        resolver = CitationResolver(self.contexts)
        span = self._stage("generate")
        try:
            for _ in self._generate(messages, resolver, hold_refusal=False):
                pass
        finally:
            if span is not None:
                span.set_attribute(attribute, True)
                span.end()
        return resolver

    def _verdict(self, resolver: CitationResolver) -> tuple[str, list[Citation], bool, str]:
        """The final text and citations, and whether (and why) the answer is declined."""
        text, cited = resolver.text, resolver.cited()
        declined = not text or is_refusal(text)
        reason = "model: it found no answer in the sources" if declined else ""
        if not declined and self.settings.decline:
            span = self._stage("ground")
            self.support = answer_support(text, [c.text for c in self.contexts], self.query)
            if span is not None:
                span.end()
            if self.support < self.settings.decline_min_support:
                declined = True
                reason = (f"support: {self.support:.0%} of the answer's terms are in the sources "
                          f"(under {self.settings.decline_min_support:.0%})")
            elif self.settings.decline_uncited_names:
                names = uncited_names(self.query, [(c.text, c.source) for c in self.contexts],
                                      [(c.text, c.source) for c in cited])
                if names:
                    declined = True
                    reason = f"support: no source it cites mentions {', '.join(names)}"
        if declined:
            text, cited = NOT_FOUND, []
        return text, cited, declined, reason

    def _generate(self, messages: list[dict[str, str]], resolver: CitationResolver, *,
                  hold_refusal: bool) -> Iterator[str]:
        """Stream one prompt's answer through `resolver`; returns whether any text was shown.

        `hold_refusal`: keep the text back while it may still be the start of a refusal; stop
        writing as soon as it is one. Nothing is then shown and False comes back (the caller
        asks the fallback prompt)."""
        pending, holding, shown = "", hold_refusal, False
        self._attempt_tokens = 0
        pieces = self.llm.stream_chat(messages, self.settings.llm_max_tokens)
        try:
            for piece in pieces:
                if self._attempt_tokens == 0:
                    self.decode_start = time.perf_counter()
                self._attempt_tokens += 1
                self.tokens += 1
                out = resolver.feed(piece)
                if resolver.looped:  # it repeated a sentence: the rest would be the loop
                    break
                if not holding:
                    if out:
                        self._mark_first()
                        shown = True
                        yield out
                    continue
                pending += out
                opening = _refusal_opening(pending)
                if opening == "refusal":
                    return False
                if opening == "other":
                    holding = False
                    self._mark_first()
                    shown = True
                    yield pending
                    pending = ""
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # stop the model writing (it holds its lock while a stream is open)
        pending += resolver.finish()
        if holding and (not resolver.text or is_refusal(resolver.text)):
            return False
        if pending:
            self._mark_first()
            shown = True
            yield pending
        return shown

    def _mark_first(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.started

    def _finish(self, text: str, cited: list[Citation], declined: bool, reason: str = "") -> None:
        done = time.perf_counter()
        rerank_s = self.decline_rerank_s or 0.0
        quote_s = self.quote_s or 0.0
        timings = {"retrieve": (self.retrieved - self.started) * 1000,
                   "generate": (done - self.retrieved - rerank_s - quote_s) * 1000,
                   "total": (done - self.started) * 1000}
        if self.decline_rerank_s is not None:  # the decline gate asked the cross-encoder
            timings["decline_rerank"] = rerank_s * 1000
        if self.quote_s is not None:  # a restatement's replacement was picked
            timings["quote"] = quote_s * 1000
        if self.first_token_s is not None and not self.gated:
            timings["first_token"] = self.first_token_s * 1000  # what a user waits for
        stages: dict[str, float] = {}
        counts: dict[str, int] = {}
        if self.operation is not None:
            record = self.operation.finish()
            if record is not None:
                described = record.to_json()
                stages, counts = described["stages_ms"], described["counts"]
        self._answer = Answer(text, cited, self.contexts, timings, declined, self.query,
                              decline_reason=reason, stages=stages, counts=counts)
