"""Ray ingest throughput with 1 and 2 worker nodes, the per-stage costs, and what they imply
for 1M pages and 1,000 hours of audio on N nodes.

  cluster  for nodes in --nodes: a real loopback cluster (`ray start --head` + nodes-1
           `ray start --address`, the CPUs of --cpus split between them), then `rag ingest
           CORPUS --engine ray` (the CLI, one writer) into a fresh index: wall time, chunks/s;
  stages   in this process, no Ray, each stage alone over the same files: parsing (load + chunk,
           OCR included) in s per PDF page and per chunk, Whisper in s per second of audio,
           embedding in chunks/s, and the writer (catalog + BM25 + Milvus upsert + publish) in
           chunks/s;
  estimate parsing, transcription and embedding scale with nodes; the writer does not (one
           driver), so the time on N nodes is max(work / (N x per-node rate), chunks / writer).
The figures are for the machine it runs on; on 2 shared cores a second node adds processes,
not cores.

    flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/ray_ingest.py [--nodes 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = REPO.parent / "shared" / "data"
DEFAULT_CORPUS = [str(SHARED / "documents"), str(SHARED / "audio")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_run(nodes: int, cpus: int, corpus: list[str], sets: list[str]) -> dict:
    from tests.support.cluster import LocalCluster

    head_cpus = cpus if nodes == 1 else max(1, cpus // nodes)
    cluster = LocalCluster(port=free_port(), head_cpus=head_cpus,
                           worker_cpus=max(1, cpus // nodes), workers=nodes - 1)
    started = time.monotonic()
    cluster.start()
    up = time.monotonic() - started
    index = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    per_node = ["--set", f"ray_parsers={nodes}", "--set", f"ray_encoders={nodes}",
                "--set", f"ray_transcribers={nodes}", "--set", "ray_model_threads=1"]
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "rag", "ingest", *corpus, "--index", str(index),
                               "--engine", "ray", "--ray-address", cluster.address, "--json",
                               *per_node, *sets], capture_output=True, text=True, cwd=REPO)
        took = time.monotonic() - started
    finally:
        cluster.stop()
    if done.returncode not in (0, 3):
        raise SystemExit(f"ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    totals = report["totals"]
    failed = [f for f in report["files"] if f["status"] == "failed"]
    if failed:  # a throughput that silently counts failures would mislead; say what failed
        reasons = sorted({f["error"] for f in failed})
        print(f"{nodes} node(s): {len(failed)} files failed, {len(reasons)} distinct reasons, "
              f"e.g. {reasons[0]}", file=sys.stderr)
    return {"nodes": nodes, "cluster_start_s": round(up, 1), "ingest_s": round(took, 1),
            "chunks": totals["chunks"], "files": totals["files"], "failed": len(failed),
            "chunks_per_s": round(totals["chunks"] / took, 2)}


def stage_costs(corpus: list[str]) -> dict:
    """Each stage alone, in this process, over the corpus (see the module docstring)."""
    import numpy as np

    from ingestion.audio import audio_duration
    from ingestion.discovery import expand_paths, file_sha256, source_id_for
    from ingestion.loaders import AUDIO_EXTENSIONS
    from rag import parts
    from rag.config import load_settings
    from rag.scale import make_preparer
    from retrievers.catalog import Publication
    from retrievers.index import ChunkIndex
    from retrievers.milvus_store import MilvusDenseStore

    settings = load_settings(tempfile.mkdtemp(prefix="ray-stages-"))
    files, _ = expand_paths(corpus)
    documents = make_preparer(settings, audio=False)
    recordings = make_preparer(settings, audio=True)
    parse_s = whisper_s = audio_s = 0.0
    pdf_pages = pdf_s = 0.0
    prepared = []
    for path in files:
        audio = path.suffix.lower() in AUDIO_EXTENSIONS
        started = time.perf_counter()
        try:
            chunks = (recordings if audio else documents).prepare(
                path, source_id_for(path), file_sha256(path))
        except Exception:  # the failing fixtures fail here too; their time counts
            chunks = []
        took = time.perf_counter() - started
        if audio:
            whisper_s += took
            audio_s += audio_duration(path) or 0.0 if chunks else 0.0
        else:
            parse_s += took
            if path.suffix.lower() == ".pdf" and chunks:
                pdf_pages += len({c.page for c in chunks if c.page is not None})
                pdf_s += took
        if chunks:
            prepared.append((path, chunks))
    texts = [c.text for _, chunks in prepared for c in chunks]
    n_doc_chunks = sum(len(c) for p, c in prepared if p.suffix.lower() not in AUDIO_EXTENSIONS)
    embedder = parts.default_embedder(settings)
    embedder.encode(texts[:32])  # load and warm up
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - started
    directory = Path(tempfile.mkdtemp(prefix="ray-writer-"))
    index = ChunkIndex(directory, MilvusDenseStore(str(directory / "milvus.db"), "c", vectors.shape[1]),
                       bm25_source_terms=settings.bm25_source_terms)  # time the write the default does
    started = time.perf_counter()
    row = 0
    for batch_start in range(0, len(prepared), 16):
        batch = prepared[batch_start:batch_start + 16]
        n = sum(len(c) for _, c in batch)
        index.write_sources([(Publication(c[0].source_id, str(p), c[0].content_hash, "x",
                                          [x.chunk_id for x in c]), c) for p, c in batch],
                            np.asarray(vectors[row:row + n]))
        row += n
    index.finish_writes()
    write_s = time.perf_counter() - started
    index.close()
    return {
        "files": len(files), "chunks": len(texts),
        "parse_s_per_pdf_page": round(pdf_s / max(pdf_pages, 1), 3), "pdf_pages": int(pdf_pages),
        "parse_s_per_chunk": round(parse_s / max(n_doc_chunks, 1), 4),
        "chunks_per_pdf_page": round(sum(len(c) for p, c in prepared if p.suffix.lower() == ".pdf")
                                     / max(pdf_pages, 1), 2),
        "whisper_s_per_audio_s": round(whisper_s / max(audio_s, 1e-9), 3),
        "audio_s": round(audio_s, 1),
        "audio_chunks_per_hour": round(sum(len(c) for p, c in prepared
                                           if p.suffix.lower() in AUDIO_EXTENSIONS)
                                       / max(audio_s, 1e-9) * 3600, 1),
        "embed_chunks_per_s": round(len(texts) / embed_s, 1),
        "writer_chunks_per_s": round(len(texts) / write_s, 1),
    }


def estimate(stages: dict, pages: float, audio_hours: float, nodes: list[int]) -> list[dict]:
    """Hours to ingest `pages` PDF pages and `audio_hours` of audio on N nodes like this one."""
    chunks = pages * stages["chunks_per_pdf_page"] + audio_hours * stages["audio_chunks_per_hour"]
    node_s = (pages * stages["parse_s_per_pdf_page"]
              + audio_hours * 3600 * stages["whisper_s_per_audio_s"]
              + chunks / stages["embed_chunks_per_s"])
    writer_s = chunks / stages["writer_chunks_per_s"]
    return [{"nodes": n, "compute_h": round(node_s / n / 3600, 1),
             "writer_h": round(writer_s / 3600, 1),
             "total_h": round(max(node_s / n, writer_s) / 3600, 1)} for n in nodes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="*", default=DEFAULT_CORPUS)
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs of the whole cluster")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="settings for the ingests (e.g. milvus_uri=http://127.0.0.1:19530)")
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    sets = [a for kv in args.set for a in ("--set", kv)]
    out: dict = {"runs": [cluster_run(n, args.cpus, args.corpus, sets) for n in args.nodes]}
    for run in out["runs"]:
        print(f"{run['nodes']} node(s): {run['chunks']} chunks of {run['files']} files in "
              f"{run['ingest_s']} s = {run['chunks_per_s']} chunks/s "
              f"(cluster start {run['cluster_start_s']} s)")
    if not args.no_stages:
        out["stages"] = stages = stage_costs(args.corpus)
        print("per-stage costs:", json.dumps(stages))
        out["estimate"] = estimate(stages, 1e6, 1000, [1, 4, 16, 64])
        print("1M PDF pages + 1,000 h of audio, nodes like this one:")
        for row in out["estimate"]:
            print(f"  {row['nodes']:>3} nodes: compute {row['compute_h']} h, writer "
                  f"{row['writer_h']} h -> {row['total_h']} h")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
