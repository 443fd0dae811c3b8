"""RTF with striprtf (the library llama-index's RTFReader uses)."""

from __future__ import annotations

from pathlib import Path

from ingestion.loaders.registry import register
from ingestion.loaders.text import read_text_file
from ingestion.sections import LoadError, Section


@register(".rtf")
def load_rtf(path: Path) -> list[Section]:
    from striprtf.striprtf import rtf_to_text

    raw = read_text_file(path)
    if not raw.lstrip().startswith("{\\rtf"):
        raise LoadError("not an RTF file (no {\\rtf header)")
    try:
        text = rtf_to_text(raw, errors="replace")
    except Exception as exc:
        raise LoadError(f"malformed RTF: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    if not text.strip():
        raise LoadError("no text in the RTF document")
    return [Section(text.strip())]
