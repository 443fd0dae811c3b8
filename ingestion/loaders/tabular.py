"""CSV/TSV rows as text ('column: value; ...'), delimiter sniffed, encoding detected."""

from __future__ import annotations

import csv
from pathlib import Path

from ingestion.loaders.office import rows_as_text
from ingestion.loaders.registry import register
from ingestion.loaders.text import read_text_file
from ingestion.sections import LoadError, Section


@register(".csv", ".tsv")
def load_csv(path: Path) -> list[Section]:
    text = read_text_file(path)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        lines = rows_as_text(csv.reader(text.splitlines(), dialect))
    except csv.Error as exc:
        raise LoadError(f"malformed CSV: {exc}") from exc
    if not lines:
        raise LoadError("no rows with values")
    return [Section("\n".join(lines))]
