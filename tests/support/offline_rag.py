"""Run the `rag` CLI with every non-loopback socket connection refused and recorded.

Usage: python -m tests.support.offline_rag ATTEMPTS_FILE rag-args...
The attempted addresses are written to ATTEMPTS_FILE as JSON, so a test can assert that the
default path never tried the network (loading models included).
"""

import atexit
import ipaddress
import json
import socket
import sys

attempts: list[str] = []


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(sock, address):
    if sock.family != socket.AF_UNIX and not _loopback(address):
        attempts.append(repr(address))
        raise ConnectionRefusedError(f"network blocked: {address}")
    return _connect(sock, address)


def connect_ex(sock, address):
    if sock.family != socket.AF_UNIX and not _loopback(address):
        attempts.append(repr(address))
        return 111
    return _connect_ex(sock, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex

if __name__ == "__main__":
    out_file = sys.argv[1]
    atexit.register(lambda: open(out_file, "w").write(json.dumps(attempts)))
    from rag.cli import main

    code = main(sys.argv[2:])
    sys.stdout.flush()
    raise SystemExit(code)
