"""The judge: schema-constrained output that parses, retries then a counted failure, the
judgement cache, counterfactuals for judge-check, and one real judged metric through
`rag eval` with the packaged model (the CI smoke eval: cache-free, then cached)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from eval.judge import Judge, JudgeCache, JudgeOutputError
from eval.judge_check import JudgeCheck, PairResult, counterfactual


class Verdict(BaseModel):
    verdict: str
    score: float


class ScriptedCompletion:
    """A stand-in backend that returns prepared outputs in turn (the retry and cache logic is
    what is tested here; the real model is tested below)."""

    def __init__(self, *outputs: str):
        self.outputs = list(outputs)
        self.calls = 0

    def __call__(self, prompt, schema, attempt):
        self.calls += 1
        return self.outputs.pop(0)


def test_a_malformed_judgement_is_retried_then_cached(tmp_path):
    backend = ScriptedCompletion('{"verdict": "yes"', '{"verdict": "yes", "score": 0.5}')
    judge = Judge("scripted", "fp-1", backend, JudgeCache(tmp_path / "c.sqlite"), retries=2)
    assert judge.generate("is it?", schema=Verdict) == Verdict(verdict="yes", score=0.5)
    assert judge.stats == {"calls": 1, "cached": 0, "retried": 1, "failed": 0}
    assert judge.generate("is it?", schema=Verdict).score == 0.5  # from the cache
    assert backend.calls == 2 and judge.stats["cached"] == 1
    other = Judge("other", "fp-2", ScriptedCompletion('{"verdict": "no", "score": 0}'),
                  JudgeCache(tmp_path / "c.sqlite"))
    assert other.generate("is it?", schema=Verdict).verdict == "no"  # another judge, not cached


def test_a_judgement_that_never_parses_fails_loudly(tmp_path):
    judge = Judge("scripted", "fp", ScriptedCompletion("nope", "{}", "[]"), retries=2)
    with pytest.raises(JudgeOutputError, match="no valid Verdict after 3 tries"):
        judge.generate("is it?", schema=Verdict)
    assert judge.stats["failed"] == 1


class SchemaScriptedCompletion:
    """A stand-in backend that answers each DeepEval schema with a prepared JSON object, by
    the schema's fields; it records which schemas were asked for."""

    def __init__(self, **by_field: dict):
        self.by_field = by_field
        self.asked: list[str] = []

    def __call__(self, prompt, schema, attempt):
        field = next(iter(schema.model_fields))
        self.asked.append(field)
        return json.dumps(self.by_field[field])


def test_without_summary_reasons_the_reason_is_read_off_the_verdicts():
    from eval.judged import judge_case

    backend = SchemaScriptedCompletion(
        truths={"truths": ["The lamp flashes green every 4 seconds."]},
        claims={"claims": ["It flashes every 4 seconds.", "It is red."]},
        verdicts={"verdicts": [{"verdict": "yes", "reason": "stated"},
                               {"verdict": "no", "reason": "the context says green"}]},
        reason={"reason": "a summary"})
    quick = Judge("scripted", "fp", backend, summary_reasons=False)
    judged = judge_case(quick, "How often?", "Every 4 seconds; it is red.",
                        ["The lamp flashes green every 4 seconds."], metrics=("faithfulness",))
    assert judged["faithfulness"].score == pytest.approx(0.5)
    assert judged["faithfulness"].reason == "1 of 2 claims judged yes; no: the context says green"
    assert "reason" not in backend.asked  # no summary call
    precision = judge_case(quick, "How often?", "x", ["lamp text", "tea text"], "Every 4 s.",
                           metrics=("contextual_precision",))["contextual_precision"]
    assert precision.reason == "relevant contexts at ranks 1 of 2" and precision.score == 1.0
    full = Judge("scripted", "fp", backend, summary_reasons=True)
    judged = judge_case(full, "How often?", "Every 4 seconds; it is red.",
                        ["The lamp flashes green every 4 seconds."], metrics=("faithfulness",))
    assert judged["faithfulness"].reason == "a summary" and backend.asked[-1] == "reason"


def test_the_grammar_bounds_lists_strings_and_shorter_reasons():
    from deepeval.metrics.faithfulness.schema import Truths, Verdicts

    from eval.judge import GRAMMAR_MAX_ITEMS, GRAMMAR_MAX_REASON, GRAMMAR_MAX_STRING, bounded

    truths = bounded(Truths.model_json_schema())["properties"]["truths"]
    assert truths["maxItems"] == GRAMMAR_MAX_ITEMS
    assert truths["items"]["maxLength"] == GRAMMAR_MAX_STRING
    verdict = bounded(Verdicts.model_json_schema())["$defs"]["FaithfulnessVerdict"]["properties"]
    assert verdict["reason"]["anyOf"][0]["maxLength"] == GRAMMAR_MAX_REASON < GRAMMAR_MAX_STRING
    assert "maxLength" not in verdict["verdict"]  # an enum needs no bound


