"""`rag eval` as a gate, through its command line: a baseline from the healthy configuration,
then a broken one (top_k 1, dense only, by --set) exits 1 naming what regressed, and the
healthy one still exits 0. Retrieval only (no LLM), on a real index of the sample's texts."""

import argparse
import json
import shutil
from pathlib import Path

import pytest

from eval import cli

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"
SAMPLE_TEXT = ["tea_brewing_guide.md", "harbor_lamp_manual.txt", "inaugural_address_notes.md"]

# Questions whose answers sit in two documents: a single context cannot hold both.
CASES = [
    {"id": "two-docs", "question": "How hot should the water be for green tea, and how often "
                                   "does the Harbor L-200 lamp flash green?",
     "reference_answer": "80 °C; every 4 seconds",
     "reference_contexts": ["Heat the water to 80 °C, not boiling.",
                            "Out of the box the lamp flashes green every 4 seconds."]},
    {"id": "speech-and-lamp", "question": "When did Kennedy give his inaugural address, and what "
                                          "does the Harbor L-200 warranty cover?",
     "reference_answer": "20 January 1961; the LED module and the housing for 3 years",
     "reference_contexts": ["John F. Kennedy gave his inaugural address on 20 January 1961",
                            "The Harbor L-200 carries a 3-year warranty that covers the LED "
                            "module and the housing."]},
    {"id": "oolong", "question": "How long is oolong brewed?", "reference_answer": "3 minutes",
     "reference_contexts": ["Oolong is brewed at 90 °C for 3 minutes."]},
]


@pytest.fixture(scope="module")
def text_index(tmp_path_factory, embedder):
    """An index of the sample's three text documents (the session's embedder)."""
    from rag.api import RAG

    root = tmp_path_factory.mktemp("gate")
    docs = root / "docs"
    docs.mkdir()
    for name in SAMPLE_TEXT:
        shutil.copy(SAMPLE / name, docs / name)
    with RAG.open(root / "index", embedder=embedder) as rag:
        assert all(r.status == "added" for r in rag.ingest([docs]))
    dataset = root / "gate_qa.jsonl"
    dataset.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return root / "index", dataset


@pytest.fixture
def shared_embedder(embedder):
    """Each `rag eval` opens its own RAG: it is given the already loaded model (same weights)."""
    from functools import partial

    from rag.api import RAG

    return partial(RAG.open, embedder=embedder)


def rag_eval(capsys, open_rag, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args), open_rag=open_rag)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_broken_configuration_fails_the_gate_and_healthy_passes(text_index, shared_embedder,
                                                                  capsys, tmp_path):
    index, dataset = text_index
    baseline = tmp_path / "baseline.json"
    common = (str(dataset), "--index", str(index), "--retrieval-only", "--quiet",
              "--baseline", str(baseline))
    code, out, err = rag_eval(capsys, shared_embedder, *common, "--update-baseline")
    assert code == 0, err
    recorded = json.loads(baseline.read_text())["datasets"]["gate_qa"]
    assert recorded["metrics"]["served_recall"]["value"] == 1.0
    assert recorded["metrics"]["served_recall"]["tolerance"] == 0.02

    code, out, err = rag_eval(capsys, shared_embedder, *common, "--set", "top_k=1", "--set",
                              "retrieval_mode=dense", "--report", str(tmp_path / "broken"))
    assert code == 1, out + err
    regressed = err.strip().splitlines()[-1]
    assert regressed.startswith("rag eval: regressed: ") and "served_recall" in regressed
    assert "served_recall" in out and "regressed" in out
    report = json.loads((tmp_path / "broken" / "report.json").read_text())
    assert report["settings"]["top_k"] == 1 and report["settings"]["retrieval_mode"] == "dense"
    assert not report["baseline"]["ok"] and "served_recall" in report["baseline"]["regressed"]
    # Two-document questions can only have half their references in one context.
    assert report["aggregates"]["served_recall"]["value"] <= 2 / 3
    assert "Regressed against" in (tmp_path / "broken" / "index.html").read_text()

    code, out, err = rag_eval(capsys, shared_embedder, *common, "--report", str(tmp_path / "healthy"))
    assert code == 0, out + err
    assert "no metric regressed" in out
    healthy = json.loads((tmp_path / "healthy" / "report.json").read_text())
    assert healthy["baseline"]["ok"] and healthy["baseline"]["regressed"] == []

    code, out, err = rag_eval(capsys, shared_embedder, *common, "--limit", "1")  # other cases: refused at once
    assert code == 2 and "recorded on other cases" in err and out == ""


