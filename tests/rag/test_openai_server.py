"""ask, stream and chat against a real OpenAI-compatible server on loopback.

The server is llama-cpp-python's (`python -m llama_cpp.server`) serving the packaged GGUF; the
framework reaches it only through `llm_backend = "openai"`, the path used for vLLM, Ollama or
OpenAI itself.
"""

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow  # a second model process and ~35 s on 2 cores

pytest.importorskip("sse_starlette", reason="llama-cpp-python[server] deps: pip install -e .[test]")


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port):
    from rag.models.gguf import packaged_gguf

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_gguf()),
             "--model_alias", "qwen-0.5b", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "4096", "--n_threads", "2", "--seed", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def remote_rag(server, tmp_path_factory, sample_dir, embedder, no_network_module):
    from rag.api import RAG

    rag = RAG.open(tmp_path_factory.mktemp("index"), llm_backend="openai", llm_base_url=server,
                   llm_model="qwen-0.5b", embedder=embedder)
    rag.ingest([sample_dir / name for name in ("tea_brewing_guide.md", "harbor_lamp_manual.txt")])
    yield rag
    rag.close()


@pytest.fixture(scope="module")
def no_network_module():
    """Only loopback may be reached while the remote backend is used."""
    mp = pytest.MonkeyPatch()
    attempts = []
    real = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family != socket.AF_UNIX and host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(address)
            raise ConnectionRefusedError(f"network blocked by test: {address}")
        return real(sock, address)

    mp.setattr(socket.socket, "connect", connect)
    yield attempts
    mp.undo()
    assert attempts == []


def test_ask_through_the_endpoint(remote_rag):
    from rag.llm import OpenAICompatibleChat

    assert isinstance(remote_rag.llm, OpenAICompatibleChat)
    answer = remote_rag.ask("How long should green tea steep?")
    assert "2 minutes" in answer.text and not answer.declined
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert cited == {c.n for c in answer.citations} != set()


def test_stream_through_the_endpoint(remote_rag):
    stream = remote_rag.stream("What does the Harbor L-200 warranty cover?")
    deltas = list(stream)
    assert len(deltas) > 3 and "".join(deltas) == stream.answer.text
    assert any("harbor_lamp_manual.txt" in c.source for c in stream.answer.citations)


def test_chat_through_the_endpoint(remote_rag):
    answer = remote_rag.chat([
        {"role": "user", "content": "Which teas does the guide cover?"},
        {"role": "assistant", "content": "Green tea, black tea and oolong [1]."},
        {"role": "user", "content": "How long should the second one steep?"},
    ])
    assert "black tea" in answer.query.lower()
    assert "4 minutes" in answer.text, answer.text
