"""Queries are embedded by an ONNX float32 export of the embedding model, so a process that only
retrieves never loads torch (issue 17's memory point); the export must give torch's vectors and
survive damage to its cached files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rag.errors import ModelFileError
from rag.models import onnx_export
from rag.models.embedder import Embedder
from tests.conftest import REPO, SAMPLE, SAMPLE_TEXT

TEXTS = ["What did the author work on before college?",
         "Dr. Smith paid $3.50 for tea, i.e. less than before.",
         "word " * 400,  # longer than the model's 256 tokens: truncated alike
         "Kurz."]


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_onnx_query_vectors_are_torch_float32_vectors(embedder):
    torch_fp32 = Embedder("packaged", dtype="float32", query_backend="torch")
    onnx = Embedder("packaged", query_backend="onnx")
    reference = torch_fp32.encode(TEXTS)
    ours = np.stack([onnx.encode_query(t) for t in TEXTS])
    assert onnx.query_runtime.startswith("onnxruntime float32")
    assert np.abs(ours - reference).max() < 1e-5
    assert onnx.dimension == 384 and onnx.max_tokens == 256


def test_the_query_sessions_threads_stop_spinning_when_a_query_is_embedded():
    """onnxruntime's workers otherwise spin on the second core for milliseconds after each
    query, slowing the index search that follows (README "Where the growth comes from")."""
    onnx = Embedder("packaged", query_backend="onnx")
    onnx.encode_query("warm")
    options = onnx._query_encoder.session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_a_query_process_never_imports_torch(tmp_path):
    """What a user notices as ~550 MB less memory in `rag ask`/`rag retrieve` processes."""
    texts = [str(SAMPLE / name) for name in SAMPLE_TEXT]
    built = subprocess.run([sys.executable, "-m", "rag", "ingest", *texts, "--index",
                            str(tmp_path / "index")], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from rag.api import RAG
        rag = RAG.open({str(tmp_path / "index")!r})
        hits = rag.retrieve("How long should green tea steep?", top_k=3)
        print(json.dumps({{"torch": "torch" in sys.modules,
                           "top": hits[0].chunk.source.rsplit("/", 1)[-1]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"torch": False, "top": "tea_brewing_guide.md"}


@pytest.mark.parametrize("damaged", ["model.onnx", onnx_export.DATA])
def test_a_damaged_export_is_detected_and_made_again(private_cache, damaged):
    first = Embedder("packaged", query_backend="onnx")
    vector = first.encode_query(TEXTS[0])
    folder = onnx_export.export_folder(first.fingerprint)
    with open(folder / damaged, "r+b") as handle:  # a torn write, or a disk error
        handle.truncate(1000)
    assert onnx_export.cached_export(first.fingerprint) is None
    again = Embedder("packaged", query_backend="onnx")
    assert np.abs(again.encode_query(TEXTS[0]) - vector).max() < 1e-6
    assert (folder / onnx_export.DATA).stat().st_size > 80_000_000  # the weights, whole again
    assert not list(private_cache.glob("*.tmp-*"))  # no half-written folders left behind


def test_torch_backend_keeps_queries_on_torch(embedder):
    chosen = Embedder("packaged", query_backend="torch")
    assert chosen.query_runtime.startswith("torch") and "embedding_query_backend" in chosen.query_runtime
    assert np.abs(chosen.encode_query(TEXTS[0]) - embedder.encode([TEXTS[0]])[0]).max() < 1e-6


def test_a_model_that_cannot_be_exported_says_why(static_model):
    assert "transformer model" in Embedder(str(static_model)).query_runtime
    with pytest.raises(ModelFileError, match="embedding_query_backend"):
        Embedder(str(static_model), query_backend="onnx").encode_query("tea")


def test_rag_config_says_what_embeds_queries():
    done = subprocess.run([sys.executable, "-m", "rag", "config", "--json"], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    derived = json.loads(done.stdout)["derived"]
    assert derived["embedding_query_runtime"].startswith("onnxruntime float32")


# --- passages on the same export (embedding_passage_backend = onnx) ----------------------------
def test_onnx_passages_are_torch_float32_vectors():
    torch_fp32 = Embedder("packaged", dtype="float32", query_backend="torch")
    onnx = Embedder("packaged", passage_backend="onnx")
    assert np.abs(onnx.encode(TEXTS) - torch_fp32.encode(TEXTS)).max() < 1e-5
    assert onnx.passage_runtime.startswith("onnxruntime float32")
    assert Embedder("packaged", passage_backend="torch").passage_runtime.startswith("torch")


# --- "auto": the passage backend picked per CPU ------------------------------------------------
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
AVX512 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}


@pytest.mark.parametrize("flags, expected", [
    (AVX2_ONLY, "onnx-int8"),                      # ~2x torch there, Recall@10 kept (rule 43)
    (AVX2_ONLY | {"avx_vnni"}, "onnx"),            # VNNI int8 rounding lost recall (rule 22)
    (AVX512, "torch"),                             # torch float32's AVX-512 kernels win
    (AVX512 | {"avx512_bf16"}, "torch"),           # bfloat16
    (AVX2_ONLY | {"amx_bf16", "amx_tile"}, "torch"),
    (frozenset(), "torch"),                        # nothing known: the long-standing path
])
def test_auto_picks_the_passage_backend_from_the_cpu(flags, expected):
    from rag.models.embedder import choose_passage_backend

    backend, why = choose_passage_backend("auto", "cpu", flags)
    assert backend == expected and why.startswith("auto: ")
    assert choose_passage_backend("auto", "cuda:0", AVX2_ONLY)[0] == "torch"
    assert choose_passage_backend("torch", "cpu", AVX2_ONLY) == (
        "torch", "embedding_passage_backend = torch")


def test_auto_on_an_avx2_cpu_embeds_on_the_int8_copy_and_says_why(monkeypatch):
    """What an AVX2-only machine runs: int8 passages one text per call, close to torch float32's
    vectors, queries on the float32 export exactly; `rag config`'s words name the reason."""
    import rag.models.embedder as embedder_module

    monkeypatch.setattr(embedder_module, "cpu_flags", lambda: AVX2_ONLY)
    auto = Embedder("packaged")
    assert auto.passage_backend == "onnx-int8" and auto.batch_size == 1
    assert "AVX2 without AVX-512" in auto.passage_runtime and "int8" in auto.passage_runtime
    torch_fp32 = Embedder("packaged", dtype="float32", query_backend="torch",
                          passage_backend="torch")
    assert ((auto.encode(TEXTS) * torch_fp32.encode(TEXTS)).sum(axis=1)).min() > 0.98
    assert np.abs(auto.encode_query(TEXTS[0]) - torch_fp32.encode([TEXTS[0]])[0]).max() < 1e-5


