"""Evaluation datasets: one `EvalCase` per question, read from JSONL, LlamaIndex or BEIR files.

Why three readers: DESIGN.md's JSONL is the project's own format; LlamaIndex
`LabelledRagDataset` JSON and BEIR folders are what public QA sets ship as. Each reader turns a
file into the same `EvalCase`s, and a bad file stops with one line naming the file and line.

The readers are plain `json`/`csv`: llama-index's own `LabelledRagDataset.from_json` would build
pydantic models only to be converted again, and the `beir` package pulls in a download stack
for a format that is three small files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from eval.errors import DatasetError

# File stems that say nothing about the data; such a dataset is named after its folder.
GENERIC_STEMS = {"normalized", "rag_dataset", "dataset", "data", "eval", "test", "cases", "qa"}
FIELDS = ("id", "question", "reference_answer", "reference_contexts", "source_docs",
          "generated", "answerable")


@dataclass
class EvalCase:
    """One question with what a good answer and good retrieval look like.

    `answerable=False` marks a question the documents do not answer: the expected behaviour is
    a decline (a row with `"source_doc_missing": true`, as in ARAGOG, defaults to it). `generated=True` marks a question an LLM wrote (e.g. by `rag eval generate`).
    Fields a file carries beyond these stay in `extra` (e.g. ARAGOG's `source_doc_missing`).
    """

    id: str
    question: str
    reference_answer: str = ""
    reference_contexts: list[str] = field(default_factory=list)
    source_docs: list[str] = field(default_factory=list)
    generated: bool = False
    answerable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}


@dataclass
class EvalDataset:
    """The cases of one dataset file, its name (for baselines) and its format."""

    name: str
    path: Path
    format: str  # jsonl | llamaindex | beir
    cases: list[EvalCase]

    @property
    def hash(self) -> str:
        """A content hash of the cases (format-independent; see `cases_hash`)."""
        return cases_hash(self.cases)

    def head(self, limit: int | None) -> "EvalDataset":
        """The first `limit` cases (all when None)."""
        if limit is None:
            return self
        return EvalDataset(self.name, self.path, self.format, self.cases[:max(0, limit)])


HASHED = ("id", "question", "reference_answer", "reference_contexts", "source_docs", "answerable")


def cases_hash(cases: Iterable[EvalCase]) -> str:
    """sha256 over the canonical JSON of the fields that decide scores (`HASHED`): the same
    cases give the same hash whatever the file's whitespace, key order or extra fields."""
    digest = hashlib.sha256()
    for case in cases:
        row = {key: getattr(case, key) for key in HASHED}
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def dataset_name(path: Path) -> str:
    """`.../blockchain_solana/normalized.jsonl` -> `blockchain_solana`; `pg.jsonl` -> `pg`."""
    path = Path(path)
    if path.is_dir():
        return path.resolve().name
    return path.resolve().parent.name if path.stem.lower() in GENERIC_STEMS else path.stem


def load_dataset(path: str | Path, *, split: str = "test") -> EvalDataset:
    """Read a dataset, detecting its format: a folder with corpus.jsonl/queries.jsonl/qrels is
    BEIR, a `.json` object with `examples` is LlamaIndex, anything else is JSONL.

    `split` picks `qrels/<split>.tsv` of a BEIR folder (the only one, when it is alone)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file or folder")
    if path.is_dir():
        if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
            return EvalDataset(dataset_name(path), path, "beir", load_beir(path, split=split))
        raise DatasetError(f"{path}: a folder dataset must be BEIR (corpus.jsonl, queries.jsonl, "
                           "qrels/*.tsv)")
    if path.suffix.lower() == ".json":
        return EvalDataset(dataset_name(path), path, "llamaindex", load_labelled_rag_dataset(path))
    return EvalDataset(dataset_name(path), path, "jsonl", load_jsonl(path))


# --- JSONL ------------------------------------------------------------------------------------
def load_jsonl(path: str | Path) -> list[EvalCase]:
    """DESIGN.md's format: one `{"id","question","reference_answer","reference_contexts",
    "source_docs"}` object a line (plus optional `generated`, `answerable`); blank lines skipped."""
    path = Path(path)
    cases: list[EvalCase] = []
    seen: dict[str, int] = {}
    for number, row in _json_lines(path):
        case = case_from_row(row, where=f"{path}:{number}", default_id=f"{dataset_name(path)}-{len(cases)}")
        if case.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {case.id!r} (first on line "
                               f"{seen[case.id]})")
        seen[case.id] = number
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases (empty file)")
    return cases


def case_from_row(row: Any, *, where: str, default_id: str) -> EvalCase:
    """An `EvalCase` from one JSON object, checking each field's type."""
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: 'question' must be a non-empty string")
    answer = row.get("reference_answer") or ""
    if not isinstance(answer, str):
        raise DatasetError(f"{where}: 'reference_answer' must be a string")
    lists = {}
    for key in ("reference_contexts", "source_docs"):
        value = row.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f"{where}: {key!r} must be a list of strings")
        lists[key] = value
    flags = {}
    # ARAGOG marks questions about a paper missing from the corpus `source_doc_missing`: the
    # right behaviour there is a decline, which is what `answerable: false` means.
    answerable_default = row.get("source_doc_missing") is not True
    # LlamaIndex-derived rows say who wrote the question in `generated_by` ({"type": "ai"}).
    by = row.get("generated_by")
    generated_default = isinstance(by, dict) and by.get("type") == "ai"
    for key, default in (("generated", generated_default), ("answerable", answerable_default)):
        value = row.get(key, default)
        if not isinstance(value, bool):
            raise DatasetError(f"{where}: {key!r} must be true or false, not {value!r}")
        flags[key] = value
    case_id = row.get("id", default_id)
    if not isinstance(case_id, (str, int)) or isinstance(case_id, bool):
        raise DatasetError(f"{where}: 'id' must be a string")
    extra = {k: v for k, v in row.items() if k not in FIELDS}
    return EvalCase(str(case_id), question, answer, lists["reference_contexts"],
                    lists["source_docs"], flags["generated"], flags["answerable"], extra)


# --- LlamaIndex LabelledRagDataset ------------------------------------------------------------
def load_labelled_rag_dataset(path: str | Path) -> list[EvalCase]:
    """LlamaIndex `LabelledRagDataset.save_json` output: `{"examples": [{"query",
    "reference_contexts", "reference_answer", "query_by": {"type": "ai"|"human", ...}}]}`.

    The file has no ids: they are `<name>-<position>`. A query written by an LLM
    (`query_by.type == "ai"`) is marked `generated`, and `query_by` is kept as `generated_by`
    (the shared `normalized.jsonl` files do the same). It names no source documents.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise DatasetError(f"{path}: not a LlamaIndex LabelledRagDataset (no 'examples' list)")
    name = dataset_name(path)
    cases = []
    for i, example in enumerate(data["examples"]):
        where = f"{path}: examples[{i}]"
        if not isinstance(example, dict):
            raise DatasetError(f"{where}: expected an object")
        query_by = example.get("query_by") or {}
        row = {
            "id": f"{name}-{i}",
            "question": example.get("query"),
            "reference_answer": example.get("reference_answer") or "",
            "reference_contexts": example.get("reference_contexts") or [],
            "source_docs": [],
            "generated": isinstance(query_by, dict) and query_by.get("type") == "ai",
        }
        if query_by:
            row["generated_by"] = query_by  # as the shared normalized.jsonl files keep it
        cases.append(case_from_row(row, where=where, default_id=row["id"]))
    if not cases:
        raise DatasetError(f"{path}: no examples")
    return cases


# --- BEIR -------------------------------------------------------------------------------------
def load_beir(folder: str | Path, *, split: str = "test") -> list[EvalCase]:
    """A BEIR folder: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`)
    and `qrels/<split>.tsv` (query-id, corpus-id, score; header line). A query's reference
    contexts are the texts of its relevant (score > 0) documents, its `source_docs` their ids;
    BEIR has no reference answers. Queries without a relevant document in the split are left out.
    """
    folder = Path(folder)
    qrels_path = _qrels_file(folder, split)
    corpus = {row["_id"]: row for row in _id_rows(folder / "corpus.jsonl", ("_id", "text"))}
    queries = {row["_id"]: row for row in _id_rows(folder / "queries.jsonl", ("_id", "text"))}
    relevant: dict[str, list[str]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as handle:
        for number, record in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not record or (number == 1 and not _is_number(record[-1])):
                continue  # blank line or the header
            if len(record) != 3 or not _is_number(record[2]):
                raise DatasetError(f"{qrels_path}:{number}: expected 'query-id<TAB>corpus-id"
                                   "<TAB>score'")
            qid, doc_id, score = record
            if qid not in queries:
                raise DatasetError(f"{qrels_path}:{number}: query id {qid!r} is not in "
                                   "queries.jsonl")
            if doc_id not in corpus:
                raise DatasetError(f"{qrels_path}:{number}: corpus id {doc_id!r} is not in "
                                   "corpus.jsonl")
            if float(score) > 0:
                relevant.setdefault(qid, []).append(doc_id)
    cases = [EvalCase(qid, queries[qid]["text"], "",
                      [corpus[d]["text"] for d in docs], list(docs))
             for qid, docs in relevant.items()]
    if not cases:
        raise DatasetError(f"{qrels_path}: no query has a relevant document")
    return cases


def _qrels_file(folder: Path, split: str) -> Path:
    chosen = folder / "qrels" / f"{split}.tsv"
    if chosen.is_file():
        return chosen
    found = sorted((folder / "qrels").glob("*.tsv"))
    if len(found) == 1:
        return found[0]
    names = ", ".join(p.name for p in found) or "none"
    raise DatasetError(f"{folder / 'qrels'}: no {split}.tsv (found: {names})")


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a JSON-lines file."""
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        yield number, row


def _id_rows(path: Path, required: tuple[str, ...]) -> Iterable[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    for number, row in _json_lines(path):
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in required):
            raise DatasetError(f"{path}:{number}: needs string fields {', '.join(required)}")
        yield row


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