@pytest.mark.parametrize("answer, kind, changed", [
    ("Green tea steeps for 2 minutes.", "number", "Green tea steeps for 5 minutes."),
    ("It was founded in 1961 by order.", "number", "It was founded in 3923 by order."),
    ("The lamp was designed by Marta Ilves in the harbour.", "name", "The lamp was designed by Harbor in the harbour."),
    ("Rich people and nerds are needed.", "negation", "Rich people and nerds are not needed."),
])
def test_counterfactuals_change_one_fact_deterministically(answer, kind, changed):
    assert counterfactual(answer, ["The Harbor lamp manual."]) == (changed, kind)
    assert counterfactual(answer, ["The Harbor lamp manual."]) == (changed, kind)


def test_judge_check_share_and_auc():
    check = JudgeCheck("j", "fp", "d", [PairResult("a", "number", 1.0, 0.5, ""),
                                         PairResult("b", "name", 0.5, 0.5, ""),
                                         PairResult("c", "negation", 0.9, 1.0, ""),
                                         PairResult("d", "number", None, 0.2, "", "failed")])
    assert check.true_above == pytest.approx(1 / 3) and not check.reliable
    # true {1, .5, .9} vs false {.5, .5, 1}: 1 -> 2 wins + a tie, .5 -> 2 ties, .9 -> 2 wins
    assert check.auc == pytest.approx((2.5 + 1 + 2) / 9)
    assert check.summary()["failed"] == 1


CASES = [
    {"id": "green", "question": "How long should green tea steep?",
     "reference_answer": "Green tea should steep for 2 minutes.",
     "reference_contexts": ["steep green tea for 2 minutes"]},
    {"id": "lamp", "question": "How often does the Harbor L-200 flash green out of the box?",
     "reference_answer": "Every 4 seconds.",
     "reference_contexts": ["Out of the box the lamp flashes green every 4 seconds."]},
]


def test_rag_eval_scores_faithfulness_with_the_packaged_judge_then_from_the_cache(
        tmp_path, embedder, llm, capsys, no_network):
    """The smoke eval CI runs: one case, counted metrics plus one judged metric, a fresh
    judgement cache; then the same run again answers every judgement from the cache. Offline:
    DeepEval's telemetry never tries the network."""
    import shutil
    from pathlib import Path

    from eval.cli import main
    from rag.api import RAG

    sample = Path(__file__).resolve().parents[2] / "rag" / "sample"
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt"):
        shutil.copy(sample / name, docs / name)
    with RAG.open(tmp_path / "index", embedder=embedder) as rag:
        rag.ingest([docs])
    dataset = tmp_path / "smoke.jsonl"
    dataset.write_text(json.dumps(CASES[1]) + "\n")  # one case: a judged metric costs minutes
    cache = tmp_path / "judgements.sqlite"
    argv = ["run", str(dataset), "--index", str(tmp_path / "index"), "--judged", "faithfulness",
            "--judge-cache", str(cache), "--report", str(tmp_path / "report"), "--quiet"]

    def open_rag(index_dir, **settings):
        return RAG.open(index_dir, embedder=embedder, llm=llm, **settings)

    assert main(argv, open_rag=open_rag) == 0
    first = json.loads((tmp_path / "report" / "report.json").read_text())
    faithfulness = first["aggregates"]["faithfulness"]
    assert (faithfulness["scored"], faithfulness["failed"]) == (1, 0), faithfulness
    assert 0.0 <= faithfulness["value"] <= 1.0
    assert all(c["scores"]["faithfulness"]["reason"] for c in first["cases"])
    assert first["fingerprints"]["judge"]["reliable"] is None  # never checked: said so
    counts = {k: first["fingerprints"]["judge"][k] for k in ("calls", "cached", "retried", "failed")}
    assert counts["calls"] >= 3 and counts["cached"] == 0 and counts["failed"] == 0, counts
    printed = capsys.readouterr().out
    assert "unvalidated" in printed
    assert f"judge calls: {counts['calls']} (0 from the cache)" in printed
    stored = len(JudgeCache(cache))
    assert stored >= 3  # truths, claims, verdicts (and a reason)
    assert first["options"]["answers_from_cache"] == 0
    assert main(argv, open_rag=open_rag) == 0
    second = json.loads((tmp_path / "report" / "report.json").read_text())
    assert second["aggregates"]["faithfulness"] == faithfulness
    again = second["fingerprints"]["judge"]
    assert again["cached"] == again["calls"] == counts["calls"], again  # nothing asked anew
    assert len(JudgeCache(cache)) == stored  # nothing new was asked of the judge
    # ... nor of the answer model: the same answer, from the cache, and not timed as generated
    assert second["options"]["answers_from_cache"] == 1
    assert second["cases"][0]["answer"] == first["cases"][0]["answer"]
    assert second["cases"][0]["answer_cached"] and "generate" not in second["cases"][0]["timings_ms"]
    assert "generate" in first["cases"][0]["timings_ms"]
    assert no_network == []