def test_auto_falls_back_to_the_float32_export_without_an_int8_copy(monkeypatch):
    import rag.models.embedder as embedder_module
    from rag.models.onnx_export import NotExportable

    def cannot(*args, **kwargs):
        raise NotExportable("quantiser missing")

    monkeypatch.setattr(embedder_module, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr("rag.models.onnx_int8.make_int8", cannot)
    auto = Embedder("packaged")
    assert auto.passage_backend == "onnx"
    assert "no int8 copy (quantiser missing)" in auto.passage_runtime


def test_auto_falls_back_to_torch_for_a_model_without_an_export(static_model, monkeypatch):
    """`onnx` asked by name is an error for such a model (below); `auto` quietly keeps torch."""
    import rag.models.embedder as embedder_module

    monkeypatch.setattr(embedder_module, "cpu_flags", lambda: AVX2_ONLY)
    auto = Embedder(str(static_model))
    assert auto.encode(["tea", "green tea"]).shape[0] == 2
    assert auto.passage_backend == "torch" and "no ONNX export" in auto.passage_runtime


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_an_ingest_with_onnx_passages_never_imports_torch(tmp_path, backend):
    """What a user notices as ~440 MB less memory while ingesting, and the same answers. (Making
    the export or its int8 copy, once per machine, does load torch: made here first.)"""
    Embedder("packaged", passage_backend=backend).load_passage_model()
    texts = [str(SAMPLE / name) for name in SAMPLE_TEXT]
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from rag.api import RAG
        rag = RAG.open({str(tmp_path / "index")!r}, embedding_passage_backend={backend!r})
        results = rag.ingest({texts!r})
        hits = rag.retrieve("How long should green tea steep?", top_k=3)
        print(json.dumps({{"torch": "torch" in sys.modules,
                           "chunks": sum(r.chunks for r in results),
                           "top": hits[0].chunk.source.rsplit("/", 1)[-1]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["chunks"] > 0
    assert {k: result[k] for k in ("torch", "top")} == {"torch": False, "top": "tea_brewing_guide.md"}


def test_onnx_passages_for_a_model_without_an_export_say_what_to_set(static_model):
    with pytest.raises(ModelFileError, match="embedding_passage_backend = torch"):
        Embedder(str(static_model), passage_backend="onnx").encode(["tea"])


def test_rag_config_says_what_embeds_passages():
    done = subprocess.run([sys.executable, "-m", "rag", "config", "--json", "--set",
                           "embedding_passage_backend=onnx"], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["derived"]["embedding_passage_runtime"].startswith("onnxruntime")


def test_the_batch_size_is_each_backends_fastest_unless_one_is_asked_for(tmp_path):
    from rag.config import load_settings
    from rag.models.embedder import embedder_for

    assert Embedder("packaged", passage_backend="torch").batch_size == 16
    assert Embedder("packaged", passage_backend="onnx").batch_size == 1
    asked = embedder_for("packaged", load_settings(tmp_path, embedding_batch_size=4,
                                                   embedding_passage_backend="onnx"))
    assert asked.batch_size == 4 and asked._onnx_passages.batch_size == 4


def test_an_onnx_folder_fingerprint_covers_its_external_weights(tmp_path):
    """An ONNX folder whose weights live beside the graph (`model.onnx.data`) is another model
    when only the weights change: its fingerprint, which an index checks on open, must differ.
    A single-file model keeps the fingerprint it always had (the graph's hash)."""
    import shutil

    from rag.models.cache import sha256_of
    from rag.models.onnx_embedder import OnnxEmbedder, external_data_files

    export = onnx_export.export_folder(Embedder("packaged", passage_backend="onnx").fingerprint)
    folder = tmp_path / "model"
    shutil.copytree(export, folder)
    assert [p.name for p in external_data_files(folder / "model.onnx")] == [onnx_export.DATA]
    before = OnnxEmbedder("m", folder).fingerprint
    with open(folder / onnx_export.DATA, "r+b") as handle:  # other weights, same graph file
        handle.seek(4096)
        handle.write(b"\x01\x02\x03\x04")
    assert OnnxEmbedder("m", folder).fingerprint != before
    single = tmp_path / "single"
    single.mkdir()
    import onnx

    onnx.save(onnx.load(str(folder / "model.onnx")), str(single / "model.onnx"))  # weights inlined
    assert external_data_files(single / "model.onnx") == []
    assert OnnxEmbedder("s", single).fingerprint == "sha256:" + sha256_of([single / "model.onnx"])[:32]


def test_a_query_is_not_queued_behind_an_ingest_of_the_same_model():
    """With passages on the float32 export (`onnx`, or `auto` on an AVX-VNNI CPU) the ingest and
    the queries of one process (the UI, the API) share a model: a question asked while a batch
    of passages is being embedded gets its vector before that batch is done."""
    import threading

    embedder = Embedder("packaged", passage_backend="onnx")
    quiet = embedder.encode_query("How long should green tea steep?")
    passages = [f"Passage {i}: " + "green tea steeps in water below boiling. " * 30
                for i in range(200)]
    done, started = [], threading.Event()

    def progress(n: int) -> None:
        done.append(n)
        started.set()

    ingest = threading.Thread(target=embedder.encode, args=(passages, progress))
    ingest.start()
    assert started.wait(60)
    during = embedder.encode_query("How long should green tea steep?")
    unfinished = sum(done) < len(passages)
    ingest.join()
    assert unfinished, "the query waited for the whole passage batch"
    assert np.abs(during - quiet).max() < 1e-6
