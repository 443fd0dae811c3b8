"""`rag models finetune`: fine-tune the embedding model on the user's own index, on CPU.

The pipeline, each stage cached in a work folder (default `OUT.work`) so a re-run after an
interruption resumes where it stopped:

1. questions: the evaluation suite's generator (`eval.generate`) writes one question per sampled
   chunk with the local LLM; each row is appended to `questions.jsonl` as it is written (a
   re-run skips the chunks already asked about). `--questions-file` takes such rows from a
   file instead (`rag eval generate` output, or any JSONL of the dataset format whose reference
   context is a chunk's text), so the slow LLM part can be reused.
2. snapshot and mining: the index is never written nor held: its catalog is copied with
   SQLite's online backup and its other files (BM25 snapshot, Milvus Lite folder) are copied
   into the work folder, and the copy is opened. (Milvus Lite lets one process open a database
   at a time, so a serving process keeps its index; an index on a Milvus server is only
   searched.) Each question's positive is its source chunk; one hard negative is mined from the
   copy's BM25 and dense rankings, taking turns, skipping the positive, its neighbours in the
   same source (chunks overlap) and any chunk that holds the reference answer.
3. split: validation questions are held out by source document (whole documents, drawn with the
   seed); an index of fewer than `MIN_SOURCES_FOR_DOC_SPLIT` documents is split by contiguous
   position blocks instead, and the card says so. Validation ranks each held-out question's
   positive among a fixed pool of chunks (its documents' chunks plus a seeded sample of others):
   Recall@10 and MRR@10 before and after.
4. training: sentence-transformers' `MultipleNegativesRankingLoss` (in-batch negatives plus the
   hard negative) in a plain PyTorch loop, AdamW with warmup and linear decay over a fixed plan
   (`epochs` passes over the training pairs). Why not `SentenceTransformerTrainer`: it needs the
   `datasets` and `accelerate` packages (not in the install) and checkpoints its optimizer and
   RNG state with pickle, which this project does not read back. The batch order and dropout
   are seeded per step, so a run is deterministic for a seed and a resumed run continues with
   the same batches. A checkpoint (weights + optimizer state as safetensors, state as JSON)
   is written every `checkpoint_s` seconds and when the time budget runs out: the plan is fixed
   by the data and the options, the budget only says where this run stops (a re-run with a
   larger budget continues the same plan).
5. output: a sentence-transformers folder (loads like any candidate: `rag models compare
   --model OUT`, `rag reindex --embedding-model OUT`) with `README.md` (the model card) and
   `finetune.json` (the same facts for programs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from eval.errors import EvalError

DEFAULT_QUESTIONS = 150
DEFAULT_BUDGET_MIN = 10.0
MIN_BUDGET_S = 60.0  # loading, two validation passes and a checkpoint take about this much
MIN_TRAIN_PAIRS = 8
MIN_SOURCES_FOR_DOC_SPLIT = 3
POSITION_BLOCKS = 5
VAL_FRACTION = 0.2
POOL_MAX = 600
MINE_DEPTH = 30
# A mined negative must score below this share of the positive's similarity to the question
# under the index's own model (NV-Retriever's "TopK-PercPos"): the chunk ranked first that is not
# the positive often answers the question too, and training against it would teach the wrong
# thing (seen on the Solana PDF: "average transaction rate for Bitcoin and Ethereum" had another
# chunk giving those rates as its top dense candidate).
NEGATIVE_MARGIN = 0.95
MINING = f"v2: one negative, dense/bm25 in turn, depth {MINE_DEPTH}, margin {NEGATIVE_MARGIN}"
CARD_FILE, RECORD_FILE = "README.md", "finetune.json"
CHECKPOINT_DIR, LATEST = "checkpoint", "latest.json"
WORD = re.compile(r"\w+")


class FinetuneError(EvalError):
    """A problem with the fine-tuning inputs (index, base model, budget, data); one line."""


@dataclass
class Plan:
    """Everything that fixes the trained weights (with the training data): a checkpoint is
    resumed only by a run with the same plan and data."""

    base: str
    seed: int = 0
    epochs: int = 4
    batch_size: int = 16
    lr: float = 3e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0
    max_seq_length: int = 256
    hard_negatives: bool = True

    def key(self, data_hash: str) -> str:
        return hashlib.sha256(json.dumps([asdict(self), data_hash], sort_keys=True)
                              .encode()).hexdigest()[:16]


@dataclass
class Triple:
    """One training (or validation) example: a question, its source chunk, a hard negative."""

    question: str
    positive_id: str
    positive: str
    negative_id: str | None
    negative: str | None
    source: str
    group: str = ""
    negative_from: str | None = None


@dataclass
class Data:
    train: list[Triple]
    val: list[Triple]
    pool: dict[str, str]  # validation pool: chunk id -> text
    split: str  # how the validation split was made, in words
    hash: str
    stats: dict[str, Any] = field(default_factory=dict)


Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- inputs ------------------------------------------------------------------------------------
def check_index(index_dir: Path) -> Path:
    from retrievers.index import CATALOG_FILE

    if not index_dir.exists():
        raise FinetuneError(f"{index_dir}: no such folder; build an index with "
                            f"`rag ingest PATH... --index {index_dir}`")
    if not (index_dir / CATALOG_FILE).is_file():
        raise FinetuneError(f"{index_dir}: no index here ({CATALOG_FILE} missing); build one with "
                            f"`rag ingest PATH... --index {index_dir}`")
    return index_dir


def check_store(index_dir: Path, settings: dict[str, Any] | None = None) -> Any:
    """The index's settings, refusing an index whose vectors are on a Milvus server: opening a
    copy of its catalog against the live collection could "repair" that collection to the
    copy's state (an ingest in progress), so it is never done."""
    from rag.config import load_settings

    served = load_settings(index_dir, **(settings or {}))
    if not served.is_milvus_lite:
        raise FinetuneError(f"{index_dir}: its vectors are on a Milvus server "
                            f"({served.milvus_target}); fine-tuning reads a private copy of a "
                            "Milvus Lite index only: ingest the documents into a local index "
                            "and fine-tune on that")
    return served


