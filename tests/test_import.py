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
