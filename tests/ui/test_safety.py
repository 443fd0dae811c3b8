"""Who may reach the UI: loopback by default; any other address only with a login or --insecure."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from ui.safety import UnsafeBindError, auth_from, check_bind, is_loopback, parse_auth


def test_auth_is_user_colon_password():
    assert parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    assert parse_auth(None) is None and parse_auth("") is None
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(ValueError, match="USER:PASSWORD"):
            parse_auth(bad)
    assert auth_from(None, {"RAG_UI_AUTH": "bob:pw"}) == ("bob", "pw")
    assert auth_from("ann:x", {"RAG_UI_AUTH": "bob:pw"}) == ("ann", "x")


def test_only_loopback_binds_without_auth():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.20", "myhost.example"):
        assert not is_loopback(host)
        with pytest.raises(UnsafeBindError, match="--auth USER:PASSWORD"):
            check_bind(host, None)
        check_bind(host, ("ann", "pw"))
        check_bind(host, None, insecure=True)


def test_rag_ui_on_all_interfaces_without_auth_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    from rag.cli import main

    monkeypatch.delenv("RAG_UI_AUTH", raising=False)
    started = time.perf_counter()
    code = main(["ui", "--host", "0.0.0.0", "--root", str(tmp_path / "root")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "refusing to listen on 0.0.0.0 without a login" in err, err
    assert "--insecure" in err and "--auth" in err
    assert time.perf_counter() - started < 5  # refused before any model loads
    assert not (tmp_path / "root").exists()  # and before anything is created
    assert main(["ui", "--host", "0.0.0.0", "--auth", "nocolon"]) == 2
    assert "USER:PASSWORD" in capsys.readouterr().err
    # The bind address from a setting (`--set ui_host=...`, rag.toml, RAG_UI_HOST) is checked too.
    assert main(["ui", "--set", "ui_host=0.0.0.0", "--root", str(tmp_path / "root")]) == 2
    assert "refusing to listen on 0.0.0.0 without a login" in capsys.readouterr().err


def test_with_auth_an_unauthenticated_request_is_refused(tmp_path, embedder, llm, free_port):
    from gradio_client import Client

    from tests.ui.conftest import start_ui, stop_ui

    ui = start_ui(tmp_path / "root", embedder, llm, free_port(), auth=("ann", "s3cret"))
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(ui.url + "config", timeout=30)
        assert refused.value.code == 401
        stored = ui.service.area("default") / "secret.txt"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text("private")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{ui.url}gradio_api/file={stored}", timeout=30)
        assert refused.value.code in (401, 403)
        with pytest.raises(Exception):
            Client(ui.url, verbose=False).predict("default", api_name="/stats")
        with pytest.raises(Exception):
            Client(ui.url, auth=("ann", "wrong"), verbose=False)
        stats = Client(ui.url, auth=("ann", "s3cret"), verbose=False).predict("default",
                                                                              api_name="/stats")
        assert stats["sources"] == 0
    finally:
        stop_ui(ui)
