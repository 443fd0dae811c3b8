"""`benchmarks/gate_probe.py compare`: what a change did to the served contexts and the gate."""

from __future__ import annotations

import json

from benchmarks.gate_probe import compare, question_files, write_changed


def _row(qid: str, declined: bool, names: list[str], recall: float | None,
         answerable: bool = True, served: tuple[str, ...] = ()) -> dict:
    return {"id": qid, "corpus": "aragog_arxiv", "answerable": answerable, "declined": declined,
            "missing_names": names, "recall@5": recall, "served": list(served)}


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


def test_the_questions_whose_gate_or_contexts_changed_are_written_as_their_file_holds_them(tmp_path):
    key = "short_answers_k_aragog_arxiv.jsonl"
    before = {key: [_row("short-k-aragog-0", True, ["x"], 1.0, served=("a", "b")),
                    _row("short-k-aragog-1", False, [], 1.0, served=("a", "b")),
                    _row("short-k-aragog-2", False, [], 1.0, served=("a", "b"))],
              "unanswerable_i_aragog_arxiv.jsonl": [_row("unans-i-aragog-0", True, ["y"], None, False)]}
    after = {key: [_row("short-k-aragog-0", False, [], 1.0, served=("a", "b")),  # the gate
                   _row("short-k-aragog-1", False, [], 1.0, served=("a", "c")),  # a context
                   _row("short-k-aragog-2", False, [], 1.0, served=("a", "b"))],  # neither
             "unanswerable_i_aragog_arxiv.jsonl": [_row("unans-i-aragog-0", True, ["z"], None, False)]}
    assert write_changed(before, after, tmp_path) == {"aragog_arxiv": 2}
    rows = [json.loads(line) for line in (tmp_path / "changed_aragog_arxiv.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["short-k-aragog-0", "short-k-aragog-1"]
    source = json.loads((question_files("aragog_arxiv")[0].parent / key).read_text().splitlines()[0])
    assert rows[0] == source  # the question as its file holds it, reference answer and all