def test_only_a_deterministic_local_answer_model_is_cached():
    from eval.answer_cache import answer_fingerprint
    from rag.llm import LlamaCppChat, OpenAICompatibleChat

    assert answer_fingerprint(LlamaCppChat(temperature=0.7)) is None
    assert answer_fingerprint(OpenAICompatibleChat("http://127.0.0.1:9/v1", "m")) is None
    greedy = answer_fingerprint(LlamaCppChat(seed=3))
    assert greedy.startswith("answer|gguf-sha256:") and "seed=3" in greedy


def test_generate_writes_a_dataset_from_the_index_recordings_included(sample_rag, tmp_path):
    """Three questions from the sample index, one per file type (md, txt and the speech
    recording's transcript), each marked generated with its chunk as reference context; the
    file loads as a dataset and each question finds its own chunk."""
    from eval.datasets import load_dataset
    from eval.generate import generate_cases, write_jsonl
    from eval.judge import JudgeCache, judge_from_settings

    judge = judge_from_settings(sample_rag.settings, JudgeCache(tmp_path / "c.sqlite"))
    rows, skipped = generate_cases(sample_rag, judge, n=3, progress=False)
    assert not skipped and len(rows) == 3
    assert {r["file_type"] for r in rows} == {"md", "txt", "mp3"}
    dataset = load_dataset(write_jsonl(rows, tmp_path / "generated.jsonl"))
    assert all(c.generated and c.question.endswith("?") for c in dataset.cases)
    for row in rows:
        chunk_id = row["id"].removeprefix("gen-")
        assert row["reference_contexts"] == [sample_rag.index.chunks([chunk_id])[chunk_id].text]
    found = sum(any(h.chunk.chunk_id == r["id"].removeprefix("gen-")
                    for h in sample_rag.retrieve(r["question"], top_k=5)) for r in rows)
    assert found >= 2, rows


def test_the_judge_grammar_keeps_raw_control_characters_out_of_json_strings():
    """llama-cpp-python's own schema grammar lets a string hold a raw newline, which no JSON
    parser accepts: the 0.5B judge did that on 2 of 58 Solana cases and the judgement failed
    after every retry. Pushed hard towards newlines, the judge's grammar still gives JSON."""
    from deepeval.metrics.faithfulness.schema import Truths
    from llama_cpp.llama_grammar import LlamaGrammar

    from eval.judge import bounded, json_grammar
    from rag.llm import LlamaCppChat

    llama = LlamaCppChat(context_window=512, threads=2).llama
    schema = bounded(Truths.model_json_schema())
    newline = llama.tokenize(b"\n", add_bos=False, special=False)[0]

    def write(grammar) -> str:
        llama.reset()
        out = llama.create_chat_completion(
            messages=[{"role": "user", "content": "List two facts about tea as JSON."}],
            max_tokens=40, temperature=0.0, seed=0, grammar=grammar, logit_bias={newline: 30.0})
        return out["choices"][0]["message"]["content"]

    stock = write(LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False))
    assert "\n" in stock  # the bias works: the converter's grammar lets the newline in
    ours = write(json_grammar(schema))
    assert Truths.model_validate_json(ours).truths, ours


def test_the_judge_reads_the_answer_without_its_citation_marks():
    from eval.judged import judged_text

    assert judged_text("He bought a TRS-80 in about 1980 [1].") == "He bought a TRS-80 in about 1980."
    assert judged_text("Blocks [1, 3]; hashes [2]\n- Merkle trees [4]") == "Blocks; hashes\n- Merkle trees"
    assert judged_text("It grew 67.3% [2] (e.g. in 2021) [1]!") == "It grew 67.3% (e.g. in 2021)!"