def index_model_ref(index_dir: Path) -> str | None:
    """The model the index serves from (its catalog's record), read without opening the index."""
    from rag.serving import recorded_settings, ref_of

    recorded = recorded_settings(index_dir)
    return ref_of(recorded) if recorded else None


def resolve_base(base: str) -> str:
    """A local sentence-transformers folder for `base`, or a one-line error: nothing can be
    downloaded here, so a hub id that is not in the local cache cannot be a base."""
    from rag.errors import ModelFileError
    from rag.models.candidates import CANDIDATES
    from rag.models.embedding import resolve_embedding_model

    if base.startswith("minilm-"):
        base = "packaged"  # the candidate ids of the packaged MiniLM: its fp32 weights
    elif base in CANDIDATES:
        raise FinetuneError(f"--base {base}: only a sentence-transformers model can be fine-tuned "
                            "(the packaged MiniLM, `packaged`, or a local folder)")
    try:
        path = resolve_embedding_model(base)
    except ModelFileError as exc:
        raise FinetuneError(f"--base {base}: {exc}") from None
    if not Path(path).is_dir():
        try:  # a hub id works only when it is already in the local cache
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, local_files_only=True)
        except Exception:
            raise FinetuneError(f"--base {base}: cannot load it offline (not a local folder and "
                                "not in the Hugging Face cache); pass a sentence-transformers "
                                "folder, or `packaged`") from None
    if not (Path(path) / "modules.json").is_file() and not (Path(path) / "config.json").is_file():
        raise FinetuneError(f"--base {base}: {path} is not a sentence-transformers folder")
    return str(path)


def snapshot_index(index_dir: Path, target: Path) -> Path:
    """A private copy of the index (catalog by SQLite's online backup, a consistent copy even
    while another process writes it; BM25 and Milvus Lite files copied), never opening the
    original's stores."""
    from retrievers.index import CATALOG_FILE

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(index_dir, target, ignore=shutil.ignore_patterns(CATALOG_FILE + "*", "LOCK"))
    source = sqlite3.connect(f"file:{index_dir / CATALOG_FILE}?mode=ro", uri=True)
    copy = sqlite3.connect(target / CATALOG_FILE)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise FinetuneError(f"{path}:{n}: not a JSON line") from None
    return rows