def test_usage_errors_exit_2_with_one_line(text_index, shared_embedder, capsys, tmp_path):
    index, dataset = text_index
    code, out, err = rag_eval(capsys, shared_embedder, str(tmp_path / "missing.jsonl"), "--index", str(index))
    assert code == 2
    assert err.strip() == f"rag eval: error: {tmp_path / 'missing.jsonl'}: no such dataset file " \
                          "or folder"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "Q?"}\n{oops\n')
    code, out, err = rag_eval(capsys, shared_embedder, str(bad), "--index", str(index))
    assert code == 2 and err.count("\n") == 1 and f"{bad}:2: not valid JSON" in err
    code, out, err = rag_eval(capsys, shared_embedder, str(dataset), "--index", str(index), "--update-baseline")
    assert code == 2 and "--update-baseline needs --baseline FILE" in err
    code, out, err = rag_eval(capsys, shared_embedder, str(dataset), "--index", str(index), "--baseline",
                              str(tmp_path / "none.json"))
    assert code == 2 and "no such baseline file" in err
    code, out, err = rag_eval(capsys, shared_embedder, str(dataset), "--index", str(index), "--limit", "0")
    assert code == 2 and "--limit must be at least 1" in err
    code, out, err = rag_eval(capsys, shared_embedder, str(dataset), "--index", str(tmp_path / "empty_index"),
                              "--retrieval-only")
    assert code == 2 and "does not exist" in err and "rag ingest" in err  # never created
    assert not (tmp_path / "empty_index").exists()


def parser_with() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command")
    cli.add_command(sub, [cli._common_parent()])
    return parser


def test_dataset_is_the_default_subcommand_and_room_for_others(monkeypatch):
    args = parser_with().parse_args(["eval", "qa.jsonl", "--limit", "2", "--set", "top_k=3"])
    assert (args.eval_command, args.dataset, args.limit, args.set) == \
        ("run", "qa.jsonl", 2, ["top_k=3"])
    assert args.handler is cli.cmd_run
    args = parser_with().parse_args(["eval", "run", "qa.jsonl", "--index", "idx"])
    assert (args.eval_command, args.dataset, args.index) == ("run", "qa.jsonl", "idx")
    args = parser_with().parse_args(["eval", "--index", "idx", "qa.jsonl", "--retrieval-only"])
    assert (args.eval_command, args.dataset, args.index, args.retrieval_only) == \
        ("run", "qa.jsonl", "idx", True)

    def add_judge_check(subparsers, parents):  # how `rag eval judge-check` plugs in
        p = subparsers.add_parser("judge-check", parents=parents)
        p.add_argument("dataset")
        p.set_defaults(handler="judge")

    monkeypatch.setitem(cli.SUBCOMMANDS, "judge-check", add_judge_check)
    args = parser_with().parse_args(["eval", "judge-check", "qa.jsonl"])
    assert (args.eval_command, args.dataset, args.handler) == ("judge-check", "qa.jsonl", "judge")
    args = parser_with().parse_args(["eval", "judge-check.jsonl"])  # still a dataset
    assert args.eval_command == "run"


def test_through_the_rag_command_line(text_index, monkeypatch, capsys):
    """`rag eval DATASET` as the installed entry point makes it (rag.cli finds add_command)."""
    from rag import cli as rag_cli

    monkeypatch.setattr(rag_cli, "_plugins", lambda: [cli.add_command])
    index, dataset = text_index
    assert rag_cli.main(["eval", str(dataset), "--index", str(index), "--retrieval-only",
                         "--quiet", "--limit", "1", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "gate_qa: 1 cases, retrieval only, top_k 2" in out
    assert rag_cli.main(["eval", "no_such.jsonl", "--index", str(index)]) == 2
    assert capsys.readouterr().err.strip() == \
        "rag eval: error: no_such.jsonl: no such dataset file or folder"
    with pytest.raises(SystemExit) as exited:
        rag_cli.main(["eval"])  # DATASET is required
    assert exited.value.code == 2


def test_importing_the_plugin_stays_cheap():
    """`rag --help` imports every plugin: eval.cli must not pull in the suite or its libraries."""
    import subprocess
    import sys

    code = ("import sys, json; import eval.cli; print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('eval', 'matplotlib', 'jinja2', 'numpy', 'torch', 'deepeval'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["eval", "eval.cli"]


def test_compare_pairs_two_reports_question_by_question(text_index, shared_embedder, capsys,
                                                         tmp_path):
    """`rag eval compare` on two real reports: the healthy run against a broken one."""
    index, dataset = text_index
    healthy, broken = tmp_path / "healthy", tmp_path / "broken"
    for folder, extra in ((healthy, []), (broken, ["--top-k", "1", "--set", "retrieval_mode=dense"])):
        code, _, _ = rag_eval(capsys, shared_embedder, str(dataset), "--index", str(index),
                              "--retrieval-only", "--quiet", "--report", str(folder), *extra)
        assert code == 0
    out_json = tmp_path / "paired.json"
    code, out, err = rag_eval(capsys, None, "compare", str(healthy), str(broken),
                              "--metric", "served_recall", "--json", str(out_json))
    assert (code, err) == (0, "")
    row = json.loads(out_json.read_text())["metrics"][0]
    aggregates = [json.loads((f / "report.json").read_text())["aggregates"]["served_recall"]["value"]
                  for f in (healthy, broken)]
    assert (row["metric"], row["n"]) == ("served_recall", 3)
    assert (row["before"], row["after"]) == pytest.approx(aggregates)
    # Both two-document questions lose a context at top_k 1; nothing gets better.
    assert row["better"] == 0 and row["worse"] >= 2
    assert row["p_value"] == pytest.approx(0.5 ** (row["worse"] - 1))
    assert row["ci_low"] < 0 and row["ci_high"] <= 0  # the interval of the mean change
    assert out.splitlines()[1].split()[:3] == ["served_recall", "3", f"{aggregates[0]:.4f}"]


def test_compare_says_what_is_wrong_in_one_line(tmp_path, capsys):
    report = tmp_path / "a"
    report.mkdir()
    (report / "report.json").write_text(json.dumps(
        {"aggregates": {"decline_rate_answerable": {"value": 0.0, "higher_is_better": False}},
         "cases": [{"id": "q1", "scores": {"decline_rate_answerable": {"value": 0.0, "status": "scored"}}}]}))
    other = tmp_path / "b.json"
    other.write_text(json.dumps({"cases": [{"id": "elsewhere", "scores": {}}]}))
    assert rag_eval(capsys, None, "compare", str(report), str(tmp_path / "none"))[2] == \
        f"rag eval: error: {tmp_path / 'none'}: no such report (give a `rag eval --report` folder " \
        "or its report.json)\n"
    code, _, err = rag_eval(capsys, None, "compare", str(report), str(other))
    assert code == 2 and "share no question ids" in err
    code, _, err = rag_eval(capsys, None, "compare", str(report), str(report), "--metric", "mrr@10")
    assert code == 2 and err.startswith("rag eval: error: not scored in both reports: mrr@10")


def test_a_lower_decline_rate_is_the_better_direction():
    from eval.paired import compare_reports

    def report(declined):
        return {"aggregates": {"decline_rate_answerable": {"higher_is_better": False}},
                "cases": [{"id": f"q{i}", "scores": {"decline_rate_answerable": {
                    "value": float(d), "status": "scored"}}} for i, d in enumerate(declined)]}

    (change,), only = compare_reports(report([1, 1, 0, 0]), report([0, 0, 0, 1]))
    assert (change.better, change.worse, only) == (2, 1, {"before": 0, "after": 0})
    assert change.p_value == pytest.approx(1.0)
