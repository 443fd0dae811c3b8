"""Metadata filters (source, file type, ingestion date, page range) for both retrievers.

A filter has to act inside each retriever, before its top-k cut: filtering a fused top-5 after the
fact would often leave nothing. So one `Filters` value renders two ways: a Milvus boolean
expression for the dense side (and Milvus's own BM25), and a vectorised mask over the BM25
index's per-chunk facets. `matches()` is the plain-Python reference both must agree with.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Filters:
    """Keep chunks whose source is one of `sources` (a file, or any file under a folder), whose
    file type is one of `file_types`, ingested in [since, until] (epoch seconds) and whose page is
    in [page_min, page_max]. Empty or None parts do not restrict. A page bound excludes chunks
    without pages (text, audio)."""

    sources: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    page_min: int | None = None
    page_max: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(_normalise_source(s) for s in self.sources))
        object.__setattr__(self, "file_types",
                           tuple(t.lower().lstrip(".") for t in self.file_types if t))

    @property
    def empty(self) -> bool:
        return not (self.sources or self.file_types or self.since is not None
                    or self.until is not None or self.page_min is not None
                    or self.page_max is not None)

    # --- the reference semantics -------------------------------------------------------
    def source_matches(self, source: str) -> bool:
        return not self.sources or any(
            source == s or source.startswith(s.rstrip("/") + "/") for s in self.sources
        )

    def matches(self, source: str, file_type: str, page: int | None, ingested_at: float) -> bool:
        if not self.source_matches(source):
            return False
        if self.file_types and file_type not in self.file_types:
            return False
        if self.since is not None and ingested_at < self.since:
            return False
        if self.until is not None and ingested_at > self.until:
            return False
        if self.page_min is not None or self.page_max is not None:
            if page is None or page < 0:
                return False
            if self.page_min is not None and page < self.page_min:
                return False
            if self.page_max is not None and page > self.page_max:
                return False
        return True

    # --- for a user who got nothing back -----------------------------------------------
    def describe(self) -> str:
        """The filter in a user's words: "source /a/b.pdf, type pdf, pages 2-4, since ..."."""
        parts = []
        if self.sources:
            parts.append("source " + " or ".join(self.sources))
        if self.file_types:
            parts.append("type " + " or ".join(self.file_types))
        if self.page_min is not None or self.page_max is not None:
            low, high = self.page_min, self.page_max
            parts.append(f"page {low}" if low == high else
                         f"pages {low if low is not None else ''}-{high if high is not None else ''}")
        for word, when in (("since", self.since), ("until", self.until)):
            if when is not None:
                parts.append(f"{word} {dt.datetime.fromtimestamp(when).isoformat(sep=' ', timespec='minutes')}")
        return ", ".join(parts) or "no filter"

    def unmatched(self, indexed: Iterable[tuple[str, str]]) -> str:
        """Why nothing passes, given the indexed files as (path, file type): the part of the
        filter no indexed file meets, where there is one (a mistyped path, a type not indexed)."""
        indexed = list(indexed)
        if not indexed:
            return "the index is empty"
        if self.sources and not any(self.source_matches(path) for path, _ in indexed):
            wanted = {Path(source).name for source in self.sources}
            same_name = sorted(path for path, _ in indexed if Path(path).name in wanted)
            hint = f"; indexed under that name: {', '.join(same_name[:3])}" if same_name else ""
            return f"no indexed file is {' or '.join(self.sources)} or lies under it{hint}"
        if self.file_types and not any(kind in self.file_types for _, kind in indexed):
            kinds = sorted({kind for _, kind in indexed if kind})
            return (f"no indexed file has type {' or '.join(self.file_types)} (indexed types: "
                    f"{', '.join(kinds[:10]) or 'none'})")
        if self.sources and self.file_types and not any(
                self.source_matches(path) and kind in self.file_types for path, kind in indexed):
            return f"no indexed file matches both {self.describe()}"
        return f"no indexed chunk matches {self.describe()}"

    # --- Milvus ------------------------------------------------------------------------
    def milvus_expr(self) -> str:
        """The same filter as a Milvus boolean expression ('' when nothing restricts)."""
        parts: list[str] = []
        if self.sources:
            alternatives = []
            for s in self.sources:
                alternatives.append(f"source == {_quote(s)}")
                alternatives.append(f"source like {_quote(_like_escape(s.rstrip('/') + '/') + '%')}")
            parts.append("(" + " or ".join(alternatives) + ")")
        if self.file_types:
            parts.append(f"file_type in {json.dumps(list(self.file_types))}")
        if self.since is not None:
            parts.append(f"ingested_at >= {float(self.since)!r}")
        if self.until is not None:
            parts.append(f"ingested_at <= {float(self.until)!r}")
        if self.page_min is not None or self.page_max is not None:
            parts.append(f"page >= {max(0, self.page_min or 0)}")
            if self.page_max is not None:
                parts.append(f"page <= {int(self.page_max)}")
        return " and ".join(parts)

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_options(
        cls, *, source: Iterable[str] | str | None = None, file_type: Iterable[str] | str | None = None,
        since: str | float | dt.date | None = None, until: str | float | dt.date | None = None,
        page: str | int | tuple[int | None, int | None] | None = None,
    ) -> "Filters":
        """From CLI/API style values: `page="3-7"`, `since="2026-11-01"`, `file_type="pdf,md"`."""
        page_min, page_max = parse_page_range(page)
        return cls(
            sources=tuple(split_values(source)), file_types=tuple(split_values(file_type)),
            since=parse_time(since), until=parse_time(until, end_of_day=True),
            page_min=page_min, page_max=page_max,
        )