# --- stage 1: questions ----------------------------------------------------------------------------
def generate_questions(rag: Any, judge_factory: Callable[[], Any], n: int, seed: int,
                       cache: Path, say: Say, progress: bool = True) -> list[dict[str, Any]]:
    """`n` generated questions (fewer where the model fails on a chunk), appended to `cache` as
    they come; chunks already in `cache` (asked or skipped) are not asked again."""
    from tqdm import tqdm

    from eval.generate import generate_case, live_chunks, sample_chunks
    from eval.judge import JudgeOutputError

    done = {r["chunk_id"]: r for r in read_jsonl(cache)} if cache.is_file() else {}
    picked = sample_chunks(live_chunks(rag), n, seed)
    todo = [c for c in picked if c.chunk_id not in done]
    if todo:
        say(f"writing {len(todo)} questions with the local LLM ({len(done)} already in "
            f"{cache}); a re-run resumes from there")
        judge = judge_factory()
        with cache.open("a", encoding="utf-8") as out:
            for chunk in tqdm(todo, desc="questions", unit="q", disable=not progress):
                try:
                    row = {"chunk_id": chunk.chunk_id, **generate_case(chunk, judge)}
                except JudgeOutputError as exc:
                    row = {"chunk_id": chunk.chunk_id, "skipped": str(exc)[:300]}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                done[chunk.chunk_id] = row
    return [done[c.chunk_id] for c in picked if not done[c.chunk_id].get("skipped")]


# --- stage 2: positives and hard negatives -------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def positive_of(row: dict[str, Any], chunks: dict[str, Any], by_text: dict[str, str]) -> str | None:
    """The chunk a question row was written from: `chunk_id`, an id `gen-<chunk id>`, or the
    chunk whose text is the row's first reference context."""
    for cid in (row.get("chunk_id"), str(row.get("id", ""))[4:] if str(row.get("id", "")).startswith("gen-") else None):
        if cid and cid in chunks:
            return cid
    refs = row.get("reference_contexts") or []
    return by_text.get(_norm(refs[0])) if refs else None


def eligible_negative(candidate: Any, positive: Any, answer: str) -> bool:
    """Not the positive, not a neighbour in its source (chunks overlap), not a chunk holding
    the reference answer (it would be a false negative)."""
    if candidate.chunk_id == positive.chunk_id:
        return False
    if candidate.source_id == positive.source_id and abs(candidate.position - positive.position) <= 1:
        return False
    words = WORD.findall(answer.lower())
    return not (len(words) >= 2 and _norm(answer) in _norm(candidate.text))


def mine(rag: Any, rows: list[dict[str, Any]], say: Say, progress: bool = True
         ) -> tuple[list[Triple], dict[str, Any], dict[str, Any]]:
    """Triples from question rows, with one hard negative each from the index's own rankings
    (dense for even rows, BM25 for odd, the other when one has nothing eligible), scoring below
    `NEGATIVE_MARGIN` of the positive under the index's model; also the index's live chunks
    (for the validation pool) and counts."""
    import numpy as np
    from tqdm import tqdm

    from eval.generate import live_chunks

    embedder = rag.embedder
    vectors: dict[str, Any] = {}

    def vector(chunk: Any) -> Any:
        if chunk.chunk_id not in vectors:
            vectors[chunk.chunk_id] = embedder.encode([chunk.text])[0]
        return vectors[chunk.chunk_id]

    too_close = 0

    chunks = {c.chunk_id: c for c in live_chunks(rag)}
    by_text = {_norm(c.text): cid for cid, c in chunks.items()}
    searches = rag.retriever.retrievers
    order = [name for name in ("dense", "bm25") if name in searches] or list(searches)
    triples, unmatched, from_counts = [], 0, {name: 0 for name in order}
    say(f"mining hard negatives for {len(rows)} questions with {' and '.join(order)}")
    for i, row in enumerate(tqdm(rows, desc="negatives", unit="q", disable=not progress)):
        cid = positive_of(row, chunks, by_text)
        if cid is None or not row.get("question"):
            unmatched += 1
            continue
        positive = chunks[cid]
        answer = str(row.get("reference_answer") or "")
        picked = None
        turn = order[i % len(order):] + order[:i % len(order)]
        query = np.asarray(embedder.encode_query(row["question"]), dtype=np.float32)
        ceiling = NEGATIVE_MARGIN * float(query @ vector(positive))
        for name in turn:
            ranked = searches[name](row["question"], MINE_DEPTH, None)
            found = rag.index.chunks([r[0] for r in ranked if r[0] in chunks])
            for rid, _ in ranked:
                if rid in found and eligible_negative(found[rid], positive, answer):
                    if float(query @ vector(found[rid])) >= ceiling:
                        too_close += 1  # as close as the positive: likely an answer too
                        continue
                    picked = (name, found[rid])
                    break
            if picked:
                break
        triples.append(Triple(row["question"].strip(), cid, positive.text,
                              picked[1].chunk_id if picked else None,
                              picked[1].text if picked else None, positive.source_id,
                              negative_from=picked[0] if picked else None))
        if picked:
            from_counts[picked[0]] += 1
    stats = {"questions": len(rows), "matched": len(triples), "unmatched": unmatched,
             "negatives_from": from_counts,
             "without_negative": sum(1 for t in triples if t.negative is None),
             "skipped_as_close_as_positive": too_close, "mining": MINING}
    return triples, chunks, stats


