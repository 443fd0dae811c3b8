"""Dataset readers: the three shared QA sets, tiny BEIR and LabelledRagDataset files, bad files."""

import json
from pathlib import Path

import pytest

from eval.datasets import EvalCase, load_dataset
from eval.errors import DatasetError

QA = Path(__file__).resolve().parents[3] / "shared" / "data" / "qa"
needs_shared = pytest.mark.skipif(not QA.is_dir(), reason="../shared/data is absent beside this clone")


@needs_shared
def test_solana_jsonl_and_its_llamaindex_original_give_the_same_cases():
    jsonl = load_dataset(QA / "blockchain_solana" / "normalized.jsonl")
    labelled = load_dataset(QA / "blockchain_solana" / "rag_dataset.json")
    assert (jsonl.format, labelled.format) == ("jsonl", "llamaindex")
    assert jsonl.name == labelled.name == "blockchain_solana"
    assert len(jsonl.cases) == len(labelled.cases) == 58
    for a, b in zip(jsonl.cases, labelled.cases):
        assert a.question == b.question
        assert a.reference_answer == b.reference_answer
        assert a.reference_contexts == b.reference_contexts and len(a.reference_contexts) == 1
        assert a.generated and b.generated  # written by gpt-3.5-turbo
        assert a.extra["generated_by"] == b.extra["generated_by"]
        assert a.answerable and b.answerable
    assert jsonl.cases[0].id == "solana-0" and labelled.cases[0].id == "blockchain_solana-0"
    assert jsonl.cases[0].source_docs == ["source_files/BlockchainSolana.pdf"]
    assert labelled.cases[0].source_docs == []  # the LlamaIndex file does not name them


@needs_shared
def test_paul_graham_and_aragog():
    pg = load_dataset(QA / "paul_graham" / "normalized.jsonl")
    assert pg.name == "paul_graham" and len(pg.cases) == 55
    assert all(len(c.reference_contexts) == 1 and not c.generated for c in pg.cases)
    aragog = load_dataset(QA / "aragog_arxiv" / "normalized.jsonl")
    assert len(aragog.cases) == 107
    assert all(c.reference_contexts == [] for c in aragog.cases)
    # Questions about the missing GLM-130B paper expect a decline.
    missing = [c for c in aragog.cases if not c.answerable]
    assert len(missing) == 9 and all(c.extra["source_doc_missing"] for c in missing)
    assert "GLM-130B" in missing[0].question


def test_hash_ignores_layout_and_follows_content(tmp_path):
    row = {"id": "a", "question": "Q?", "reference_answer": "A", "reference_contexts": ["c"],
           "source_docs": []}
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(row) + "\n")
    two = tmp_path / "two.jsonl"
    two.write_text("\n" + json.dumps(dict(reversed(list(row.items()))), indent=None) + "\n\n")
    three = tmp_path / "three.jsonl"
    three.write_text(json.dumps({**row, "question": "Q2?"}) + "\n")
    four = tmp_path / "four.jsonl"
    four.write_text(json.dumps({**row, "note": "not scored", "generated": True}) + "\n")
    assert load_dataset(one).hash == load_dataset(two).hash == load_dataset(four).hash
    assert load_dataset(one).hash != load_dataset(three).hash
    assert load_dataset(one).hash.startswith("sha256:")


def test_jsonl_optional_fields(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": 7, "question": "Who?", "answerable": False,
                                "generated": True, "note": "kept"}) + "\n")
    (case,) = load_dataset(path).cases
    assert case == EvalCase("7", "Who?", "", [], [], True, False, {"note": "kept"})
    assert load_dataset(path).name == "mine"


def test_tiny_labelled_rag_dataset(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"examples": [
        {"query": "How long does green tea steep?", "query_by": {"type": "human"},
         "reference_contexts": ["steep green tea for 2 minutes"], "reference_answer": "2 minutes",
         "reference_answer_by": {"type": "human"}},
        {"query": "Oolong temperature?", "query_by": {"model_name": "x", "type": "ai"},
         "reference_contexts": ["Oolong is brewed at 90 °C"], "reference_answer": "90 °C"},
    ]}))
    data = load_dataset(path)
    assert data.format == "llamaindex"
    assert [c.id for c in data.cases] == ["tiny-0", "tiny-1"]
    assert [c.generated for c in data.cases] == [False, True]
    assert data.cases[1].reference_contexts == ["Oolong is brewed at 90 °C"]


def _beir(folder: Path, qrels: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in [
        {"_id": "d1", "title": "Tea", "text": "Steep green tea for 2 minutes."},
        {"_id": "d2", "title": "Lamp", "text": "The lamp flashes green every 4 seconds."},
        {"_id": "d3", "title": "Other", "text": "Unrelated."},
    ]) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "green tea steeping time"},
        {"_id": "q2", "text": "lamp and tea"},
        {"_id": "q3", "text": "a query with no judgement"},
    ]) + "\n")
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_tiny_beir_folder(tmp_path):
    folder = _beir(tmp_path / "scifacts",
                   "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td1\t2\nq2\td3\t0\n")
    data = load_dataset(folder)
    assert (data.format, data.name) == ("beir", "scifacts")
    by_id = {c.id: c for c in data.cases}
    assert set(by_id) == {"q1", "q2"}  # q3 has no relevant document in the split
    assert by_id["q1"].reference_contexts == ["Steep green tea for 2 minutes."]
    assert by_id["q2"].source_docs == ["d2", "d1"]  # d3 has score 0: not relevant
    assert by_id["q2"].reference_answer == ""


@pytest.mark.parametrize("content, expected", [
    ('{"id": "a", "question": "Q?"}\n{"id": "b", "question": \n', ":2: not valid JSON"),
    ('{"id": "a", "question": ""}\n', ":1: 'question' must be a non-empty string"),
    ('{"id": "a", "question": "Q?"}\n{"id": "a", "question": "R?"}\n', ":2: duplicate id 'a'"),
    ('{"id": "a", "question": "Q?", "reference_contexts": "one"}\n',
     ":1: 'reference_contexts' must be a list of strings"),
    ('{"id": "a", "question": "Q?", "answerable": "no"}\n', ":1: 'answerable' must be true"),
    ('["not", "an", "object"]\n', ":1: expected a JSON object"),
    ("\n\n", ": no cases"),
])
def test_bad_jsonl_names_file_and_line(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_bad_files_of_other_formats(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "missing.jsonl")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"examples": [\n{"query": 1}\n]}')
    with pytest.raises(DatasetError, match=r"bad\.json: examples\[0\]: 'question'"):
        load_dataset(bad_json)
    not_labelled = tmp_path / "other.json"
    not_labelled.write_text('{"rows": []}')
    with pytest.raises(DatasetError, match="not a LlamaIndex LabelledRagDataset"):
        load_dataset(not_labelled)
    folder = _beir(tmp_path / "beir", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:3: corpus id 'd9' is not in corpus"):
        load_dataset(folder)
    with pytest.raises(DatasetError, match="must be BEIR"):
        load_dataset(tmp_path)
