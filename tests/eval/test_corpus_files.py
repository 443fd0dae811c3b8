"""A dev corpus kept as JSONL, written out as the folder of files both pipelines ingest, and the
MuSiQue dev set that uses it (README "Evaluation")."""

import json
from pathlib import Path

from eval.corpus_files import file_name, write_corpus
from eval.datasets import load_dataset
from eval.retrieval_metrics import is_hit

REPO = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_one_file_per_title_with_its_title_then_its_paragraphs(tmp_path):
    rows = [{"title": "Namibia", "text": "Windhoek is the capital."},
            {"title": "Water", "text": "Water covers 71% of the Earth's surface."},
            {"title": "Namibia", "text": "South Africa occupied the colony in 1915."}]
    names = write_corpus(write_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "docs")
    assert names == {"Namibia": "Namibia.txt", "Water": "Water.txt"}
    assert (tmp_path / "docs" / "Namibia.txt").read_text() == (
        "Namibia\n\nWindhoek is the capital.\n\nSouth Africa occupied the colony in 1915.\n")


def test_titles_that_are_not_safe_file_names_stay_inside_the_folder_and_apart(tmp_path):
    rows = [{"title": t, "text": "x"} for t in ("AC/DC", "AC_DC", "../../etc/passwd", "..", "ac_dc")]
    names = write_corpus(write_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "docs")
    written = sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert len(written) == 5 and sorted(names.values()) == written
    assert len({n.lower() for n in written}) == 5  # distinct on case-insensitive disks too
    assert all("/" not in n and not n.startswith(".") for n in written)
    assert file_name("2009\u201310 NLA season") == "2009_10 NLA season.txt"
    assert len(file_name("x" * 500)) <= 124


def test_every_musique_question_names_files_that_hold_its_supporting_paragraphs(tmp_path):
    names = write_corpus(REPO / "eval" / "corpora" / "musique_dev.jsonl", tmp_path)
    assert len(names) == 1764
    cases = load_dataset(REPO / "eval" / "questions" / "multihop_dev_musique.jsonl").cases
    assert len(cases) == 100 and all(c.answerable and c.reference_answer for c in cases)
    for case in cases:
        assert len(case.reference_contexts) >= 2, case.id  # multi-hop: two paragraphs or more
        files = [(tmp_path / doc).read_text() for doc in case.source_docs]
        for context in case.reference_contexts:
            assert any(is_hit(text, context) for text in files), (case.id, context[:60])
    for kind in ("heldout", "heldout_b", "heldout_c", "dev"):
        unanswerable = load_dataset(REPO / "eval" / "questions" / f"unanswerable_{kind}_musique.jsonl")
        assert len(unanswerable.cases) == 10 and not any(c.answerable for c in unanswerable.cases)
