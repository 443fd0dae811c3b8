"""Startup stays light: the CLI and `import rag` must not pull in torch, gradio or deepeval."""

import json
import subprocess
import sys

HEAVY = ["torch", "gradio", "deepeval", "sentence_transformers", "pymilvus", "llama_cpp", "whisper"]


def test_import_rag_loads_no_heavy_modules():
    code = (
        "import sys, json, rag; from rag import RAG; from rag.cli import build_parser; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_rag_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rag", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ["ingest", "ask", "retrieve", "config", "stats", "delete", "ui"]:
        assert command in out.stdout


def test_no_command_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "rag"], capture_output=True, text=True)
    assert out.returncode == 2


def test_an_ingest_without_engine_ray_never_imports_ray(tmp_path):
    """Ray (the `scale` extra) is loaded only by `--engine ray`: a plain ingest, with every
    module it needs (models, Milvus Lite, the pipeline), runs without it."""
    note = tmp_path / "note.txt"
    note.write_text("Green tea steeps for two minutes in water at eighty degrees.\n")
    code = (
        "import sys, json; from rag.cli import main; "
        f"code = main(['ingest', {str(note)!r}, '--index', {str(tmp_path / 'index')!r}, '--quiet']); "
        "print(json.dumps({'code': code, 'ray': sorted(m for m in sys.modules "
        "if m == 'ray' or m.startswith('ray.'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "ray": []}
