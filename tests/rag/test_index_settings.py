"""An index remembers its embedding model and refuses vectors from another one."""

import json
import shutil

import pytest

from rag.api import RAG
from rag.errors import ConfigError
from rag.models.embedding import resolve_embedding_model


def test_other_embedding_model_is_refused(tmp_path, embedder, sample_dir):
    index = tmp_path / "index"
    rag = RAG.open(index, embedder=embedder)
    rag.ingest([sample_dir / "harbor_lamp_manual.txt"])
    recorded = rag.stats()["index_settings"]
    rag.close()
    assert recorded["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert recorded["dimension"] == 384

    other = tmp_path / "other-model"
    shutil.copytree(resolve_embedding_model("packaged"), other)
    config = json.loads((other / "config.json").read_text())
    config["retrained"] = True  # stands for any different model
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="built with embedding model"):
        RAG.open(index, embedding_model=str(other)).index
    # The original model still opens it.
    again = RAG.open(index)
    assert again.stats()["chunks"] == 1
    again.close()
