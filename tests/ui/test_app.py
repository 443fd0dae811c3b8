"""The UI serves on loopback and answers a question with its sources, through Gradio's own client."""

import socket

import pytest


@pytest.fixture(scope="module")
def ui_url(sample_rag, free_port):
    from ui.app import launch

    port = free_port()
    app = launch(sample_rag, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_ui_listens_on_loopback_only(ui_url):
    import urllib.request

    with urllib.request.urlopen(ui_url, timeout=30) as response:
        assert response.status == 200
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        lan = [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    others = [ip for ip in lan if not ip.startswith("127.")]
    port = int(ui_url.rsplit(":", 1)[1].strip("/"))
    for ip in others:
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((ip, port)) != 0, f"UI reachable on {ip}"


def test_ui_answers_with_sources(ui_url):
    from gradio_client import Client

    client = Client(ui_url, verbose=False)
    reply = client.predict("What does the Harbor L-200 warranty cover?", api_name="/ask")
    assert "**Sources**" in reply
    assert "harbor_lamp_manual.txt" in reply
    assert "[1]" in reply
