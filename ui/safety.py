"""Who may reach the UI: loopback by default, anything else only with a password (or --insecure).

Why: the UI can read, add and delete documents, so exposing it on a network without a login
would hand the index (and the machine's upload area) to anyone on that network.
"""

from __future__ import annotations

import ipaddress
import os

AUTH_ENV = "RAG_UI_AUTH"


class UnsafeBindError(ValueError):
    """A non-loopback bind address without auth (and without --insecure)."""


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:password` as a pair; None for none. A value without a colon or with an empty part
    is an error (a typo must not silently start an open server)."""
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth expects USER:PASSWORD (both non-empty), e.g. --auth ann:s3cret")
    return user, password


def auth_from(arg: str | None, environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """`--auth` wins over the RAG_UI_AUTH environment variable (a password on the command line
    is visible in `ps`; the environment is the safer place)."""
    env = os.environ if environ is None else environ
    return parse_auth(arg if arg else env.get(AUTH_ENV))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; everything else (0.0.0.0, a LAN address) is exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, auth: tuple[str, str] | None, insecure: bool = False) -> None:
    """Refuse to serve a non-loopback address without a login unless told `insecure`."""
    if is_loopback(host) or auth is not None or insecure:
        return
    raise UnsafeBindError(
        f"refusing to listen on {host} without a login: anyone who can reach it could read and "
        f"delete your documents. Add --auth USER:PASSWORD (or set {AUTH_ENV}), or --insecure "
        "if the network is yours alone")
