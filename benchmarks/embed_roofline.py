"""How close passage embedding is to this CPU's float32 matrix-multiply peak.

Why: issue 17 asks for 2x the AVX2-only ingest throughput with Recall@10 within 0.005, i.e. with
(nearly) unchanged vectors. A float32 path cannot run faster than the CPU multiplies float32
matrices, so this counts the default model's FLOPs per chunk (its shape read from its
config.json: MiniLM-L6 has 6 layers, 384 wide, 1536 feed-forward; longest-first batches, padding
included), times torch and the float32 ONNX export on real Paul Graham chunks, and divides by the best `torch.mm` rate on the model's own
matrix shapes. `--mask` runs it as on an AVX2-only CPU (benchmarks/cpu_mask.py).

2026-12-05, 2-core AMD EPYC, masked, two runs: torch.mm peak 199-203 GFLOP/s; torch 19.6-20.1
chunks/s (0.56 of it), the export 26.6-30.0 chunks/s (0.75-0.83 of it); a float32 encoder at the
peak would embed ~36 chunks/s, 1.8x torch's rate (README "Embedding on AVX2-only CPUs").

    flock /tmp/rag-heavy.lock .venv/bin/python benchmarks/embed_roofline.py --index IDX [--mask]
"""
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
from index_chunks import live_chunk_texts, options  # noqa: E402
opts = options(__doc__.splitlines()[0])
import torch  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.models.embedder import embedder_for  # noqa: E402
print('torch capability', torch.backends.cpu.get_cpu_capability(), 'threads', torch.get_num_threads(), flush=True)
texts = live_chunk_texts(opts.index, opts.chunks)
def shape(model_dir: str) -> tuple[int, int, int]:
    """Hidden width, feed-forward width and layers, from the model's own config.json."""
    import json
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
def flops(lengths, batch, H, I, LAYERS):
    """FLOPs of the encoder over `lengths` (tokens per text), batched longest first, padded."""
    lengths = sorted(lengths, reverse=True); total = 0
    for i in range(0, len(lengths), batch):
        b = lengths[i:i + batch]; L = b[0]; n = len(b)
        lin = n * L * (4 * H * H + 2 * H * I)
        att = n * L * L * H * 2
        total += 2 * LAYERS * (lin + att)
    return total
# the GEMM peak on the encoder's own shapes (batch 16 x 256 tokens)
def gemm(m, k, n, reps=20):
    a = torch.randn(m, k); b = torch.randn(k, n); torch.mm(a, b)
    best = 1e9
    for _ in range(3):
        st = time.perf_counter()
        for _ in range(reps): torch.mm(a, b)
        best = min(best, (time.perf_counter() - st) / reps)
    return 2 * m * k * n / best / 1e9
shapes = {'qkv 4096x384x1152': (4096, 384, 1152), 'ffn-in 4096x384x1536': (4096, 384, 1536),
          'ffn-out 4096x1536x384': (4096, 1536, 384), 'big 2048x2048x2048': (2048, 2048, 2048)}
peaks = {k: gemm(*v) for k, v in shapes.items()}
for k, v in peaks.items(): print(f'torch.mm fp32 {k}: {v:.1f} GFLOP/s', flush=True)
peak = max(peaks.values())
for backend in ('torch', 'onnx'):
    s = Settings(embedding_dtype='float32', embedding_passage_backend=backend, embedding_query_backend='torch' if backend == 'torch' else 'auto')
    e = embedder_for('packaged', s)
    e.encode(texts[:16])
    best = 1e9
    for _ in range(2):
        st = time.perf_counter(); e.encode(texts); best = min(best, time.perf_counter() - st)
    lengths = [min(e.max_tokens, e.count_tokens(t) + 2) for t in texts]  # + [CLS] and [SEP]
    batch = e._passages.batch_size
    f = flops(lengths, batch, *shape(e.path))
    print(f'{backend}: batch {batch}, mean tokens {statistics.mean(lengths):.0f}, {len(texts)/best:.1f} chunks/s, '
          f'{f/len(texts)/1e9:.2f} GFLOP/chunk, {f/best/1e9:.1f} GFLOP/s = {f/best/1e9/peak:.2f} of the best torch.mm '
          f'({peak:.1f}); ceiling at that peak {peak/(f/best/1e9):.2f}x', flush=True)
