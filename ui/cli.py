"""`rag ui`: registered with the `rag` command line through the `rag.commands` entry point.

Why a plugin: `rag` is a lower layer than `ui` and must not import it; the CLI finds this
function in the installed package's metadata instead. Importing this module stays cheap
(gradio loads only when the command runs), because `rag --help` loads every plugin.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag ui [--host H] [--port P]` to the `rag` command line."""
    p = subparsers.add_parser("ui", parents=parents, help="start the Gradio chat UI")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rag.cli import EXIT_OK, open_index
    from ui.app import launch

    rag = open_index(args)
    host = args.host or rag.settings.ui_host
    port = args.port or rag.settings.ui_port
    launch(rag, host=host, port=port)
    return EXIT_OK
