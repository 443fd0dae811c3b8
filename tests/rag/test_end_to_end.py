"""The default path end to end, through the real CLI, real models and Milvus Lite, offline.

Each command runs in a fresh process whose sockets refuse anything but loopback, so model
loading, indexing and answering are all shown not to touch the network.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def offline_rag(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    attempts_file = tmp_path / f"attempts-{args[0]}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.offline_rag", str(attempts_file), *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    attempts = json.loads(attempts_file.read_text()) if attempts_file.exists() else ["no record"]
    return proc, attempts


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, sample_dir):
    tmp = tmp_path_factory.mktemp("cli")
    index = tmp / "index"
    proc, attempts = offline_rag(tmp, "ingest", str(sample_dir), "--index", str(index), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert attempts == [], f"ingest tried the network: {attempts}"
    return tmp, index, json.loads(proc.stdout)


def test_ingest_reports_every_sample_file(cli_index):
    _, _, report = cli_index
    statuses = {Path(f["path"]).name: f["status"] for f in report["files"]}
    assert statuses == {"tea_brewing_guide.md": "added", "harbor_lamp_manual.txt": "added",
                        "inaugural_address_notes.md": "added", "jfk.mp3": "added"}
    assert report["totals"]["chunks"] == sum(f["chunks"] for f in report["files"])


def test_ask_json_is_cited_and_offline(cli_index):
    tmp, index, _ = cli_index
    proc, attempts = offline_rag(
        tmp, "ask", "How long should green tea steep, and how hot should the water be?",
        "--index", str(index), "--json",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert attempts == [], f"ask tried the network: {attempts}"
    out = json.loads(proc.stdout)
    assert set(out) == {"answer", "citations", "contexts", "decline_reason", "timings_ms",
                        "stages_ms", "counts"}
    assert out["decline_reason"] == ""
    assert {"embed", "bm25", "dense", "fusion", "generate"} <= set(out["stages_ms"])
    assert set(out["timings_ms"]) == {"retrieve", "first_token", "generate", "total"}
    assert out["timings_ms"]["first_token"] < out["timings_ms"]["total"]
    fields = {"n", "chunk_id", "source", "page", "start", "end", "text"}
    for item in out["citations"] + out["contexts"]:
        assert fields <= set(item)
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", out["answer"])}
    listed = {c["n"] for c in out["citations"]}
    assert cited, f"answer has no citation: {out['answer']!r}"
    assert cited == listed
    assert any("tea_brewing_guide.md" in c["source"] for c in out["citations"])
    assert "2 minutes" in out["answer"] or "two minutes" in out["answer"].lower()


def test_speech_is_retrievable_with_its_time_span(cli_index):
    tmp, index, _ = cli_index
    proc, _ = offline_rag(tmp, "retrieve", "what you can do for your country", "--index",
                          str(index), "--json", "--top-k", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    audio = [r for r in results if r["source"].endswith("jfk.mp3")]
    assert audio, results
    assert audio[0]["start"] == pytest.approx(0.0, abs=1.0) and 5 < audio[0]["end"] <= 12
    assert "country" in audio[0]["text"].lower()


def test_reingest_is_a_no_op_and_indexes_agree(cli_index, sample_dir):
    tmp, index, first = cli_index
    proc, _ = offline_rag(tmp, "ingest", str(sample_dir), "--index", str(index), "--json")
    assert proc.returncode == 0
    again = json.loads(proc.stdout)
    assert {f["status"] for f in again["files"]} == {"unchanged"}
    proc, _ = offline_rag(tmp, "stats", "--check", "--json", "--index", str(index))
    stats = json.loads(proc.stdout)
    assert proc.returncode == 0 and stats["check"]["ok"], stats
    assert stats["chunks"] == first["totals"]["chunks"] == stats["check"]["dense"]
