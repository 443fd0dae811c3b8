"""The UI serves on loopback only and names its API endpoints."""

import socket
import urllib.request


def test_ui_listens_on_loopback_only(ui):
    with urllib.request.urlopen(ui.url, timeout=30) as response:
        assert response.status == 200
    lan = [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    others = [ip for ip in lan if not ip.startswith("127.")]
    port = int(ui.url.rsplit(":", 1)[1].strip("/"))
    for ip in others:
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((ip, port)) != 0, f"UI reachable on {ip}"


def test_named_endpoints_are_the_cli_commands(ui):
    from gradio_client import Client

    named = Client(ui.url, verbose=False).view_api(return_format="dict", print_info=False)
    assert {"/ask", "/retrieve", "/ingest", "/delete", "/stats"} <= set(named["named_endpoints"])
