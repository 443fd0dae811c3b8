"""`rag models finetune`: a few real training steps on a tiny corpus (questions given as a file,
so no LLM runs), the folder it writes, determinism and resume, and the CLI's one-line errors.

The corpus is written here: five short documents about invented towns, one fact a paragraph,
ingested with the session's packaged MiniLM into a real index (BM25 + Milvus Lite). The
questions file has the shape `rag eval generate` writes (the chunk's text as reference context).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

TOWNS = {
    "Arlen": ("a copper bridge", "the river guild", "1820", "smoked eel", "the lantern fair"),
    "Brisk": ("a glass observatory", "the weavers' union", "1874", "rye honey cake", "the kite race"),
    "Corvo": ("a stone windmill", "the miller Hanne Dorr", "1702", "salted plums", "the drum parade"),
    "Dunmere": ("a floating chapel", "the boatmen of the lake", "1911", "pike dumplings",
                "the swim across the lake"),
    "Eskar": ("a clock tower of red brick", "the watchmaker Ilse Varn", "1856", "black barley bread",
              "the midnight bell walk"),
}


def _documents() -> dict[str, list[tuple[str, str]]]:
    """town -> [(paragraph, question)]: one question per paragraph."""
    docs = {}
    for town, (landmark, builder, year, food, festival) in TOWNS.items():
        docs[town] = [
            (f"The town of {town} is best known for {landmark}, which draws visitors from the "
             f"whole valley every summer and appears on the town's coat of arms.",
             f"What landmark is {town} best known for?"),
            (f"The landmark of {town} was built by {builder}, who paid for it with a tax on wool "
             f"and finished the work after eleven years.", f"Who built the landmark of {town}?"),
            (f"Work on it ended in {year}; a plaque by the main door still gives that year and the "
             f"names of the workers who died during construction.",
             f"In which year was the landmark of {town} finished?"),
            (f"Visitors to {town} should try {food}, sold at the Saturday market next to the "
             f"old well, a dish the town has made for centuries.",
             f"Which local dish should visitors to {town} try?"),
            (f"Each autumn {town} holds {festival}, when the whole town closes its shops and the "
             f"mayor opens the celebrations at dusk.", f"What festival does {town} hold in autumn?"),
        ]
    return docs


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, embedder):
    """(index folder, questions file): a real index of the five documents, chunked small so that
    each paragraph is about one chunk, and one question per chunk holding its paragraph."""
    from rag.api import RAG

    root = tmp_path_factory.mktemp("finetune")
    docs_dir = root / "docs"
    docs_dir.mkdir()
    docs = _documents()
    for town, paragraphs in docs.items():
        (docs_dir / f"{town.lower()}.txt").write_text("\n\n".join(p for p, _ in paragraphs) + "\n")
    index = root / "index"
    rag = RAG.open(index, embedder=embedder, chunk_size=48, chunk_overlap=0)
    try:
        results = rag.ingest([docs_dir])
        assert all(r.status == "added" for r in results), results
        chunks = list(rag.index.catalog.chunks(sorted(rag.index.live_ids())).values())
    finally:
        rag.close()
    rows = []
    for paragraphs in docs.values():
        for paragraph, question in paragraphs:
            start = " ".join(paragraph.split()[:8])
            holder = next(c for c in chunks if start in " ".join(c.text.split()))
            rows.append({"id": f"q{len(rows)}", "question": question,
                         "reference_answer": paragraph.split(",")[0],
                         "reference_contexts": [holder.text], "source_docs": [holder.source]})
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return index, questions


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_finetune_writes_a_model_that_loads_embeds_and_is_reproducible(tiny_index, tmp_path,
                                                                       capsys):
    from eval.finetune import finetune
    from rag.models.candidates import load_embedder

    index, questions = tiny_index
    common = dict(questions_file=questions, seed=3, epochs=1, batch_size=4, budget_min=5,
                  progress=False, say=lambda line: None)
    # An uninterrupted run, and one stopped after a step and resumed: same seed, same weights.
    whole = finetune(index, tmp_path / "whole", **common)
    part = finetune(index, tmp_path / "resumed", max_steps=1, **common)
    assert part["training"]["steps"] == 1 and part["training"]["stopped"] == "max_steps"
    resumed = finetune(index, tmp_path / "resumed", **common)

    t = whole["training"]
    assert t["steps"] == t["planned"] >= 3 and t["stopped"] == "done"
    assert resumed["training"]["resumed_from"] == 1
    assert resumed["training"]["steps"] == t["steps"]
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    base = _weights(Path(whole["base"]["path"]))
    assert any(not np.array_equal(a[k], base[k]) for k in a), "training changed no weight"

    # What a user sees: the model card and record, held-out documents, figures before/after.
    out = tmp_path / "whole"
    card = (out / "README.md").read_text()
    assert "all-MiniLM-L6-v2" in card and whole["data"]["hash"] in card and "seed 3" in card
    assert "held out by source document" in whole["data"]["split"]
    assert whole["data"]["val"] > 0 and whole["data"]["train"] >= 12
    for when in ("before", "after"):
        assert 0.0 <= whole["validation"][when]["recall@10"] <= 1.0
    assert json.loads((out / "finetune.json").read_text())["training"]["steps"] == t["steps"]
    assert not (out / "checkpoint").exists()  # checkpoints stay in the work folder

    # The folder is a candidate like any other: it loads through the project's loader, embeds,
    # and has its own fingerprint.
    model = load_embedder(str(out))
    vectors = model.encode(["Who built the landmark of Corvo?", "smoked eel"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)  # bf16 where the CPU has it
    assert model.fingerprint != load_embedder("minilm-fp32").fingerprint

    # ... and `rag reindex --embedding-model OUT` switches a (copied) index to it, recording the
    # folder's absolute path and fingerprint.
    from rag.cli import main

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    assert main(["reindex", "--index", str(copy), "--embedding-model", str(out)]) == 0
    capsys.readouterr()
    assert main(["stats", "--index", str(copy), "--json"]) == 0
    served = json.loads(capsys.readouterr().out)["index_settings"]
    assert served["embedding_ref"] == str(out.resolve())
    assert served["embedding_fingerprint"] == model.fingerprint
    # `--rollback` returns to the model the index was built with.
    assert main(["reindex", "--index", str(copy), "--rollback"]) == 0
    capsys.readouterr()
    assert main(["stats", "--index", str(copy), "--json"]) == 0
    back = json.loads(capsys.readouterr().out)["index_settings"]
    assert back["embedding_fingerprint"] != model.fingerprint


def test_cli_says_in_one_line_when_there_is_no_index(tmp_path, capsys):
    from rag.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["models", "finetune", "--index", str(empty), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "no index here" in err and str(empty) in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_small_budget_an_unloadable_base_and_a_server_index(tiny_index, tmp_path, capsys):
    from rag.cli import main

    index, questions = tiny_index
    code = main(["models", "finetune", "--index", str(index), "--budget-min", "0.2",
                 "--questions-file", str(questions), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "too small" in err
    code = main(["models", "finetune", "--index", str(index), "--base", "no-such-org/no-such-model",
                 "--questions-file", str(questions), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "offline" in err
    # An index served from a Milvus server is refused before anything opens it.
    code = main(["models", "finetune", "--index", str(index), "--set",
                 "milvus_uri=http://127.0.0.1:9", "--questions-file", str(questions),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Milvus server" in err
    assert not (tmp_path / "out").exists()
