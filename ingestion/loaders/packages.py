"""Zip packages (DOCX, PPTX, XLSX, ODT, EPUB) checked before any library expands them.

Why by hand: python-docx, python-pptx, openpyxl, odfpy and ebooklib read package members whole,
so a small package whose members inflate to gigabytes (a decompression bomb) would fill memory
before anything could stop it, and none of them has a limit to set. The zip central directory
states every member's size before a byte is inflated, and Python's `zipfile` (which all of them
use) never returns more than a member's stated size (a member that inflates further fails its
CRC check), so checking the stated sizes bounds what any of these libraries can expand.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingestion.sections import LoadError

MAX_EXPANDED_BYTES = 1 << 30  # 1 GiB inflated in all: far beyond any real document's XML
MAX_MEMBERS = 20_000
# A member that inflates over 100x and past 64 MB is a bomb, not a document: XML compresses
# 5-20x, and a spreadsheet of repeated cells ~50x.
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 64 << 20


def check_package(path: Path, kind: str) -> None:
    """Raise `LoadError` when the zip package at `path` is not one, or would inflate past the
    limits above; reads only the central directory."""
    try:
        with zipfile.ZipFile(path) as package:
            members = package.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoadError(f"not a {kind} file (not a readable zip package: {exc})") from exc
    if len(members) > MAX_MEMBERS:
        raise LoadError(f"{kind} package with {len(members):,} members (limit {MAX_MEMBERS:,}): "
                        "refused as a possible zip bomb")
    total = sum(m.file_size for m in members)
    if total > MAX_EXPANDED_BYTES:
        raise LoadError(f"{kind} package would expand to {total / 2**20:,.0f} MB (limit "
                        f"{MAX_EXPANDED_BYTES / 2**20:,.0f} MB): refused as a decompression bomb")
    for m in members:
        if m.file_size > RATIO_FLOOR_BYTES and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise LoadError(f"{kind} package member {m.filename!r} would expand "
                            f"{m.file_size / max(m.compress_size, 1):,.0f}x to "
                            f"{m.file_size / 2**20:,.0f} MB: refused as a decompression bomb")
