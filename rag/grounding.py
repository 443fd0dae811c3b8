"""Should we answer at all? Evidence checks that let the system decline instead of guessing.

A 0.5B model asked about something the sources do not hold invents an answer ("mercury boils at
95 °C" over a tea guide), and no prompt wording stopped it reliably. So declining is decided
outside the model, twice:

1. before generation, from retrieval evidence: how many of the question's content terms the
   retrieved contexts contain (`coverage`) and the best dense cosine (`dense_top`). When they
   are weak the LLM is not called at all (fast, and nothing to hallucinate from), unless a
   cross-encoder, asked only then, scores a context high (`decline_gate = "evidence+rerank"`,
   `rag.answering`): MiniLM gives a one-line question and the chunk that answers it a low
   cosine, which declined one short factual question in ten; and when no whole context scores
   high, its best score over the contexts' single sentences (`"evidence+rerank+sentences"`, the
   default): a 256-token chunk dilutes the one sentence that answers a far-phrased question;
2. after generation, from the answer itself: the share of the answer's content terms that
   appear in some context (`support`), and, with `decline_uncited_names`, whether the contexts
   it cites mention any of the question's names (`uncited_names`). An answer made of words the
   sources never use is replaced by the refusal (asked once more first:
   `answer_retry_withdrawn`, rag.answering). A
   number counts as stated in digits or in words ("20" / "twenty"): the word forms come from
   num2words rather than a table typed in here.

Terms are the BM25 tokenizer's (lowercase, stop words out, stemmed), so "boiling" and "boils"
match. A name the question asks about counts as present when a context's text or its file's
name holds it: a chunk of `roberta.pdf` is about RoBERTa even where it only says "we"; and, with
`decline_names_in_documents` (on), when the context's whole document holds it: a question quoting
an essay's title is about that essay though the answering paragraph does not repeat the title;
and, with `decline_names_in_corpus` (on), when any chunk of the index holds it: in a corpus of
one short file per entity (Wikipedia paragraphs) a multi-hop question names the entity of a hop
whose file was not served; a name that only counts whole only as a whole there ("Progressive
Labour Party", "MT-Bench", whose parts the corpus holds apart). The
thresholds are settings (`decline_min_dense`, `decline_rescue_rerank`,
`decline_rescue_sentence`), chosen
leave-one-dataset-out over the dev sets by `benchmarks/tune_decline.py` (README "Choosing
quality settings").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Sequence

from retrievers.names import FRAMING, named_terms, names_held_by, source_terms, whole_names
from retrievers.phrases import folded, phrase_patterns, quoted_phrases
from retrievers.text import tokenize

@dataclass(frozen=True)
class Evidence:
    """How well the retrieved contexts match the question (all in [0, 1])."""

    coverage: float  # share of the question's content terms found in the contexts
    dense_top: float | None  # best cosine similarity among the contexts (None: no dense side)
    terms: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()  # names/numbers in the question no context contains

    def weak(self, min_coverage: float, min_dense: float) -> bool:
        """Too little evidence to answer from.

        Off-topic: the best cosine is under `min_dense`. Or few of the question's words occur
        in the contexts while the cosine is only modest (under `min_dense + 0.15`), which is
        how a question about a named thing the corpus never mentions looks. With no dense
        scores (bm25-only retrieval) coverage alone decides.
        """
        return bool(self.why_weak(min_coverage, min_dense))

    def why_weak(self, min_coverage: float, min_dense: float) -> str:
        """Why the evidence is too weak to answer from, in words ("" when it is not)."""
        if self.missing_names:
            return f"no source mentions {', '.join(self.missing_names)}"
        low_coverage = f"few of the question's terms are in the sources ({self.coverage:.0%})"
        if self.dense_top is None:
            return low_coverage if self.coverage < min_coverage else ""
        if self.dense_top < min_dense:
            return f"no source is close to the question (best similarity {self.dense_top:.2f})"
        if self.coverage < min_coverage and self.dense_top < min_dense + 0.15:
            return low_coverage
        return ""


def content_terms(text: str) -> list[str]:
    """Stemmed content terms, framing words removed, order kept, no duplicates."""
    return list(dict.fromkeys(t for t in tokenize(text)
                              if t not in FRAMING and (len(t) > 1 or t.isdigit())))


def retrieval_evidence(question: str, texts: Sequence[str], dense_scores: Iterable[float],
                       sources: Sequence[str] = (),
                       documents: Callable[[], Iterable[str]] | None = None,
                       corpus: Callable[[Sequence[str]], set[str]] | None = None,
                       corpus_phrases: Callable[[Sequence[str]], set[str]] | None = None,
                       rare_words: Sequence[str] = ()) -> Evidence:
    """Coverage of the question's terms by the union of `texts`, and the best dense score.

    `sources` (the contexts' file paths) vouch for names only: a paper's chunks rarely repeat
    its title's name, and its file name often is that name. `documents`, when given, returns
    the terms of the contexts' whole documents, which vouch for names too (asked only when a
    name is missing): a question that quotes an essay's title ("In 'Filters that Fight Back',
    ...") is about that essay even where the served chunk does not repeat the title. `corpus`,
    when given, says which of the names still missing some chunk of the whole index holds; with
    `corpus_phrases` (which of some phrases a chunk holds word for word), a term of a name that
    only counts whole (`whole_names`) is vouched for only by the whole name. `rare_words`
    (`decline_rare_words`: words English rarely uses, where the question's casing marks no
    names) count as names here, and only here: "what is tiktok?" names tiktok."""
    terms = content_terms(question)
    seen: set[str] = set()
    for text in texts:
        seen.update(tokenize(text))
    missing = tuple(t for t in terms if t not in seen)
    coverage = 1.0 if not terms else 1 - len(missing) / len(terms)
    dense_top = max((float(s) for s in dense_scores), default=None)
    named = seen | source_terms(sources)
    asked = list(dict.fromkeys([*named_terms(question),
                                *(t for w in rare_words for t in tokenize(w) if t not in FRAMING)]))
    names = tuple(n for n in asked if n not in named)
    if names and documents is not None:
        whole = set(documents())
        names = tuple(n for n in names if n not in whole)
    if names and corpus is not None:
        held = corpus(names)
        if corpus_phrases is not None:
            held = _held_as_whole_names(question, names, held, corpus_phrases)
        names = tuple(n for n in names if n not in held)
    return Evidence(coverage, dense_top, tuple(terms), missing, names)


def _held_as_whole_names(question: str, names: Sequence[str], held: set[str],
                         corpus_phrases: Callable[[Sequence[str]], set[str]]) -> set[str]:
    """`held` (the names some chunk holds as a term) with the terms of the question's
    `whole_names` replaced by whether the corpus holds the whole name: "Progressive Labour Party"
    is not vouched for by "progressive" in some other chunk, nor "MT-Bench" by "bench"."""
    runs = {run: {t for t in tokenize(run) if t not in FRAMING} for run in whole_names(question)}
    in_runs = set().union(*runs.values()) if runs else set()
    asked = [run for run, terms in runs.items() if terms & set(names)]
    whole = corpus_phrases(asked) if asked else set()
    return {n for n in held if n not in in_runs} | {n for run in whole for n in runs[run]}


def quoted_anchor(question: str, documents: Callable[[], Iterable[str]]) -> str | None:
    """The first phrase the question quotes that one of `documents` (texts, e.g. the chunks of
    the served contexts' documents) holds word for word, else None. Such a phrase says which
    document the question is about, which MiniLM's cosine of a long, detailed question to the
    passage that answers it does not (`decline_quoted_anchor`, rag.answering)."""
    phrases = quoted_phrases(question)
    if not phrases:
        return None
    texts = [folded(t) for t in documents()]
    for phrase, pattern in zip(phrases, phrase_patterns(phrases)):
        if any(pattern.search(t) for t in texts):
            return folded(phrase)
    return None


def uncited_names(question: str, served: Sequence[tuple[str, str]],
                  cited: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The question's names some served context holds, when no cited context holds any of
    them; () otherwise (also when nothing is cited or the question names nothing).

    `served` and `cited` are (text, file path) pairs; a context holds a name when its text or
    its file's name does, as the name check before generation counts it. An answer drawn from a
    paragraph about something else ("Peter Appleyard's first wife was Olga Havlová [2]", [2]
    being about another man) cites no context that mentions what was asked about
    (`decline_uncited_names`)."""
    names = named_terms(question)
    if not names or not cited or any(names_held_by(*context, names) for context in cited):
        return ()
    in_served = set().union(*(names_held_by(*context, names) for context in served))
    return tuple(n for n in names if n in in_served)


def _prose(answer: str) -> str:
    """The answer without layout: citation marks, source numbers and list numbers are not
    claims ("[4]", "according to source 1", "2. ...")."""
    return re.sub(r"\[\d+(?:\s*,\s*\d+)*\]|^\s*\d{1,2}[.)]\s|\bsources?\s+\d+(?:\s*(?:,|and)\s*\d+)*",
                  " ", answer, flags=re.M | re.I)


def restates_question(answer: str, question: str) -> bool:
    """True when every content term of the answer is already in the question.

    A small model often turns the question into a statement and stops ("The palliative care
    nurse made a list of the biggest regrets of the dying [1]."): nothing in it answers, though
    the sources name her. An answer with no content terms at all is not counted ("Yes.")."""
    terms = content_terms(_prose(answer))
    return bool(terms) and set(terms) <= set(content_terms(question))


# Number words that are mostly not numbers: "one of the", "at first", "a second": a source holding
# them must not vouch for an answer's "1 year" or "2 seconds".
AMBIGUOUS_NUMBER_WORDS = {"zero", "zeroth", "one", "first", "second"}


@lru_cache(maxsize=1)
def _number_words() -> dict[str, int]:
    """Stemmed one-word numbers and their values ("twenti" -> 20, "thirteenth" -> 13, "hundr"
    -> 100), generated by num2words (a well-kept library) rather than typed in; the ambiguous
    ones (`AMBIGUOUS_NUMBER_WORDS`) left out."""
    from num2words import num2words

    words: dict[str, int] = {}
    for value in [*range(0, 101), 1000, 10**6, 10**9]:
        for form in ("cardinal", "ordinal"):
            spelled = num2words(value, to=form)
            if spelled in AMBIGUOUS_NUMBER_WORDS:
                continue
            # "one hundred" -> "hundred": the word alone states the number in prose
            tokens = tokenize(spelled.replace("one ", ""))
            if len(tokens) == 1:
                words.setdefault(tokens[0], value)
    return words


def number_value(term: str) -> int | None:
    """The value of a term that states a whole number ("20", "13th", "twenti", "thirteenth")."""
    digits = re.fullmatch(r"(\d+)(?:st|nd|rd|th)?", term)
    if digits:
        return int(digits.group(1))
    return _number_words().get(term)


def answer_support(answer: str, texts: Sequence[str], question: str = "") -> float:
    """Share of the answer's content terms that occur in the contexts (1.0 when it has none).

    Terms the answer merely repeats from the question are left out: echoing "mercury" from
    "what is the boiling point of mercury?" is not evidence either way. A number counts as
    stated whether a source writes it in digits or in words ("20" where the essay says
    "twenty", "13" for "one thirteenth").
    """
    asked = set(content_terms(question))
    terms = [t for t in content_terms(_prose(answer)) if t not in asked]
    if not terms:
        return 1.0
    seen: set[str] = set()
    for text in texts:
        seen.update(tokenize(text))
    numbers = {v for v in map(number_value, seen) if v is not None}

    def stated(term: str) -> bool:
        return term in seen or number_value(term) in numbers

    if any(any(ch.isdigit() for ch in t) and not stated(t) for t in terms):
        return 0.0  # a number no source states ("95 °C", "in 2009") is the typical invention
    return sum(map(stated, terms)) / len(terms)
