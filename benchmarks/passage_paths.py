"""Raw passage-embedding speed of every passage path, with each one's cosine to torch float32.

Why: `embedding_passage_backend = auto` picks a path per CPU (README "Embedding on AVX2-only
CPUs", rules 21-24 and 43), and a new CPU kind needs the same label-free first look before any
recall run: torch float32, torch in the `auto` dtype, the float32 ONNX export and its int8 copy,
each batched (8 texts per call on a session with every core) and one text per call (one call per
core at once, single-threaded sessions, today's default for the ONNX paths). It also checks that
one text per call gives the same vectors in any order (an int8 vector must depend on its own text
only). `--mask` runs it as on an AVX2-only CPU (benchmarks/cpu_mask.py; name no dtype: float32).

2026-12-06, 2-core Intel Xeon VM (AVX-512 VNNI/BF16, AMX), 320-480 Paul Graham chunks: masked,
int8 one text per call 2.12x torch float32 (batched 1.85x), the export 1.59x (batched 1.45x);
unmasked, torch bfloat16 58.8 chunks/s, int8 one text per call 92.3, the export 46.8.

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/passage_paths.py --index IDX [--mask]
"""
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
from index_chunks import live_chunk_texts, options  # noqa: E402

opts = options(__doc__.splitlines()[0], lambda parser: parser.add_argument(
    "--rounds", type=int, default=2, help="timed runs per path (the best counts)"))
import numpy as np  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.models.embedder import embedder_for  # noqa: E402
from rag.models.onnx_embedder import OnnxEmbedder  # noqa: E402

texts = live_chunk_texts(opts.index, opts.chunks)


def rate(encode) -> tuple[float, np.ndarray]:
    """(chunks/s of the best of `--rounds` runs after a warm-up, the vectors)."""
    encode(texts[:8])
    best, vectors = 1e9, None
    for _ in range(opts.rounds):
        start = time.perf_counter()
        vectors = encode(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, vectors


def onnx_path(backend: str, batch: int) -> OnnxEmbedder:
    """The export (`onnx`) or its int8 copy, `batch` texts per call (1: one call per core)."""
    built = embedder_for("packaged", Settings(embedding_passage_backend=backend))
    built.encode(texts[:1])  # makes the export or the int8 copy once per machine
    shipped = built._onnx_passages
    return OnnxEmbedder(backend, shipped.path, pooling=shipped.pooling,
                        max_tokens=shipped.max_tokens, batch_size=batch)


reference_rate, reference = rate(embedder_for("packaged", Settings(
    embedding_dtype="float32", embedding_passage_backend="torch")).encode)
print(f"torch float32: {reference_rate:.1f} chunks/s", flush=True)
paths = [] if opts.mask else [("torch, auto dtype", embedder_for("packaged", Settings(
    embedding_passage_backend="torch")))]
paths += [(f"{backend} {'one text per call' if batch == 1 else f'{batch} per call'}",
           onnx_path(backend, batch)) for backend in ("onnx", "onnx-int8") for batch in (8, 1)]
for name, embedder in paths:
    chunks_per_s, vectors = rate(embedder.encode)
    cosine = (vectors * reference).sum(axis=1)
    line = (f"{name}: {chunks_per_s:.1f} chunks/s = {chunks_per_s / reference_rate:.2f}x torch "
            f"float32; cosine to it mean {cosine.mean():.4f}, lowest {cosine.min():.4f}")
    if getattr(embedder, "batch_size", 0) == 1:
        reversed_order = embedder.encode(texts[::-1])[::-1]
        line += f"; same vectors in reverse order: {bool(np.array_equal(reversed_order, vectors))}"
    print(line, flush=True)
