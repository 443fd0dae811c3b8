from pathlib import Path

import pytest

from rag.config import load_settings
from rag.errors import ConfigError


def test_layers_apply_in_order(tmp_path):
    work = tmp_path / "work"
    index = tmp_path / "idx"
    work.mkdir()
    index.mkdir()
    (work / "rag.toml").write_text('top_k = 3\nrrf_k = 10\n[llm]\nmax_tokens = 100\n')
    (index / "rag.toml").write_text("top_k = 4\nchunk_size = 128\n")
    env = {"RAG_TOP_K": "6", "RAG_CHUNK_OVERLAP": "8"}
    s = load_settings(index, cwd=work, environ=env, chunk_overlap=16)
    assert s.rrf_k == 10 and s.sources["rrf_k"].endswith("work/rag.toml")
    assert s.llm_max_tokens == 100
    assert s.chunk_size == 128 and s.sources["chunk_size"].endswith("idx/rag.toml")
    assert s.top_k == 6 and s.sources["top_k"] == "env"
    assert s.chunk_overlap == 16 and s.sources["chunk_overlap"] == "argument"
    assert s.index_dir == index


def test_defaults_are_offline_and_local(tmp_path):
    s = load_settings(cwd=tmp_path, environ={})
    assert s.ui_host == "127.0.0.1"
    assert s.is_milvus_lite and s.milvus_target == str(Path("rag_index") / "milvus.db")
    assert s.llm_backend == "llama-cpp" and s.embedding_model == "packaged"
    assert s.file_timeout_s == 300 and s.recording_timeout_factor == 3  # a stuck file ends


def test_the_dense_index_is_8_bit_only_where_milvus_lite_serves_it(tmp_path):
    assert load_settings(cwd=tmp_path, environ={}).dense_index_type == "HNSW_SQ"
    server = load_settings(cwd=tmp_path, environ={}, milvus_uri="http://127.0.0.1:19530")
    assert server.dense_index_type == "HNSW"  # Milvus before 2.5 has no HNSW_SQ
    assert load_settings(cwd=tmp_path, environ={}, dense_index="HNSW").dense_index_type == "HNSW"


def test_env_selects_index_dir_whose_toml_applies(tmp_path):
    index = tmp_path / "other"
    index.mkdir()
    (index / "rag.toml").write_text("top_k = 9\n")
    s = load_settings(cwd=tmp_path, environ={"RAG_INDEX_DIR": str(index)})
    assert s.top_k == 9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": "many"}, "top_k"),
        ({"retrieval_mode": "magic"}, "retrieval_mode"),
        ({"ocr": "sometimes"}, r"ocr = 'sometimes' is not one of \['always', 'auto', 'never'\]"),
        ({"no_such_knob": 1}, "unknown setting 'no_such_knob'"),
        ({"file_timeout_s": "-1"}, r"file_timeout_s = -1.0 must be 0 or more"),
        ({"recording_timeout_factor": -2}, "recording_timeout_factor"),
        ({"dense_index": "IVF"}, "dense_index"),
    ],
)
def test_bad_values_name_the_setting(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(cwd=tmp_path, environ={}, **kwargs)


def test_broken_toml_names_the_file(tmp_path):
    (tmp_path / "rag.toml").write_text("top_k = = 3")
    with pytest.raises(ConfigError, match="rag.toml"):
        load_settings(cwd=tmp_path, environ={})


def test_rag_config_cli_shows_origin(tmp_path, monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_TOP_K", "7")
    assert main(["config", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["top_k"] == 7 and out["sources"]["top_k"] == "env"
    assert out["derived"]["embedding_dtype_effective"] in {"bfloat16", "float32"}
    assert out["derived"]["dense_index_effective"] == "HNSW_SQ"
    # the default decline gate asks the packaged cross-encoder, and says where it is
    assert out["derived"]["decline_gate_effective"].startswith(
        "evidence+rerank+sentences (cross-encoder ")


def test_decline_gate_without_its_cross_encoder_falls_back_to_the_evidence_checks(caplog):
    """A setup without the reranker's wheel still answers (the evidence checks decide alone),
    and says once why."""
    from rag.config import Settings
    from rag.errors import ModelFileError
    from rag.parts import decline_reranker

    def missing():
        raise ModelFileError("rerank_model = 'packaged' needs the reranker's wheel")

    with caplog.at_level("WARNING"):
        assert decline_reranker(Settings(), locate=missing) is None
    assert "works as 'evidence'" in caplog.text and "reranker's wheel" in caplog.text
    assert decline_reranker(Settings(decline_gate="evidence")) is None
    assert decline_reranker(Settings()) is not None  # the packaged model is installed here
    assert decline_reranker(Settings(decline_gate="evidence+rerank+sentences")) is not None


def test_ocr_as_text_is_the_setting_not_the_part(tmp_path):
    """`--set ocr=never` reaches `RAG.open(ocr="never")`; the name is also the OCR part's."""
    from rag.api import RAG

    rag = RAG.open(tmp_path / "index", ocr="never")
    assert rag.settings.ocr == "never"
    assert rag.ocr.mode.name.lower() == "never"


def test_the_quality_preset_fills_only_what_nobody_set(tmp_path):
    (tmp_path / "rag.toml").write_text('preset = "quality"\n')
    s = load_settings(cwd=tmp_path, environ={"RAG_LLM_MODEL": "/models/mine.gguf"})
    assert s.rerank_model == "packaged" and s.sources["rerank_model"] == "preset quality"
    assert s.llm_model == "/models/mine.gguf" and s.sources["llm_model"] == "env"
    # the bridge round's hits come after the top 5 (rule 40)
    assert (s.bridge_seeds, s.bridge_rerank_gate, s.bridge_append) == (2, False, True)
    # a later layer that drops the preset takes its values back
    plain = load_settings(cwd=tmp_path, environ={}, preset="")
    assert plain.rerank_top_n == 10 and plain.sources["rerank_top_n"] == "default"
    assert plain.llm_model == "packaged"
    assert (plain.bridge_seeds, plain.bridge_append) == (0, False)
    with pytest.raises(ConfigError, match="preset"):
        load_settings(cwd=tmp_path, environ={}, preset="fastest")