# --- stage 3: split and validation pool -------------------------------------------------------------
def split(triples: list[Triple], chunks: dict[str, Any], seed: int
          ) -> tuple[list[Triple], list[Triple], dict[str, str], str]:
    """(train, val, validation pool, how) with validation held out by source document, or by
    position blocks when the index has fewer than `MIN_SOURCES_FOR_DOC_SPLIT` documents."""
    sources = sorted({t.source for t in triples})
    if len(sources) >= MIN_SOURCES_FOR_DOC_SPLIT:
        for t in triples:
            t.group = t.source
        how = f"held out by source document ({{held}} of {len(sources)} documents)"
    else:
        last = {}
        for c in chunks.values():
            last[c.source_id] = max(last.get(c.source_id, 0), c.position)
        for t in triples:
            size = max(1, math.ceil((last[t.source] + 1) / POSITION_BLOCKS))
            t.group = f"{t.source}#{chunks[t.positive_id].position // size}"
        how = (f"held out by contiguous position blocks ({{held}} of "
               f"{len({t.group for t in triples})} blocks of about a fifth of a document): the "
               f"index has only {len(sources)} source document(s)")
    groups = sorted({t.group for t in triples})
    random.Random(seed).shuffle(groups)
    target = max(1, round(VAL_FRACTION * len(triples)))
    held: set[str] = set()
    count = 0
    for g in groups:
        if count >= target or len(held) >= len(groups) - 1:
            break
        size = sum(1 for t in triples if t.group == g)
        if count + size > 2 * target and count > 0:
            continue  # a very large document would take most of the data
        held.add(g)
        count += size
    train = [t for t in triples if t.group not in held]
    val = [t for t in triples if t.group in held]
    # The pool: every validation positive and negative, the held-out documents' chunks, then a
    # seeded sample of the rest, up to POOL_MAX chunks.
    pool_ids = {t.positive_id for t in val} | {t.negative_id for t in val if t.negative_id}
    held_sources = {t.source for t in val}
    same_docs = sorted(cid for cid, c in chunks.items() if c.source_id in held_sources)
    others = sorted(cid for cid, c in chunks.items() if c.source_id not in held_sources)
    rng = random.Random(seed + 1)
    rng.shuffle(same_docs)
    rng.shuffle(others)
    for cid in same_docs + others:
        if len(pool_ids) >= POOL_MAX:
            break
        pool_ids.add(cid)
    pool = {cid: chunks[cid].text for cid in sorted(pool_ids)}
    return train, val, pool, how.format(held=len(held))


def data_hash(train: list[Triple], val: list[Triple], pool: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for part in ([asdict(t) for t in train], [asdict(t) for t in val], sorted(pool)):
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode())
    return "sha256:" + digest.hexdigest()[:32]


