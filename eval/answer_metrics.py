"""Answer metrics that need no LLM: containment, token F1, citation validity, decline rates.

Containment and token F1 follow the SQuAD v1.1 evaluation script (lower case, drop punctuation
and the articles a/an/the, split on whitespace). That script is a dozen lines and not packaged
on its own (`evaluate` would bring datasets and a hub client for it), so it is written here.
`[n]` citation marks are removed from the answer first; a case's `answer_aliases` count as
reference answers too (the best one scores). Both are meant for short reference answers: containment of a reference sentence in a
paraphrase is almost never literal, and F1 against a paragraph mostly measures length, so
longer references are not scored (counted and shown in the report).

A declined answer to an answerable question scores 0 on containment and F1 (it is a miss); an
unanswerable question is scored by `decline_rate_unanswerable` only.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable

from eval.datasets import EvalCase
from eval.scoring import CaseResult, Score, metric

# Longest reference (normalised tokens) each metric scores: containment wants an answer span
# ("2 minutes", "80 °C"); F1 still means something for a one-sentence reference.
CONTAINMENT_MAX_TOKENS = 10
F1_MAX_TOKENS = 40
# The LLM is deterministic (temperature 0, a seed) on one machine, but llama.cpp's output can
# change with the CPU's kernels or thread count: allow a few answers in a hundred to change.
ANSWER_TOLERANCE = 0.05
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
CITATION_MARK = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")  # "[2]" and "[1, 3]"


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def contains(answer: str, reference: str) -> float:
    """1.0 when the normalised reference occurs in the normalised answer (on word boundaries),
    or when the reference is one whole number the answer states in the other form ("three" /
    "3", "twenty" / "20"): a reader counts both, and the support check already does
    (`rag.grounding.number_value`)."""
    ref, ans = normalize_answer(reference), normalize_answer(answer)
    if bool(ref) and f" {ref} " in f" {ans} ":
        return 1.0
    return float(_same_number(answer, reference))


def _same_number(answer: str, reference: str) -> bool:
    from rag.grounding import number_value
    from retrievers.text import tokenize

    terms = tokenize(reference)
    value = number_value(terms[0]) if len(terms) == 1 else None
    return value is not None and any(number_value(t) == value for t in tokenize(answer))


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall of the answer against the reference."""
    pred, gold = normalize_answer(answer).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def citation_marks(text: str) -> list[int]:
    """Every number cited in the text, in order ("[1, 3] ... [2]" -> [1, 3, 2])."""
    return [int(n) for group in CITATION_MARK.findall(text) for n in re.split(r"\s*,\s*", group)]


def answer_words(text: str) -> str:
    """The answer without its `[n]` marks (they are not answer words)."""
    return CITATION_MARK.sub(" ", text)


def _short_reference(case: EvalCase, limit: int) -> str | None:
    """Why the case cannot be scored against its reference answer, or None when it can."""
    if not case.answerable:
        return "unanswerable question"
    if not case.reference_answer.strip():
        return "no reference answer"
    if len(normalize_answer(case.reference_answer).split()) > limit:
        return f"reference answer longer than {limit} tokens"
    return None


def _against_reference(case: EvalCase, result: CaseResult, limit: int,
                       compare: Callable[[str, str], float]) -> Score:
    """`compare(answer words, reference)` for a short reference; a declined answer scores 0."""
    why = _short_reference(case, limit)
    if why:
        return Score.skip(why)
    answer = result.answer
    if answer.declined:
        return Score.of(0.0)
    words = answer_words(answer.text)
    return Score.of(max(compare(words, reference) for reference in references(case)))


def references(case: EvalCase) -> list[str]:
    """The reference answer and the aliases a dataset lists for it (MuSiQue's `answer_aliases`:
    "Stanley Hall" for "G. Stanley Hall"); an answer is scored against the best of them, as
    SQuAD's and MuSiQue's own scripts do."""
    aliases = case.extra.get("answer_aliases") or []
    return [case.reference_answer, *(a for a in aliases if isinstance(a, str) and a.strip())]


@metric("answer_containment", "answer", needs_answer=True, tolerance=ANSWER_TOLERANCE)
def answer_containment(case: EvalCase, result: CaseResult) -> Score:
    """the answer contains the (short) reference answer, SQuAD-normalised"""
    return _against_reference(case, result, CONTAINMENT_MAX_TOKENS, contains)


@metric("token_f1", "answer", needs_answer=True, tolerance=ANSWER_TOLERANCE)
def answer_token_f1(case: EvalCase, result: CaseResult) -> Score:
    """SQuAD token F1 of the answer against the (short) reference answer"""
    return _against_reference(case, result, F1_MAX_TOKENS, token_f1)


@metric("citation_validity", "answer", needs_answer=True, tolerance=ANSWER_TOLERANCE)
def citation_validity(case: EvalCase, result: CaseResult) -> Score:
    """share of the answer's [n] marks that name one of its citations"""
    answer = result.answer
    if answer.declined:
        return Score.skip("declined")
    marks = citation_marks(answer.text)
    if not marks:
        return Score.skip("no [n] marks in the answer")
    cited = {c.n for c in answer.citations}
    return Score.of(sum(n in cited for n in marks) / len(marks))


@metric("decline_rate_answerable", "answer", needs_answer=True, higher_is_better=False,
        tolerance=ANSWER_TOLERANCE)
def decline_rate_answerable(case: EvalCase, result: CaseResult) -> Score:
    """declined although the documents hold the answer (lower is better)"""
    if not case.answerable:
        return Score.skip("unanswerable question")
    return Score.of(float(result.answer.declined))


@metric("decline_rate_unanswerable", "answer", needs_answer=True, tolerance=ANSWER_TOLERANCE)
def decline_rate_unanswerable(case: EvalCase, result: CaseResult) -> Score:
    """declined a question the documents do not answer (higher is better)"""
    if case.answerable:
        return Score.skip("answerable question")
    return Score.of(float(result.answer.declined))
