"""Fresh set-up time: `make demo` in a fresh clone with an empty pip cache, to the printed answer
and the listening UI, phase by phase.

A user's first contact is the two-command set-up, so its time is a product figure (goal: 600 s on
2 cores). The clone is made from this checkout's HEAD; pip gets an empty PIP_CACHE_DIR, so every
wheel is fetched or built again (llama-cpp-python compiles from source), and the framework an
empty model cache (RAG_CACHE_DIR), so packaged models are assembled and the AVX-512 llama.cpp
kernels compiled again. The phases are cut at
the lines `make` echoes before each step; the UI phase ends when its port answers HTTP. The UI is
then stopped, and the clone and cache removed (keep them with --keep).

    nice -n 5 .venv/bin/python benchmarks/fresh_setup.py --json /tmp/fresh_setup.json

It needs the network (or the local wheel mirror) that `make demo` needs, and about 6 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# (phase name, a substring of the line `make` echoes when the phase starts), in order.
PHASES = [
    ("venv", " -m venv "),
    ("pip install (the tested set; llama-cpp-python compiling beside it)", " pip wheel --no-deps "),
    ("pip install (project, llama-cpp-python wheel)", "-e '.[test,scale]'"),
    ("pip install (no-deps extras)", "--no-deps openai-whisper"),
    ("llama.cpp AVX-512 kernels, beside the answer model copy", "rag.models.llama_kernels build"),
    ("ingest sample", "rag ingest"),
    ("answer", "rag ask"),
    ("UI start", "rag ui"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ui_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def run_make_demo(clone: Path, cache: Path, port: int, log_path: Path, limit_s: float) -> dict:
    """Run `make demo`, stamping each phase's start; returns phase times and the total."""
    # An empty model cache too: a fresh machine assembles the packaged models and compiles the
    # AVX-512 kernels once (rag/models/cache.py, rag/models/llama_kernels.py).
    env = {**os.environ, "PIP_CACHE_DIR": str(cache), "RAG_CACHE_DIR": str(cache / "rag-models"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    # The demo's UI on a free port, so a UI already running here does not block it.
    command = ["make", "demo", f"DEMO_UI_ARGS=--port {port}"]
    started = time.monotonic()
    stamps: dict[str, float] = {}
    process = subprocess.Popen(
        command, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    answer_lines: list[str] = []

    def read_output() -> None:
        with open(log_path, "w") as log:
            for line in process.stdout:
                now = time.monotonic() - started
                log.write(f"[{now:7.1f}] {line}")
                log.flush()
                for name, marker in PHASES:
                    if name not in stamps and marker in line:
                        stamps[name] = now
                if "answer" in stamps and "UI start" not in stamps and not line.startswith(".venv"):
                    answer_lines.append(line.rstrip())

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    ui_ready = None
    try:
        while time.monotonic() - started < limit_s:
            if process.poll() is not None:
                break
            if "UI start" in stamps and ui_answers(port):
                ui_ready = time.monotonic() - started
                break
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        reader.join(timeout=5)
    if ui_ready is None:
        raise SystemExit(f"make demo did not reach a listening UI (exit {process.returncode}); see {log_path}")
    names = [name for name, _ in PHASES]
    phases = {}
    for index, name in enumerate(names):
        end = stamps.get(names[index + 1]) if index + 1 < len(names) else ui_ready
        phases[name] = round(end - stamps[name], 1) if name in stamps and end else None
    return {"total_s": round(ui_ready, 1), "phases_s": phases, "answer": "\n".join(answer_lines)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--limit", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the pip cache")
    args = parser.parse_args(argv)
    # A SIGTERM (kill, a timeout) unwinds through the `finally`s below, which stop `make demo`'s
    # whole process group; by default it would end only this process and leave the build running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="rag-fresh-setup-"))
    clone, cache = work / "clone", work / "pip-cache"
    cache.mkdir()
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    port = free_port()
    try:
        result = run_make_demo(clone, cache, port, work / "make_demo.log", args.limit)
    finally:
        if not args.keep:
            shutil.rmtree(clone, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    result.update({"commit": head, "cpus": os.cpu_count(), "log": str(work / "make_demo.log"),
                   "date": time.strftime("%Y-%m-%d %H:%M")})
    width = max(len(name) for name in result["phases_s"])
    print(f"make demo, fresh clone at {head}, empty pip cache, {os.cpu_count()} CPUs")
    for name, seconds in result["phases_s"].items():
        print(f"  {name:<{width}}  {seconds if seconds is not None else '-':>7} s")
    print(f"  {'total (to the listening UI)':<{width}}  {result['total_s']:>7} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
