"""Huge inputs in bounded memory: a 500 MB text file (and, with --recording, a 2-hour recording)
ingested by `rag ingest` into a fresh index; prints the time and the peak memory.

The text is Paul Graham's essays from ../shared/data/qa/paul_graham repeated to the size asked
(each copy numbered, so chunks are not all identical); the recording repeats the shared speech
clips (JFK, LibriSpeech, LibriVox) to the length asked, as 16 kHz mono 16-bit WAV. Both are
written block by block, so building them needs no memory to speak of.

The ingest runs in a child process (`python -m rag ingest ... --json`); its peak resident memory
is Linux's VmHWM, read by a sampler thread here every 0.2 s until it exits (Milvus Lite runs
inside that process), next to the summed RSS of any child processes it starts. Run it niced on a shared
machine:

    nice -n 19 .venv/bin/python benchmarks/huge_inputs.py --mb 500
    nice -n 19 .venv/bin/python benchmarks/huge_inputs.py --no-text --recording --minutes 2

The 2-hour recording (`--recording --minutes 120`) takes about 25 minutes on 2 cores (Whisper).

A text ingest stopped part-way (kill -9 of its `rag ingest`, the end of a working session) is
resumed by the same command with the same `--workdir`: the file is kept, the index keeps the
parts it staged, the next run embeds only the rest, and `runs.jsonl` adds the runs up.

Measured on 2 busy cores at nice 19 (a long evaluation job running), Nov 2026:
  10 MB, real model (before streaming): 578 s, peak RSS 1,269 MB, 9,934 chunks (~17 chunks/s)
  100 MB, --stand-in-embedder (streamed): 475 s, peak RSS 2,058 MB, 99,365 chunks
  2-minute recording, real Whisper and model: 51 s, peak RSS 1,216 MB, 2 chunks
  2-hour recording (2026-11-30, nice 5, a test run sharing the cores for its first 20 min):
    1,453.5 s (wall RTF 0.20), peak RSS 1,601 MB, 94 chunks (~24k words of transcript)
With no chunk text in Milvus Lite and Arrow on the system allocator, --stand-in-embedder, a CI
run sharing the cores: 10 MB 106 s, peak 978 MB; 40 MB 202 s, peak 1,298 MB (~10.7 KB a chunk
on the margin, so ~5.8 GB extrapolated for 500 MB).
2026-12-01, quiet machine (2-core AMD EPYC), --stand-in-embedder, after three changes (malloc arenas capped at 2,
rag/process.py; BM25 counts as uint32 and term ids in one flat buffer; the BM25 snapshot
written a buffer at a time, retrievers/bm25_store.py):
  100 MB: 196 s, peak RSS 1,119 MB, 99,365 chunks
  500 MB: 1,125 s, peak RSS 2,256 MB, 496,745 chunks (the goal: under 2.5 GB)
2026-12-01, the 2-core Intel Xeon with AMX, evaluation jobs sharing the cores, `flock
/tmp/rag-heavy.lock nice -n 5 .venv/bin/python benchmarks/huge_inputs.py --mb N
--stand-in-embedder`, after four more changes (the Lite collection released while a streamed file is staged, its index files
written one segment at a time before publishing; glibc's mmap threshold fixed at 1 MB; BM25
counts in one byte and term ids as 16-bit gaps), --stand-in-embedder:
  100 MB: 264 s, peak RSS 959 MB, 99,365 chunks (before, same machine and load: 374 s, 1,135 MB)
  500 MB: 1,130 s, peak RSS 1,713 MB, 496,745 chunks
2026-12-02, the 2-core AMD EPYC (avx512_bf16), quiet, nice 5, --stand-in-embedder now giving
bfloat16-cut vectors after a real first batch, Milvus Lite's merges bounded to 65,536 rows
(`lite_segment_rows`): 500 MB: 674.8 s, peak RSS 2,095 MB (at the end, BM25 built beside Lite's
497k rows), 496,745 chunks. With Lite's own bound the same vectors merged 184,320 rows at once
(1,858 MB at 188k chunks without the model): what the real-model runs had hit (2,103 MB at 156k
chunks). See README "Huge inputs (issue 20)".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ESSAYS = SHARED / "qa" / "paul_graham" / "essays"
SPEECH = [SHARED / "audio" / "whisper_cpp" / "jfk.wav",
          *sorted((SHARED / "audio" / "librispeech_speech2text").glob("*.flac")),
          *sorted((SHARED / "audio" / "librivox_pocketsphinx").glob("*.wav"))]
MB = 1_000_000


def build_text(path: Path, size: int) -> int:
    """Essays repeated, each copy headed by its number, until `size` bytes; returns the size."""
    essays = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(ESSAYS.glob("*.txt"))]
    if not essays:
        raise SystemExit(f"no essays under {ESSAYS}")
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        copy = 0
        while written < size:
            for essay in essays:
                block = f"\n\nCopy {copy}.\n\n{essay}"
                out.write(block)
                written += len(block.encode("utf-8"))
                if written >= size:
                    break
            copy += 1
    return path.stat().st_size


def build_recording(path: Path, seconds: float) -> float:
    """Shared speech clips repeated as one 16 kHz mono WAV of `seconds`; returns its length."""
    sys.path.insert(0, str(REPO))
    from ingestion.audio import SAMPLE_RATE, decode_audio

    clips = []
    for clip in SPEECH:
        if clip.is_file():
            pcm = np.clip(decode_audio(clip), -1, 1)
            clips.append((pcm * 32767).astype("<i2").tobytes())
            clips.append(bytes(SAMPLE_RATE))  # half a second of silence between clips
    if not clips:
        raise SystemExit("no shared speech clips found")
    target = int(seconds * SAMPLE_RATE) * 2
    written = 0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        while written < target:
            for clip in clips:
                part = clip[: target - written]
                out.writeframes(part)
                written += len(part)
                if written >= target:
                    break
    return written / 2 / SAMPLE_RATE


def _kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


class StandInEmbedder:
    """The packaged embedder with its `encode` replaced by a hash of each text (unit vectors of
    the model's dimension) after its first batch: what `--stand-in-embedder` runs. It says so in
    the report. Why: on 2 cores the real model embeds 30-45 chunks/s, so a 500 MB file (~497k
    chunks) takes 3-4.5 hours; reading, chunking (the real tokenizer counts every piece),
    staging, Milvus and BM25 all run for real.
    - The model's memory is in the figure: the first batch is embedded by the real model (so
      torch, the weights and a batch's working memory are resident, as in a real run; the
      model's memory does not grow with the file, it embeds one batch at a time).
    - Its vectors look like the model's to Milvus Lite: with a bfloat16 model the low 16 bits of
      each float32 are zero, Lite's Parquet files compress ~3.7x, and its merges, tiered by
      bytes, reach more rows (retrievers/lite_merges.py); the stand-in's vectors are cut the
      same way, else it would miss those peaks."""

    def __init__(self, real):
        self._real = real
        self._warm = False

    def encode(self, texts, progress=None):
        import zlib

        if not self._warm:
            self._warm = True
            return self._real.encode(texts, progress=progress)
        out = np.empty((len(texts), self._real.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(text.encode("utf-8", "replace")))
            vector = rng.standard_normal(out.shape[1]).astype(np.float32)
            out[row] = vector / np.linalg.norm(vector)
        if self._real.dtype == "bfloat16" and self._real.passage_backend == "torch":
            out.view(np.uint32)[:] &= np.uint32(0xFFFF0000)  # bfloat16's 8-bit mantissa
        if progress:
            progress(len(texts))
        return out

    def __getattr__(self, name):
        return getattr(self._real, name)


def child(path: str, index: str, settings: list[str]) -> int:
    """`--child`: ingest with the stand-in embedder through the Python API, print the CLI's JSON."""
    sys.path.insert(0, str(REPO))
    from rag.api import RAG
    from rag.models.embedder import Embedder

    overrides = dict(item.split("=", 1) for item in settings)
    rag = RAG.open(index, embedder=StandInEmbedder(Embedder("packaged")), **overrides)
    results = rag.ingest([path])
    rag.close()
    print(json.dumps({"files": [r.to_json() for r in results]}))
    return 0 if all(r.status != "failed" for r in results) else 3


def ingest(path: Path, index: Path, settings: list[str], stand_in: bool = False,
           rss_log: Path | None = None) -> dict:
    """`rag ingest PATH --index INDEX --json` in a child process (or `--child`, with the stand-in
    embedder): exit code, seconds, peak RSS of that process (VmHWM) and of its children, and
    the results. With `rss_log`, each sample (seconds, resident MB) goes there too."""
    if stand_in:
        command = [sys.executable, __file__, "--child", str(path), str(index)]
        command += [f"--set={item}" for item in settings]
    else:
        command = [sys.executable, "-m", "rag", "ingest", str(path), "--index", str(index), "--json"]
        for item in settings:
            command += ["--set", item]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    peak = {"rag_kb": 0, "children_kb": 0}

    def sample() -> None:
        log = open(rss_log, "a", encoding="utf-8") if rss_log else None
        while child.poll() is None:
            peak["rag_kb"] = max(peak["rag_kb"], _kb(child.pid, "VmHWM"))
            if log:
                log.write(f"{time.perf_counter() - started:.1f} {_kb(child.pid, 'VmRSS') // 1024}\n")
            tree = sum(_kb(pid, "VmRSS") for pid in _children(child.pid))
            peak["children_kb"] = max(peak["children_kb"], tree)
            time.sleep(0.2)
        if log:
            log.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    try:
        results = json.loads(out)
    except json.JSONDecodeError:
        results = {"error": (err or out)[-2000:]}
    return {"exit": child.returncode, "seconds": round(seconds, 1),
            "peak_rss_rag_mb": round(peak["rag_kb"] / 1024), "peak_rss_children_mb":
            round(peak["children_kb"] / 1024), "results": results}


def _record(work: Path, name: str, run: dict) -> None:
    """Each run's figures, appended to `runs.jsonl` in the work folder: a run stopped (kill -9
    of its ingest, the end of a working session) and resumed later adds up across runs."""
    line = {"name": name, "at": time.strftime("%Y-%m-%d %H:%M:%S"),
            **{k: v for k, v in run.items() if k != "results"},
            "files": run["results"].get("files") if isinstance(run["results"], dict) else None}
    with open(work / "runs.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _runs(work: Path, name: str) -> list[dict]:
    path = work / "runs.jsonl"
    if not path.is_file():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["name"] == name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=500, help="text file size in MB (default 500)")
    parser.add_argument("--no-text", action="store_true", help="skip the text file")
    parser.add_argument("--recording", action="store_true", help="also a long recording")
    parser.add_argument("--minutes", type=float, default=120, help="recording length (default 120)")
    parser.add_argument("--workdir", type=Path,
                        help="where to build files and indexes (default: a temp dir); run again "
                             "with the same folder to resume a stopped text ingest")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the ingest (repeatable)")
    parser.add_argument("--stand-in-embedder", action="store_true",
                        help="hash texts to vectors instead of running the model (see StandInEmbedder)")
    parser.add_argument("--rss-log", type=Path,
                        help="append each 0.2 s sample of the ingest's resident memory "
                             "(seconds, MB) to this file")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.set)
    stand_in = args.stand_in_embedder
    work = args.workdir or Path(tempfile.mkdtemp(prefix="huge-inputs-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {}
    if not args.no_text:
        text = work / f"huge-{args.mb:g}MB.txt"
        if args.workdir and text.is_file() and (work / "index-text").is_dir():
            # An earlier run in this folder was stopped: the same file (its bytes and mtime,
            # so the index keeps its staged parts) is ingested again and resumes.
            print(f"resuming {text} ({text.stat().st_size / MB:.0f} MB) into its index", flush=True)
        else:
            started = time.perf_counter()
            size = build_text(text, int(args.mb * MB))
            print(f"built {text} ({size / MB:.0f} MB) in {time.perf_counter() - started:.0f} s",
                  flush=True)
        report["text"] = ingest(text, work / "index-text", args.set, stand_in, args.rss_log)
        _record(work, "text", report["text"])
        if report["text"]["exit"] == 0:
            text.unlink()
    if args.recording:
        recording = work / f"speech-{args.minutes:g}min.wav"
        seconds = build_recording(recording, args.minutes * 60)
        print(f"built {recording} ({seconds / 60:.1f} min)", flush=True)
        report["recording"] = ingest(recording, work / "index-recording", args.set, stand_in,
                                     args.rss_log)
        recording.unlink()
    for name, run in report.items():
        files = run["results"].get("files", []) if isinstance(run["results"], dict) else []
        outcome = ", ".join(f"{f['status']} {f['chunks']} chunks"
                            f"{' (%d staged by a stopped run)' % f['resumed'] if f.get('resumed') else ''}"
                            f"{': ' + f['error'] if f['error'] else ''}"
                            for f in files) or run["results"]
        how = (" (stand-in embedder: the model embeds the first batch, then texts are hashed to"
               " vectors)" if stand_in else "")
        children = (f" (+ {run['peak_rss_children_mb']} MB in child processes)"
                    if run["peak_rss_children_mb"] else "")
        print(f"{name}{how}: exit {run['exit']}, {run['seconds']} s, peak RSS "
              f"{run['peak_rss_rag_mb']} MB{children}; {outcome}")
        runs = _runs(work, name)
        if len(runs) > 1:
            print(f"{name}, all {len(runs)} runs in {work} (stopped ones resumed): "
                  f"{sum(r['seconds'] for r in runs):.1f} s in all, highest peak RSS "
                  f"{max(r['peak_rss_rag_mb'] for r in runs)} MB; exits "
                  f"{[r['exit'] for r in runs]}")
    return 0 if all(run["exit"] == 0 for run in report.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
