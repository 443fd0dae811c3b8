"""Does `rag drift` flag new domains and leave more of the same alone?

1. Calibration (Paul Graham essays only): every essay is chunked and embedded once; for
   `--splits` random halves of the essays, one half is the reference (as the profile would hold
   it) and the other the new documents; the domain-classifier ROC AUC of each split is printed.
   The threshold in eval/drift.py was chosen above these values.
2. The real path: half of the essays ingested with `RAG.ingest` (the profile is kept on the
   way), then `rag drift` on the other half, on the Solana PDF and on the ARAGOG papers; each
   statistic, the centroid distance and the exit code are printed.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/drift_detection.py
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "qa"
ESSAYS = DATA / "paul_graham" / "essays"
SOLANA = DATA / "blockchain_solana" / "source_files"
ARAGOG = DATA / "aragog_arxiv" / "papers"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.api import RAG
    from rag.cli import main as rag_main

    essays = sorted(p for p in ESSAYS.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rag = RAG.open(tmp / "scratch")
        embedder = MemoEmbedder(rag.embedder)
        rag = RAG.open(tmp / "scratch", embedder=embedder)
        print(f"# calibration: {args.splits} random halves of {len(essays)} essays")
        calibration = calibrate(rag, essays, args.splits, args.seed)
        rag.close()

        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(essays))
        half_a, half_b = tmp / "half_a", tmp / "half_b"
        half_a.mkdir(), half_b.mkdir()
        for rank, i in enumerate(order):
            shutil.copy(essays[i], (half_a if rank % 2 == 0 else half_b) / essays[i].name)
        index = tmp / "index"
        started = time.perf_counter()
        with RAG.open(index, embedder=embedder) as ref:
            results = ref.ingest([half_a])
        print(f"\n# reference: {len(results)} essays ingested in {time.perf_counter() - started:.0f} s")
        opener = functools.partial(RAG.open, embedder=embedder)
        rows = {}
        for name, path in (("paul_graham other half", half_b), ("solana pdf", SOLANA),
                           ("aragog papers", ARAGOG)):
            started = time.perf_counter()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = rag_main(["drift", str(path), "--index", str(index), "--json",
                                 "--set", "ocr=never"], open_rag=opener)
            doc = json.loads(out.getvalue())["documents"]
            rows[name] = (doc, code, time.perf_counter() - started)
            print(f"command: rag drift {path} --index INDEX --json --set ocr=never -> exit {code}")
    print(f"\n{'new documents':<26}{'chunks':>8}{'ROC AUC':>9}{'thresh':>8}{'centroid d':>12}"
          f"{'exit':>6}{'s':>6}")
    for name, (doc, code, seconds) in rows.items():
        print(f"{name:<26}{doc['new_chunks']:>8}{doc['value']:>9.3f}{doc['threshold']:>8.2f}"
              f"{doc['centroid_cosine_distance']:>12.4f}{code:>6}{seconds:>6.0f}")
    print(f"\ncalibration AUCs (PG halves): {', '.join(f'{v:.3f}' for v in calibration)}; "
          f"max {max(calibration):.3f}")
    ok = (rows["paul_graham other half"][1] == 0 and rows["solana pdf"][1] == 1
          and rows["aragog papers"][1] == 1)
    print("acceptance:", "met" if ok else "NOT met")
    return 0 if ok else 1


class MemoEmbedder:
    """The packaged embedder, remembering each text's vector: the essays embedded for the
    calibration are not embedded again when half of them is ingested and the other half
    tested (same model, same vectors; only time is saved)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts, progress=None):
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            for text, vector in zip(todo, self.embedder.encode(todo)):
                self.memo[text] = vector
        if progress:
            progress(len(texts))
        return np.stack([self.memo[t] for t in texts]) if texts else self.embedder.encode([])

    def __getattr__(self, name):
        return getattr(self.embedder, name)


def calibrate(rag, essays: list[Path], splits: int, seed: int) -> list[float]:
    """AUC of random essay halves against each other (the profile's sample size: 2000)."""
    from eval.drift import document_drift, passage_groups
    from ingestion.chunking import Chunker
    from ingestion.discovery import source_id_for
    from ingestion.preparation import FilePreparer
    from rag.drift_profile import source_key

    s = rag.settings
    preparer = FilePreparer(Chunker(rag.embedder.count_tokens, s.chunk_size, s.chunk_overlap))
    texts, owner, positions = [], [], []
    started = time.perf_counter()
    for n, essay in enumerate(essays):
        for chunk in preparer.prepare(essay, source_id_for(essay), ""):
            texts.append(chunk.text)
            owner.append(n)
            positions.append(chunk.position)
    vectors = rag.embedder.encode(texts)
    print(f"{len(texts)} chunks embedded in {time.perf_counter() - started:.0f} s")
    owner, positions = np.array(owner), np.array(positions)
    keys = np.array([source_key(source_id_for(e)) for e in essays])
    aucs = []
    for split in range(splits):
        rng = np.random.default_rng(seed + 100 + split)
        in_a = np.zeros(len(essays), bool)
        in_a[rng.permutation(len(essays))[: len(essays) // 2]] = True
        a, b = in_a[owner], ~in_a[owner]
        a_idx = np.flatnonzero(a)
        if len(a_idx) > 2000:  # the profile's reservoir
            a_idx = np.sort(rng.choice(a_idx, 2000, replace=False))
        b_idx = np.flatnonzero(b)
        result = document_drift(vectors[a_idx], passage_groups(keys[owner[a_idx]], positions[a_idx]),
                                vectors[b_idx], passage_groups(keys[owner[b_idx]], positions[b_idx]),
                                seed=split)
        aucs.append(result.value)
        print(f"split {split}: {len(a_idx)} reference vs {len(b_idx)} new chunks: ROC AUC "
              f"{result.value:.3f}, centroid distance {result.centroid_distance:.4f}")
    return aucs


if __name__ == "__main__":
    sys.exit(main())
