"""Metrics without an LLM, against values computed by hand; not-scored cases stay out of means."""

import math

import pytest

from eval.datasets import EvalCase
from eval.latency import latency_aggregates
from eval.metrics import default_metrics, get_metric, is_hit
from eval.runner import _score
from eval.scoring import Aggregate, CaseResult, Metric, Retrieved, Score, aggregate
from rag.generation import Answer, Citation

REFS = ["Steep green tea for 2 minutes at 80 degrees.",
        "The lamp flashes green every 4 seconds."]


def chunks(*texts: str) -> list[Retrieved]:
    return [Retrieved(f"c{i}", "doc", None, 1.0 - i / 10, t) for i, t in enumerate(texts)]


def value(name: str, case: EvalCase, result: CaseResult) -> float | None:
    return get_metric(name).score(case, result).value


def test_hit_rule_is_containment_or_sixty_percent_overlap():
    assert is_hit("Intro. STEEP green   tea for 2 minutes at 80 degrees. More.", REFS[0])
    # 5 of the 9 reference tokens (the shorter text) in the chunk: 56%, below 60%.
    assert not is_hit("green tea 2 minutes 80 and other words here too", REFS[0])
    # 6 of 9: 67%, a hit.
    assert is_hit("steep green tea for 2 minutes and other words entirely", REFS[0])
    assert not is_hit("", REFS[0])


def test_a_reference_copied_with_pdf_ligatures_hits_the_chunk_that_spells_them_out():
    reference = "e\ufb03cient \ufb01ne-tuning of \ufb01lters"  # 2 of its 5 words without ligatures
    assert is_hit("Efficient fine-tuning of filters works.", reference)


def test_ranking_metrics_by_hand():
    case = EvalCase("x", "q", reference_contexts=REFS)
    ranked = chunks("nothing relevant here at all", REFS[0], "x " + REFS[1], REFS[0])
    result = CaseResult(ranked, ranked[:2])
    assert value("hit_rate@5", case, result) == 1.0
    assert value("recall@5", case, result) == 1.0
    assert value("mrr@10", case, result) == 0.5
    # Gains at ranks 2 and 3 (rank 4 hits an already credited reference); ideal: ranks 1, 2.
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert value("ndcg@10", case, result) == pytest.approx(expected)
    assert value("served_recall", case, result) == 0.5  # only the first reference in top 2
    # Cut-offs matter: a ranking whose first hit is at rank 6.
    late = chunks(*["filler text number %d" % i for i in range(5)], REFS[1])
    late_result = CaseResult(late, late[:5])
    assert value("hit_rate@5", case, late_result) == 0.0
    assert value("hit_rate@10", case, late_result) == 1.0
    assert value("recall@10", case, late_result) == 0.5
    assert value("mrr@10", case, late_result) == pytest.approx(1 / 6)


def test_a_case_without_reference_contexts_is_not_scored_and_not_averaged():
    metric = get_metric("recall@5")
    good = EvalCase("a", "q", reference_contexts=[REFS[0]])
    none = EvalCase("b", "q")
    ranked = chunks(REFS[0])
    scores = [metric.score(good, CaseResult(ranked, ranked)),
              metric.score(none, CaseResult(ranked, ranked))]
    assert scores[1].status == "not_scored" and scores[1].value is None
    agg = aggregate(metric, scores)
    assert (agg.value, agg.scored, agg.not_scored, agg.failed) == (1.0, 1, 1, 0)
    assert agg.reasons == {"not_scored: no reference contexts": 1}
    nothing = aggregate(metric, [scores[1]])
    assert nothing.value is None and nothing.scored == 0  # no NaN, no zero


def test_squad_normalisation_containment_and_f1():
    from eval.answer_metrics import contains, normalize_answer, token_f1

    assert normalize_answer("The  Cat, sat on a mat!") == "cat sat on mat"
    assert contains("Steep it for 2 minutes [1].", "2 minutes") == 1.0
    assert contains("Steep it for 12 minutes.", "2 minutes") == 0.0  # word boundaries
    # pred: green tea steeps 2 minutes (5), gold: 2 minutes (2), common 2.
    assert token_f1("Green tea steeps 2 minutes.", "2 minutes") == pytest.approx(2 * 0.4 / 1.4)
    assert token_f1("nothing shared", "2 minutes") == 0.0


def test_a_number_counts_as_contained_in_digits_or_words():
    from eval.answer_metrics import contains

    assert contains("Inference ran across 3 random prompt orderings [1].", "three") == 1.0
    assert contains("He had twenty years of it.", "20") == 1.0
    assert contains("He had 21 years of it.", "twenty") == 0.0
    assert contains("It was one of the first.", "1") == 0.0  # "one" is mostly not a number
    assert contains("It took 12 hours.", "12 hp") == 0.0  # only a bare number is compared


def answer(text: str, cited: list[int], declined: bool = False) -> Answer:
    contexts = [Citation(n, f"c{n}", "doc", None, None, None, "text") for n in (1, 2, 3)]
    return Answer(text, [c for c in contexts if c.n in cited], contexts,
                  {"retrieve": 10.0, "generate": 100.0, "total": 110.0}, declined)


