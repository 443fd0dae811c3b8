"""The regression suite as pytest, for teams that gate with `pytest` (slow: out of the default run).

    pytest -m slow tests/eval/test_regression_suite.py

For each dev set with a committed baseline (`eval/baselines/dev_sets.json`): the shared ones and
multi-hop MuSiQue, whose folder `eval.corpus_files` writes from the repository; its
documents are indexed once per session (or `RAG_EVAL_INDEX_<NAME>` names a ready index, e.g.
`RAG_EVAL_INDEX_PAUL_GRAHAM=/tmp/pg_index`), the suite runs, and the test fails naming every
metric that fell below its baseline by more than its tolerance: the check `rag eval
--baseline` makes, with the same code. Then DeepEval's own `assert_test` checks the first
`RAG_EVAL_CASES` answers (default 2) with faithfulness and answer relevancy at threshold
`RAG_EVAL_THRESHOLD` (default 0.5), through the project's judge and its cache. A judge that
`rag eval judge-check` has not found reliable (the packaged ones are under its 0.7 bar: see the
README) cannot fail a build one answer at a time: those checks then run as expected failures
(xfail, not strict), reported but not gating; the baseline gate is the one to trust.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT.parent / "shared" / "data" / "qa"
BASELINE = ROOT / "eval" / "baselines" / "dev_sets.json"
MUSIQUE = ROOT / "eval" / "corpora" / "musique_dev.jsonl"
DEV_SETS = {  # name -> (its questions, the documents they are about: a glob under QA/name or a JSONL corpus)
    "paul_graham": (QA / "paul_graham" / "normalized.jsonl", "essays/*.txt"),
    "blockchain_solana": (QA / "blockchain_solana" / "normalized.jsonl", "source_files/*.pdf"),
    "multihop_dev_musique": (ROOT / "eval" / "questions" / "multihop_dev_musique.jsonl", MUSIQUE),
}
GATED = [name for name in DEV_SETS
         if name in json.loads(BASELINE.read_text())["datasets"]]


@pytest.fixture(scope="session")
def dev_index(tmp_path_factory, embedder):
    """`dev_index(name)`: the index of a dev set's documents, built once per session."""
    from rag.api import RAG

    built: dict[str, Path] = {}

    def documents(name: str) -> list[Path]:
        from eval.corpus_files import write_corpus

        source = DEV_SETS[name][1]
        if isinstance(source, Path):  # a corpus kept as JSONL: write its folder first
            folder = tmp_path_factory.mktemp(f"docs_{name}")
            write_corpus(source, folder)
            return [folder]
        return sorted((QA / name).glob(source))

    def index_of(name: str) -> Path:
        ready = os.environ.get(f"RAG_EVAL_INDEX_{name.upper()}")
        if ready:
            return Path(ready)
        if name not in built:
            folder = tmp_path_factory.mktemp(f"index_{name}")
            with RAG.open(folder, embedder=embedder) as rag:
                results = rag.ingest(documents(name))
            assert not [r for r in results if r.error], "a dev-set document failed to ingest"
            built[name] = folder
        return built[name]

    return index_of


@pytest.mark.parametrize("name", GATED)
def test_the_dev_set_holds_its_committed_baseline(name, dev_index, embedder):
    from eval.baseline import compare, read_baseline
    from eval.datasets import load_dataset
    from eval.runner import run_eval
    from rag.api import RAG

    dataset = load_dataset(DEV_SETS[name][0])
    entry = read_baseline(BASELINE)["datasets"][name]
    with RAG.open(dev_index(name), embedder=embedder) as rag:
        run = run_eval(rag, dataset, answers=entry["options"]["answers"], progress=False)
    comparison = compare(run, BASELINE)
    regressed = ", ".join(f"{d.name} {d.value} < {d.baseline}" for d in comparison.regressions)
    assert comparison.ok, f"{name}: regressed against {BASELINE.name}: {regressed}"


def _first_cases(name: str) -> list:
    from eval.datasets import load_dataset

    cases = [c for c in load_dataset(DEV_SETS[name][0]).cases if c.answerable]
    return cases[: int(os.environ.get("RAG_EVAL_CASES", "2"))]


@pytest.fixture(scope="session")
def judge():
    from eval.cache import JudgeCache, default_cache_path
    from eval.judge import judge_from_settings
    from rag.config import load_settings

    return judge_from_settings(load_settings(), JudgeCache(default_cache_path()))


@pytest.mark.parametrize("name, case", [(n, c) for n in GATED for c in _first_cases(n)],
                         ids=lambda value: getattr(value, "id", value))
def test_each_answer_passes_deepeval_assert_test(name, case, dev_index, embedder, llm, judge,
                                                 request):
    from deepeval import assert_test
    from deepeval.metrics import AnswerRelevancyMetric, FaithfulnessMetric
    from deepeval.test_case import LLMTestCase

    from eval.judge_check import verdict_for
    from rag.api import RAG

    verdict = verdict_for(judge.cache.path, judge.fingerprint)["reliable"]
    if verdict is not True:  # a judge that judge-check did not pass cannot fail a build per answer
        state = "never checked" if verdict is None else "under judge-check's 0.7 bar"
        request.applymarker(pytest.mark.xfail(reason=f"judge {judge.get_model_name()} is {state}",
                                              strict=False))

    threshold = float(os.environ.get("RAG_EVAL_THRESHOLD", "0.5"))
    with RAG.open(dev_index(name), embedder=embedder, llm=llm) as rag:
        answer = rag.ask(case.question)
    if answer.declined:
        pytest.fail(f"{case.id}: declined an answerable question: {case.question!r}")
    test_case = LLMTestCase(input=case.question, actual_output=answer.text,
                            retrieval_context=[c.text for c in answer.contexts],
                            expected_output=case.reference_answer or None)
    metrics = [FaithfulnessMetric(threshold=threshold, model=judge, async_mode=False,
                                  include_reason=judge.summary_reasons),
               AnswerRelevancyMetric(threshold=threshold, model=judge, async_mode=False,
                                     include_reason=judge.summary_reasons)]
    assert_test(test_case, metrics, run_async=False)