def prepare_data(index_dir: Path, work: Path, *, questions: int, seed: int,
                 questions_file: Path | None, judge_model: str | None, judge_cache: Path | None,
                 say: Say, progress: bool = True,
                 settings: dict[str, Any] | None = None) -> Data:
    """Stages 1-3, cached in `work/data.json` (keyed by the inputs that make it)."""
    key = {"index": str(index_dir.resolve()), "questions": questions, "seed": seed,
           "questions_file": str(questions_file.resolve()) if questions_file else None,
           "mining": MINING,
           "questions_file_sha256": (hashlib.sha256(questions_file.read_bytes()).hexdigest()
                                     if questions_file else None)}
    cached = work / "data.json"
    if cached.is_file():
        saved = json.loads(cached.read_text())
        if saved.get("key") == key:
            say(f"training data from {cached} (delete it to mine again)")
            return Data([Triple(**t) for t in saved["train"]], [Triple(**t) for t in saved["val"]],
                        saved["pool"], saved["split"], saved["hash"], saved["stats"])
    from rag.api import RAG

    overrides = dict(settings or {})
    served = check_store(index_dir, overrides)
    snap = snapshot_index(index_dir, work / "index-snapshot")
    lite = Path(served.milvus_target)
    if served.milvus_uri and lite.resolve() != (index_dir / "milvus.db").resolve():
        if lite.exists():  # a Milvus Lite folder outside the index: copied too
            shutil.copytree(lite, snap / "milvus.db", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("LOCK"))
    overrides["milvus_uri"] = ""  # the copy's own milvus.db, never the original
    rag = RAG.open(snap, **overrides)
    try:
        if rag.index.catalog.count() == 0:
            raise FinetuneError(f"{index_dir}: the index is empty; run `rag ingest` first")
        if questions_file is not None:
            rows = read_jsonl(questions_file)
            origin = f"{questions_file} ({len(rows)} rows)"
        else:
            def judge_factory() -> Any:
                from eval.cache import JudgeCache, default_cache_path
                from eval.judge import judge_from_settings

                cache = JudgeCache(judge_cache or default_cache_path())
                return judge_from_settings(rag.settings, cache, judge_model)

            rows = generate_questions(rag, judge_factory, questions, seed,
                                      work / "questions.jsonl", say, progress)
            origin = (f"generated by the local LLM ({judge_model or rag.settings.judge_model}) "
                      f"from {questions} sampled chunks, seed {seed}")
        triples, chunks, stats = mine(rag, rows, say, progress)
    finally:
        rag.close()
        shutil.rmtree(snap, ignore_errors=True)
    if not triples:
        raise FinetuneError(f"no question matched a chunk of {index_dir}"
                            + (f" in {questions_file}" if questions_file else ""))
    train, val, pool, how = split(triples, chunks, seed)
    if len(train) < MIN_TRAIN_PAIRS:
        raise FinetuneError(f"only {len(train)} training pairs ({len(triples)} questions matched "
                            f"chunks); at least {MIN_TRAIN_PAIRS} are needed: raise --questions")
    stats.update({"origin": origin, "train": len(train), "val": len(val), "pool": len(pool),
                  "chunks": len(chunks), "sources": len({c.source_id for c in chunks.values()})})
    data = Data(train, val, pool, how, data_hash(train, val, pool), stats)
    _write_json(cached, {"key": key, "train": [asdict(t) for t in train],
                         "val": [asdict(t) for t in val], "pool": pool, "split": how,
                         "hash": data.hash, "stats": stats})
    return data


# --- validation -------------------------------------------------------------------------------------
def validate(model: Any, val: list[Triple], pool: dict[str, str], batch_size: int = 16
             ) -> dict[str, Any]:
    """Recall@10 and MRR@10 of each validation question's positive among the pool's chunks."""
    import numpy as np
    import torch

    if not val:
        return {"questions": 0, "recall@10": None, "mrr@10": None}
    ids = list(pool)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        docs = model.encode([pool[i] for i in ids], batch_size=batch_size,
                            normalize_embeddings=True, convert_to_numpy=True)
        queries = model.encode([t.question for t in val], batch_size=batch_size,
                               normalize_embeddings=True, convert_to_numpy=True)
    if was_training:
        model.train()
    scores = queries @ docs.T
    recall, mrr = [], []
    for row, t in zip(scores, val):
        top = [ids[j] for j in np.argsort(-row, kind="stable")[:10]]
        rank = top.index(t.positive_id) + 1 if t.positive_id in top else None
        recall.append(1.0 if rank else 0.0)
        mrr.append(1.0 / rank if rank else 0.0)
    return {"questions": len(val), "pool": len(ids),
            "recall@10": round(float(np.mean(recall)), 4), "mrr@10": round(float(np.mean(mrr)), 4)}


# --- stage 4: training --------------------------------------------------------------------------------
def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, n_train // batch_size)


def batch_at(step: int, n_train: int, plan: Plan) -> list[int]:
    """The training rows of `step`: epoch e is a permutation seeded by (seed, e); the last
    partial batch of an epoch is dropped (MNRL wants full batches of in-batch negatives)."""
    per = steps_per_epoch(n_train, plan.batch_size)
    epoch, i = divmod(step, per)
    order = list(range(n_train))
    random.Random(plan.seed * 1_000_003 + epoch).shuffle(order)
    size = min(plan.batch_size, n_train)
    return order[i * size:(i + 1) * size]