def as_filters(value: "Filters | Mapping[str, Any] | None") -> Filters | None:
    """Accept a `Filters`, a dict of `from_options` keywords, or None (no filter)."""
    if value is None:
        return None
    if isinstance(value, Filters):
        return None if value.empty else value
    if isinstance(value, Mapping):
        known = {"source", "file_type", "since", "until", "page"}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(known)}")
        built = Filters.from_options(**value)
        return None if built.empty else built
    raise TypeError(f"filters must be a Filters or a dict, not {type(value).__name__}")


def parse_page_range(value: Any) -> tuple[int | None, int | None]:
    """`5` -> (5, 5); `"3-7"` -> (3, 7); `"3-"` -> (3, None); `"-7"` -> (None, 7)."""
    if value is None or value == "":
        return None, None
    if isinstance(value, tuple):
        return value
    if isinstance(value, int):
        return value, value
    match = re.fullmatch(r"\s*(\d*)\s*(-?)\s*(\d*)\s*", str(value))
    if not match or not (match.group(1) or match.group(3)):
        raise ValueError(f"page range {value!r}: expected N, N-M, N- or -M")
    low = int(match.group(1)) if match.group(1) else None
    high = int(match.group(3)) if match.group(3) else (None if match.group(2) else low)
    if low is not None and high is not None and high < low:
        raise ValueError(f"page range {value!r}: end is before start")
    return low, high


def parse_time(value: Any, end_of_day: bool = False) -> float | None:
    """Epoch seconds from a number, a date/datetime, or ISO text ('2026-11-01', '2026-11-01T08:00')."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        day = dt.datetime.combine(value, dt.time.max if end_of_day else dt.time.min)
        return day.timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        if len(text) == 10:
            return parse_time(dt.date.fromisoformat(text), end_of_day)
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"date {value!r}: expected YYYY-MM-DD, an ISO date-time or epoch seconds"
        ) from None


def split_values(value: Iterable[str] | str | None) -> list[str]:
    """Values given one by one, comma-separated, or both ("a.pdf,b.md"), stripped, none empty."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _normalise_source(source: str) -> str:
    """Sources are stored as resolved paths; accept relative ones and `~` too."""
    if "://" in source:
        return source
    return str(Path(source).expanduser().resolve())


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _like_escape(text: str) -> str:
    """Milvus LIKE treats % and _ as wildcards; escape them so a folder prefix stays literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
