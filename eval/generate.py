"""`rag eval generate`: a starter dataset written from the user's own index.

Chunks are sampled deterministically (a seed), round-robin over file types so recordings'
transcripts and every document kind get questions, skipping chunks too short to ask about.
For each, the model writes one question the chunk answers and a short answer, as JSON
constrained to a schema (the judge's machinery: grammar, retries, cache). Each row is marked
`generated` and carries its chunk's text as the reference context and its file as the source,
so the retrieval metrics can score it like any labelled case. Generated questions are easier
than real ones (they reuse the chunk's words): a starting point to review, not a benchmark.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field

MIN_WORDS = 12
PROMPT = """You write test questions for a search system.

Passage (from {source}):
\"\"\"
{text}
\"\"\"

Write ONE question that this passage answers on its own, as a user would ask it without seeing
the passage (name the subject; do not say "the passage" or "the text"), and the short answer
found in the passage. Reply as JSON with the keys "question" and "answer"."""


class GeneratedCase(BaseModel):
    question: str = Field(min_length=8)
    answer: str = Field(min_length=1)


def sample_chunks(chunks: Iterable[Any], n: int, seed: int = 0) -> list[Any]:
    """`n` chunks with at least `MIN_WORDS` words, round-robin over file types, seeded."""
    by_type: dict[str, list[Any]] = defaultdict(list)
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        if len(chunk.text.split()) >= MIN_WORDS:
            by_type[chunk.file_type or "?"].append(chunk)
    rng = random.Random(seed)
    for group in by_type.values():
        rng.shuffle(group)
    picked: list[Any] = []
    types = sorted(by_type)
    while len(picked) < n and any(by_type.values()):
        for kind in types:
            if by_type[kind] and len(picked) < n:
                picked.append(by_type[kind].pop())
    return picked


def generate_cases(rag: Any, judge: Any, n: int = 50, seed: int = 0,
                   progress: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the JSONL dataset format (marked generated), and one line per chunk skipped."""
    from tqdm import tqdm

    from eval.judge import JudgeOutputError

    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for chunk in tqdm(sample_chunks(live_chunks(rag), n, seed), desc="generate", unit="question",
                      disable=not progress):
        try:
            rows.append(generate_case(chunk, judge))
        except JudgeOutputError as exc:
            skipped.append(f"{chunk.chunk_id}: {exc}")
    return rows, skipped


def live_chunks(rag: Any) -> list[Any]:
    """Every live chunk of an open index (a `RAG`), from its catalog."""
    catalog = rag.index.catalog
    return list(catalog.chunks(sorted(rag.index.live_ids())).values())


def generate_case(chunk: Any, judge: Any) -> dict[str, Any]:
    """One generated row for `chunk` (its id is `gen-<chunk_id>`); raises the judge's
    `JudgeOutputError` when the model's reply stays unusable."""
    prompt = PROMPT.format(source=Path(chunk.source).name, text=chunk.text.strip())
    made = judge.generate(prompt, schema=GeneratedCase)
    return {
        "id": f"gen-{chunk.chunk_id}",
        "question": made.question.strip(),
        "reference_answer": made.answer.strip(),
        "reference_contexts": [chunk.text],
        "source_docs": [chunk.source],
        "generated": True,
        "file_type": chunk.file_type,
        "page": chunk.page, "start": chunk.start, "end": chunk.end,
    }


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