def lr_at(step: int, total: int, plan: Plan) -> float:
    warmup = max(1, round(plan.warmup_fraction * total))
    if step < warmup:
        return plan.lr * (step + 1) / warmup
    return plan.lr * max(0.0, (total - step) / max(1, total - warmup))


def load_model(path: str) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(path, device="cpu", model_kwargs={"torch_dtype": torch.float32})
    except Exception as exc:
        from retrievers.errors import one_line

        raise FinetuneError(f"{path}: cannot load the model: {one_line(exc, 200)}") from None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(root: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> Path:
    """`root/step-N/` (weights, optimizer state as safetensors, state.json), then `latest.json`
    names it (an atomic rename): a kill at any point leaves the previous checkpoint usable."""
    from safetensors.torch import save_file

    target = root / f"step-{state['step']:06d}"
    if target.exists():
        shutil.rmtree(target)
    model.save(str(target), create_model_card=False)
    tensors, scalars = {}, {"param_groups": optimizer.state_dict()["param_groups"], "state": {}}
    for idx, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            if hasattr(value, "dim") and value.dim() > 0:
                tensors[f"{idx}.{name}"] = value.contiguous()
            else:
                scalars["state"].setdefault(str(idx), {})[name] = float(value)
    save_file(tensors, str(target / "optimizer.safetensors"))
    _write_json(target / "optimizer.json", scalars)
    _write_json(target / "state.json", state)
    _write_json(root / LATEST, {"dir": target.name, "step": state["step"]})
    for old in root.glob("step-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(root: Path, plan_key: str) -> tuple[Path, dict[str, Any]] | None:
    latest = root / LATEST
    if not latest.is_file():
        return None
    try:
        target = root / json.loads(latest.read_text())["dir"]
        state = json.loads((target / "state.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return (target, state) if state.get("plan_key") == plan_key else None


def restore_optimizer(optimizer: Any, folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "optimizer.safetensors"))
    scalars = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in scalars["state"].items():
        for name, value in values.items():
            state.setdefault(int(idx), {})[name] = torch.tensor(value)
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})


@dataclass
class TrainResult:
    model: Any
    steps: int
    planned: int
    seconds: float  # training time over all runs of this plan
    stopped: str  # "done", "budget"
    losses: list[float]
    resumed_from: int = 0


def train(data: Data, plan: Plan, base_path: str, work: Path, *, budget_s: float,
          checkpoint_s: float = 120.0, max_steps: int | None = None, say: Say = _stderr,
          progress: bool = True) -> TrainResult:
    """Run (or continue) the plan until it is done, the budget is spent or `max_steps` are
    done, checkpointing as it goes (module docstring)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm import tqdm

    plan_key = plan.key(data.hash)
    root = work / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    found = load_checkpoint(root, plan_key)
    model = load_model(str(found[0]) if found else base_path)
    model.max_seq_length = min(plan.max_seq_length, model.max_seq_length or plan.max_seq_length)
    state = found[1] if found else {"plan_key": plan_key, "step": 0, "seconds": 0.0, "losses": []}
    per = steps_per_epoch(len(data.train), plan.batch_size)
    planned = plan.epochs * per
    step0 = state["step"]
    if found:
        say(f"resuming from the checkpoint at step {step0} of {planned}")
    loss_fn = MultipleNegativesRankingLoss(model, scale=plan.scale)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    if found:
        restore_optimizer(optimizer, found[0])
    model.train()
    last_checkpoint = time.monotonic()
    stopped = "done"
    bar = tqdm(total=planned, initial=step0, desc="train", unit="step", disable=not progress)
    step = step0
    while step < planned:
        if max_steps is not None and step - step0 >= max_steps:
            stopped = "max_steps"
            break
        if state["seconds"] >= budget_s:
            stopped = "budget"
            break
        began = time.monotonic()
        rows = [data.train[i] for i in batch_at(step, len(data.train), plan)]
        torch.manual_seed(plan.seed * 1_000_003 + step)  # dropout: the same masks on a resume
        columns = [[t.question for t in rows], [t.positive for t in rows]]
        if plan.hard_negatives and all(t.negative for t in rows):  # else in-batch negatives only
            columns.append([t.negative for t in rows])
        features = [model.preprocess(texts) for texts in columns]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, planned, plan)
        loss = loss_fn(features, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        state["losses"].append(round(float(loss.detach()), 5))
        state["seconds"] += time.monotonic() - began  # checkpoint writing is not counted
        state["step"] = step
        bar.update(1)
        bar.set_postfix(loss=f"{state['losses'][-1]:.3f}")
        if time.monotonic() - last_checkpoint >= checkpoint_s and step < planned:
            save_checkpoint(root, model, optimizer, state)
            last_checkpoint = time.monotonic()
    bar.close()
    if step > step0:
        save_checkpoint(root, model, optimizer, state)
    model.eval()
    return TrainResult(model, step, planned, state["seconds"], stopped, state["losses"], step0)


# --- stage 5: the output folder --------------------------------------------------------------------
def write_output(out: Path, result: TrainResult, plan: Plan, data: Data, record: dict[str, Any]
                 ) -> Path:
    """The trained model as a sentence-transformers folder with its card; replaced as a whole
    (written next to it, then renamed), so a kill never leaves a half-written model."""
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    result.model.save(str(tmp), create_model_card=False)
    _write_json(tmp / RECORD_FILE, record)
    (tmp / CARD_FILE).write_text(model_card(record), encoding="utf-8")
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


def model_card(r: dict[str, Any]) -> str:
    v0, v1 = r["validation"]["before"], r["validation"]["after"]
    t, d = r["training"], r["data"]
    negatives = "in-batch and the hard negative" if r["plan"]["hard_negatives"] else "in-batch only"

    def fig(v: dict[str, Any], k: str) -> str:
        return "n/a" if v.get(k) is None else f"{v[k]:.3f}"

    lines = [
        f"# {r['name']}",
        "",
        "A sentence-transformers model fine-tuned with `rag models finetune` on the chunks of one "
        "index, for retrieval over that corpus.",
        "",
        f"- Base model: {r['base']['name']} (`{r['base']['path']}`, fingerprint "
        f"{r['base']['fingerprint']})",
        f"- Index: `{r['index']}` ({d['chunks']} chunks, {d['sources']} source documents)",
        f"- Questions: {d['origin']}; {d['matched']} matched a chunk (the positive); hard "
        f"negatives: {', '.join(f'{n} from {k}' for k, n in d['negatives_from'].items())} "
        f"(the index's own rankings, excluding the positive, its neighbours and chunks holding "
        f"the answer or scoring within {NEGATIVE_MARGIN:.0%} of the positive), "
        f"{d['without_negative']} without one",
        f"- Data hash: {d['hash']} ({d['train']} training pairs, {d['val']} validation)",
        f"- Validation split: {d['split']}",
        f"- Loss: MultipleNegativesRankingLoss (scale {r['plan']['scale']}, negatives: "
        f"{negatives}), batch "
        f"{r['plan']['batch_size']}, AdamW lr {r['plan']['lr']} (warmup "
        f"{r['plan']['warmup_fraction']:.0%}, linear decay), weight decay "
        f"{r['plan']['weight_decay']}, max {r['plan']['max_seq_length']} tokens",
        f"- Steps: {t['steps']} of {t['planned']} planned ({r['plan']['epochs']} epoch(s)); "
        f"stopped: {t['stopped']}; training time {t['seconds']:.0f} s on {t['threads']} CPU "
        f"threads; seed {r['plan']['seed']}",
        "",
        f"## Validation (held-out questions ranked against {v0.get('pool', 'n/a')} chunks)",
        "",
        "| | Recall@10 | MRR@10 |",
        "|---|---|---|",
        f"| before (base) | {fig(v0, 'recall@10')} | {fig(v0, 'mrr@10')} |",
        f"| after | {fig(v1, 'recall@10')} | {fig(v1, 'mrr@10')} |",
        "",
        f"Validation questions: {v0.get('questions', 0)}. Generated questions reuse their chunk's "
        "words and are easier than real ones: measure on your own labelled questions before "
        "switching, e.g.",
        "",
        "    rag models compare QUESTIONS.jsonl --corpus DOCS --model minilm-bf16 --model "
        + r["out"],
        "    rag reindex --index INDEX --embedding-model " + r["out"],
        "",
        f"Versions: {r['versions']}",
        "",
    ]
    return "\n".join(lines)


# --- the whole command -------------------------------------------------------------------------------
def finetune(index_dir: Path, out: Path, *, base: str | None = None, work: Path | None = None,
             budget_min: float = DEFAULT_BUDGET_MIN, questions: int = DEFAULT_QUESTIONS,
             questions_file: Path | None = None, seed: int = 0, epochs: int = 4,
             batch_size: int = 16, lr: float = 3e-5, hard_negatives: bool = True,
             judge_model: str | None = None,
             judge_cache: Path | None = None, checkpoint_s: float = 120.0,
             max_steps: int | None = None, say: Say = _stderr, progress: bool = True,
             settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the data, train within the budget, write OUT; returns the record (`finetune.json`).
    `max_steps` stops this run after that many steps (tests; a re-run continues); `settings`
    override the index's settings where it is opened (`--set`)."""
    import sentence_transformers
    import torch
    import transformers

    from rag.models.embedding import display_name, embedding_fingerprint

    index_dir = check_index(Path(index_dir))
    check_store(index_dir, settings)
    if budget_min * 60 < MIN_BUDGET_S and max_steps is None:
        raise FinetuneError(f"--budget-min {budget_min:g} is too small: loading the model, the "
                            f"validation before and after and a checkpoint take about "
                            f"{MIN_BUDGET_S / 60:.0f} minute; give at least that")
    if questions < 1:
        raise FinetuneError("--questions must be at least 1")
    if epochs < 1 or batch_size < 2:
        raise FinetuneError("--epochs must be at least 1 and --batch-size at least 2")
    if questions_file is not None and not questions_file.is_file():
        raise FinetuneError(f"{questions_file}: no such questions file")
    base = base or index_model_ref(index_dir) or "packaged"
    base_path = resolve_base(base)
    out = Path(out)
    work = Path(work) if work else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    say(f"work folder {work} (questions, mined data, checkpoints; delete it when done)")
    data = prepare_data(index_dir, work, questions=questions, seed=seed,
                        questions_file=questions_file, judge_model=judge_model,
                        judge_cache=judge_cache, say=say, progress=progress, settings=settings)
    say(f"{len(data.train)} training pairs, {len(data.val)} validation questions "
        f"({data.split}); data {data.hash}")
    plan = Plan(base=embedding_fingerprint(base_path), seed=seed, epochs=epochs,
                batch_size=min(batch_size, len(data.train)), lr=lr,
                hard_negatives=hard_negatives)
    before_file = work / f"validation-before-{plan.key(data.hash)}.json"
    if before_file.is_file():
        before = json.loads(before_file.read_text())
    else:
        say("validating the base model")
        before = validate(load_model(base_path), data.val, data.pool)
        _write_json(before_file, before)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    result = train(data, plan, base_path, work, budget_s=budget_min * 60,
                   checkpoint_s=checkpoint_s, max_steps=max_steps, say=say, progress=progress)
    if result.stopped == "budget":
        say(f"the budget ran out at step {result.steps} of {result.planned}; the model so far is "
            f"written (re-run with a larger --budget-min to continue)")
    say("validating the fine-tuned model")
    after = validate(result.model, data.val, data.pool)
    out_resolved = str(out.resolve())
    record = {
        "name": f"{out.name} (fine-tuned {display_name(base)})",
        "out": out_resolved,
        "base": {"name": display_name(base), "path": base_path,
                 "fingerprint": embedding_fingerprint(base_path)},
        "index": str(index_dir.resolve()),
        "data": {**data.stats, "hash": data.hash, "split": data.split},
        "plan": asdict(plan),
        "training": {"steps": result.steps, "planned": result.planned,
                     "stopped": result.stopped, "seconds": round(result.seconds, 1),
                     "resumed_from": result.resumed_from, "threads": torch.get_num_threads(),
                     "loss_first": result.losses[0] if result.losses else None,
                     "loss_last": result.losses[-1] if result.losses else None},
        "validation": {"before": before, "after": after},
        "versions": {"sentence-transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
    }
    write_output(out, result, plan, data, record)
    return record


def summary(record: dict[str, Any]) -> str:
    v0, v1, t = record["validation"]["before"], record["validation"]["after"], record["training"]

    def fig(v: dict[str, Any], k: str) -> str:
        return "n/a" if v.get(k) is None else f"{v[k]:.3f}"

    return (f"wrote {record['out']}: {t['steps']}/{t['planned']} steps in {t['seconds']:.0f} s "
            f"({t['stopped']}); validation Recall@10 {fig(v0, 'recall@10')} -> "
            f"{fig(v1, 'recall@10')}, MRR@10 {fig(v0, 'mrr@10')} -> {fig(v1, 'mrr@10')} "
            f"({v0.get('questions', 0)} held-out questions)")

