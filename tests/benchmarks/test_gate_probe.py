"""`benchmarks/gate_probe.py compare`: what a change did to the served contexts and the gate."""

from __future__ import annotations

import json

from benchmarks.gate_probe import compare, question_files


def _row(qid: str, declined: bool, names: list[str], recall: float | None,
         answerable: bool = True) -> dict:
    return {"id": qid, "corpus": "aragog_arxiv", "answerable": answerable, "declined": declined,
            "missing_names": names, "recall@5": recall, "served": []}


def test_compare_pools_short_batches_counts_declines_and_names_each_change(tmp_path, capsys):
    before = {"short_answers_k_aragog_arxiv.jsonl": [_row("k-1", True, ["cnn"], 1.0),
                                                     _row("k-2", False, [], 0.0)],
              "unanswerable_i_aragog_arxiv.jsonl": [_row("u-1", True, ["ipus"], None, False)]}
    after = {"short_answers_k_aragog_arxiv.jsonl": [_row("k-1", False, [], 1.0),
                                                    _row("k-2", False, [], 1.0)],
             "unanswerable_i_aragog_arxiv.jsonl": [_row("u-1", True, ["ipu"], None, False)]}
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    compare(tmp_path / "b.json", tmp_path / "a.json")
    out = capsys.readouterr().out
    assert "pooled recall@5, aragog_arxiv (2): 0.5000 -> 1.0000" in out
    assert "answerable 1 -> 0, unanswerable 1 -> 1" in out
    assert "3 questions changed" in out and "names ['ipus'] -> ['ipu']" in out


def test_every_corpus_has_its_question_files_and_long_set():
    for corpus in ("paul_graham", "blockchain_solana", "aragog_arxiv"):
        files = question_files(corpus)
        assert any(f.name.startswith("short_answers") for f in files)
        assert any(f.name.startswith("unanswerable") for f in files)
        assert files[-1].name == "normalized.jsonl" and corpus in str(files[-1])