def test_answer_metrics_by_hand():
    short = EvalCase("a", "How long?", reference_answer="2 minutes", reference_contexts=[REFS[0]])
    long_ref = EvalCase("b", "Why?", reference_answer=" ".join(["word"] * 41))
    unanswerable = EvalCase("c", "Capital of Mars?", answerable=False)
    ok = CaseResult([], [], answer("Two, or 2 minutes [1]. Then stop [1, 3].", [1]))
    declined = CaseResult([], [], answer("I could not find the answer.", [], declined=True))

    assert value("answer_containment", short, ok) == 1.0
    # Marks removed: "two or 2 minutes then stop" (6 tokens), 2 shared: P 1/3, R 1, F1 0.5.
    assert value("token_f1", short, ok) == pytest.approx(0.5)
    # Marks [1], [1], [3]: [3] names a context that is not among the citations.
    assert value("citation_validity", short, ok) == pytest.approx(2 / 3)
    assert value("answer_containment", short, declined) == 0.0  # a decline is a miss
    assert value("decline_rate_answerable", short, declined) == 1.0
    assert value("decline_rate_answerable", short, ok) == 0.0
    assert value("decline_rate_unanswerable", unanswerable, declined) == 1.0

    def reason(name, case, result):
        score = get_metric(name).score(case, result)
        assert score.status == "not_scored" and score.value is None
        return score.reason

    assert reason("token_f1", long_ref, ok) == "reference answer longer than 40 tokens"
    assert reason("answer_containment", long_ref, ok) == "reference answer longer than 10 tokens"
    assert reason("token_f1", unanswerable, declined) == "unanswerable question"
    assert reason("citation_validity", short, declined) == "declined"
    assert reason("citation_validity", short,
                  CaseResult([], [], answer("No marks here.", []))) == "no [n] marks in the answer"
    assert reason("decline_rate_unanswerable", short, ok) == "answerable question"
    assert reason("decline_rate_answerable", unanswerable, declined) == "unanswerable question"


def test_an_answer_naming_an_alias_of_the_reference_is_contained():
    case = EvalCase("m", "Who was the first president?", reference_answer="G. Stanley Hall",
                    extra={"answer_aliases": ["Stanley Hall"]})
    alias = CaseResult([], [], answer("Its first president was Stanley Hall [1].", [1]))
    neither = CaseResult([], [], answer("Its first president was William James [1].", [1]))
    assert value("answer_containment", case, alias) == 1.0
    # 6 answer tokens: against the alias P 1/3, R 1 (F1 0.5); against "g stanley hall" 0.44
    assert value("token_f1", case, alias) == pytest.approx(0.5)
    assert value("answer_containment", case, neither) == 0.0
    no_aliases = EvalCase("n", case.question, reference_answer="G. Stanley Hall")
    assert value("answer_containment", no_aliases, alias) == 0.0


def test_retrieval_only_leaves_out_answer_metrics():
    names = {m.name for m in default_metrics(answers=False)}
    assert {"recall@5", "recall@10", "mrr@10", "ndcg@10", "hit_rate@10", "served_recall"} <= names
    assert not names & {"token_f1", "citation_validity", "decline_rate_answerable"}
    assert {"token_f1", "citation_validity"} <= {m.name for m in default_metrics(answers=True)}


def test_a_broken_metric_fails_its_cell_never_nan():
    case = EvalCase("a", "q")
    boom = Metric("boom", "answer", lambda c, r: 1 / 0)
    nan = Metric("nan", "answer", lambda c, r: Score.of(float("nan")))
    assert _score(boom, case, CaseResult([], [])).status == "failed"
    failed = _score(nan, case, CaseResult([], []))
    assert failed.status == "failed" and failed.value is None
    agg = aggregate(nan, [failed, Score.of(0.5)])
    assert (agg.value, agg.failed, agg.scored) == (0.5, 1, 1)


def test_repeats_give_a_spread():
    metric = Metric("judged", "judged", lambda c, r: Score.of(1))
    agg = aggregate(metric, [Score.repeated([1.0, 0.0]), Score.repeated([1.0, 1.0])])
    # Per-repeat means: (1+1)/2 = 1.0 and (0+1)/2 = 0.5; their population sd is 0.25.
    assert agg.value == pytest.approx(0.75) and agg.spread == pytest.approx(0.25)
    assert aggregate(metric, [Score.of(1.0)]).spread is None


def test_latency_percentiles():
    aggs = latency_aggregates([{"retrieve": v, "total": v * 2} for v in (10.0, 20.0, 30.0, 40.0)])
    assert aggs["latency_ms.retrieve.p50"].value == pytest.approx(25.0)
    assert aggs["latency_ms.retrieve.p95"].value == pytest.approx(38.5)
    assert aggs["latency_ms.total.p50"].value == pytest.approx(50.0)
    assert "latency_ms.generate.p50" not in aggs  # no case timed a generation
    assert isinstance(aggs["latency_ms.total.p95"], Aggregate)
    assert aggs["latency_ms.total.p95"].tolerance is None  # reported, not gated
