"""Shared fixtures: real models loaded once per session (as sentence-transformers' own tests do)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "rag" / "sample"
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_TEXT = ["tea_brewing_guide.md", "harbor_lamp_manual.txt", "inaugural_address_notes.md"]


@pytest.fixture(scope="session")
def embedder():
    from rag.models.embedder import Embedder

    model = Embedder("packaged")
    model.model  # load now, once
    return model


@pytest.fixture(scope="session")
def static_model() -> Path:
    """A model2vec static model distilled from the packaged MiniLM (256-d): a real, different
    embedding model that loads offline. Distilled once per machine (~15 s), then cached."""
    from rag.models.static import distilled_static_model

    return distilled_static_model("packaged", pca_dims=256)


@pytest.fixture(scope="session")
def useless_model(static_model, tmp_path_factory) -> Path:
    """The static model cut to 2 dimensions: it loads and embeds, but cannot tell passages
    apart (what the re-index smoke evaluation must refuse)."""
    from rag.models.static import narrowed_static_model

    return narrowed_static_model(static_model, 2, tmp_path_factory.mktemp("models") / "static-2d")


@pytest.fixture(scope="session")
def llm():
    from rag.llm import LlamaCppChat

    chat = LlamaCppChat(context_window=4096, threads=2)
    chat.llama  # load now, once
    return chat


@pytest.fixture(scope="session")
def recogniser():
    """RapidOCR from its wheel, models loaded once (about a second)."""
    from ingestion.ocr import RapidOcrRecogniser

    reader = RapidOcrRecogniser()
    reader.engine  # load now, once
    return reader


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A private copy of the bundled sample (text + speech), so tests may modify it."""
    target = tmp_path_factory.mktemp("sample")
    for item in SAMPLE.iterdir():
        shutil.copy(item, target / item.name)
    return target


def sharing_parts(rag, settings=None, llm=None, **changes):
    """A RAG with other `settings` (default `rag`'s) and `changes` to them over `rag`'s models
    (or another `llm`), index and retriever, without a reranker: for tests of the decline gate
    and the answer under one setting or another."""
    from dataclasses import replace

    from rag.api import RAG

    settings = replace(rag.settings if settings is None else settings, **changes)
    return RAG(settings, llm=rag.llm if llm is None else llm, embedder=rag.embedder, index=rag.index,
               retriever=rag.retriever, reranker=None)


def streamed(rag, question: str, **changes):
    """`question`'s answer stream over one served context (`sharing_parts(rag, **changes)`),
    closed when the `with` block ends: for asserting the decline gate's verdict before any word
    is written."""
    from contextlib import closing

    return closing(sharing_parts(rag, **changes).stream(question, top_k=1))


def publish_documents(catalog, docs: dict[str, list[str]]) -> None:
    """Publish each document (source id -> its chunks' texts) live in `catalog`."""
    from retrievers.records import Chunk
    from retrievers.text import tokenize

    for sid, texts in docs.items():
        chunks = [Chunk(chunk_id=f"{sid}-{n}", text=t, source=f"/essays/{sid}.txt", source_id=sid,
                        content_hash="h", position=n, file_type="txt") for n, t in enumerate(texts)]
        catalog.stage(chunks, [tokenize(t) for t in texts])
        catalog.publish(sid, f"/essays/{sid}.txt", "h", "txt", [c.chunk_id for c in chunks])


def rag_over_files(tmp_path_factory, embedder, llm, files: dict[str, str], **settings):
    """A RAG over `files` (file name -> text), written to a fresh folder and ingested, sharing
    the session's models; `settings` as for `RAG.open`. The caller closes it."""
    from rag.api import RAG

    docs = tmp_path_factory.mktemp("docs")
    for name, text in files.items():
        (docs / name).write_text(text)
    rag = RAG.open(tmp_path_factory.mktemp("index"), llm=llm, embedder=embedder, **settings)
    results = rag.ingest([docs])
    assert all(r.status == "added" for r in results), results
    return rag


# The decline gate on names and coverage alone: no similarity floor, no cross-encoder.
NAME_CHECK_ONLY = {"decline_gate": "evidence", "decline_min_dense": 0.0, "rerank_model": ""}


@pytest.fixture(scope="session")
def sample_rag(tmp_path_factory, sample_dir, embedder, llm):
    """A RAG over the whole bundled sample, sharing the session's models."""
    from rag.api import RAG

    rag = RAG.open(tmp_path_factory.mktemp("index"), llm=llm, embedder=embedder)
    results = rag.ingest([sample_dir])
    assert all(r.status == "added" for r in results), results
    yield rag
    rag.close()


@pytest.fixture(scope="session")
def free_port():
    """A function giving an unused loopback TCP port, for servers the tests start."""

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return pick


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every socket connection that is not loopback or a Unix socket, and count tries."""
    attempts: list = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(sock, address):
        if sock.family == socket.AF_UNIX or _is_loopback(address):
            return True
        attempts.append(address)
        return False

    def connect(sock, address):
        if not guard(sock, address):
            raise ConnectionRefusedError(f"network blocked by test: {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not guard(sock, address):
            return 111
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


def _wait_for_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def lite_server(tmp_path_factory, free_port):
    """`milvus-lite server`: how several processes share one Milvus Lite index."""
    port = free_port()
    data = tmp_path_factory.mktemp("lite_server") / "milvus.db"
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not _wait_for_port(port, 60):
        proc.kill()
        pytest.fail(f"milvus-lite server did not listen: {proc.stderr.read().decode()[-500:]}")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory, free_port):
    """A real Milvus 2.3.5 standalone server (PyPI `milvus`), on a free loopback port."""
    milvus = pytest.importorskip("milvus", reason="the `milvus` test package is not installed")
    server = milvus.MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus_server")))
    server.listen_port = free_port()
    try:
        server.start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Milvus 2.3.5 server did not start here: {exc}")
    yield f"http://127.0.0.1:{server.listen_port}"
    server.stop()
