"""`rag ui`: registered with the `rag` command line through the `rag.commands` entry point.

Why a plugin: `rag` is a lower layer than `ui` and must not import it; the CLI finds this
function in the installed package's metadata instead. Importing this module stays cheap
(gradio loads only when the command runs), because `rag --help` loads every plugin.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_ROOT = "rag_collections"


def add_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `rag ui [--root DIR] [--host H] [--port P] [--auth USER:PASSWORD] [--insecure]`."""
    p = subparsers.add_parser("ui", parents=parents, help="start the Gradio app (chat, upload, library, collections)")
    p.add_argument("--root", metavar="DIR", default=None,
                   help=f"folder of the collections, one index each (default ./{DEFAULT_ROOT}); "
                        "--index DIR adds an existing index as a collection named after its folder")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--auth", metavar="USER:PASSWORD", default=None,
                   help="require this login (or set RAG_UI_AUTH); needed for a non-loopback --host")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without --auth (a network that is yours alone)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest upload (default 200)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rag.api import RAG
    from rag.cli import EXIT_OK, EXIT_USAGE, _settings_overrides, settings_from_args
    from ui.collections import check_name, shared_models_opener
    from ui.safety import UnsafeBindError, auth_from, check_bind

    settings = settings_from_args(args)  # --set ui_host / ui_port too
    host = args.host or settings.ui_host
    port = args.port or settings.ui_port
    try:
        auth = auth_from(args.auth)
        check_bind(host, auth, args.insecure)  # before any model loads: refuse in milliseconds
    except (ValueError, UnsafeBindError) as exc:
        print(f"rag ui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    extra = {}
    if args.index:
        index = Path(args.index)
        extra[check_name(index.resolve().name.replace(".", "_"))] = index
    from ui.app import build_app, launch

    open_rag = shared_models_opener(getattr(args, "open_rag", None) or RAG.open,
                                    **_settings_overrides(args))
    app = build_app(open_rag, args.root or DEFAULT_ROOT, extra=extra,
                    max_upload_mb=args.max_upload_mb or 200.0)
    try:
        launch(app, host=host, port=port, auth=auth, insecure=args.insecure)
    finally:
        app.rag_watches.close()  # an ingest of a watched folder in flight completes first
    return EXIT_OK
