"""Plain text, Markdown and WebVTT subtitles, in whatever common encoding they come in.

Encoding detection: BOMs first (UTF-8/16/32), then strict UTF-8, then BOM-less UTF-16 (told by
where the zero bytes sit), then charset-normalizer for the 8-bit code pages (cp1252, Latin-1, ...).
A file that decodes to mostly control characters is binary and is refused, not indexed as noise.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from ingestion.loaders.registry import register
from ingestion.sections import HeadedSections, LoadError, Section

BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
)


def decode_text(data: bytes) -> str:
    """Text from bytes in any common encoding; `LoadError` for binary data."""
    encoding, skip = text_encoding(data)
    if encoding == "utf-8":
        return _checked(data.decode("utf-8"))
    return _checked(data[skip:].decode(encoding, errors="replace"))


def text_encoding(data: bytes, partial: bool = False) -> tuple[str, int]:
    """The encoding of text that starts with `data`, and the length of its BOM. `partial`:
    `data` is only the head of a file, so it may end inside a UTF-8 character."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    utf16 = _bomless_utf16(data)  # before UTF-8: ASCII-range UTF-16 is also valid UTF-8
    if utf16:
        return utf16, 0
    try:
        data.decode("utf-8")
        return "utf-8", 0
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return "utf-8", 0
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError("binary or undecodable text (no known encoding fits)")
    if best.encoding in WESTERN_LOOKALIKES:
        # Short Western European text is often mistaken for a neighbouring code page
        # ("niño" read as cp1250 gives "nińo"); cp1252 is by far the likelier one.
        try:
            data.decode("cp1252")
            return "cp1252", 0
        except UnicodeDecodeError:
            pass
    return best.encoding, 0


WESTERN_LOOKALIKES = {"cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_2", "iso8859_3",
                      "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14",
                      "iso8859_15", "iso8859_16", "mac_latin2", "mac_roman", "mac_iceland",
                      "mac_turkish"}


def _bomless_utf16(data: bytes) -> str | None:
    """'utf-16-be'/'utf-16-le' when most even/odd bytes are zero (ASCII-range UTF-16)."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zeros_even > 0.3 and zeros_odd < 0.05:
        return "utf-16-be"
    if zeros_odd > 0.3 and zeros_even < 0.05:
        return "utf-16-le"
    return None


def _checked(text: str) -> str:
    sample = text[:8192]
    if sample:
        control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
        if "\x00" in sample or control / len(sample) > 0.05:
            raise LoadError("binary file, not text")
    return text


def read_text_file(path: Path) -> str:
    """The decoded text of a file; `LoadError` when it is empty, blank or binary."""
    data = Path(path).read_bytes()
    if not data:
        raise LoadError("empty file")
    text = decode_text(data)
    if not text.strip():
        raise LoadError("no text (file is blank)")
    return text


STREAM_BLOCK_BYTES = 1 << 20  # what one streamed section holds, about


def iter_text_sections(path: Path, block_bytes: int = STREAM_BLOCK_BYTES) -> Iterator[Section]:
    """A plain-text file of any size as sections of about `block_bytes`, cut after a paragraph
    (or at least a line) end, read and decoded block by block: memory holds a block or two,
    whatever the file's size. The encoding is told from the first block, as `decode_text`
    tells it from the whole file."""
    with open(path, "rb") as handle:
        block = handle.read(block_bytes)
        if not block:
            raise LoadError("empty file")
        encoding, skip = text_encoding(block, partial=True)
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        text = _checked(decoder.decode(block[skip:]))
        found = False
        while True:
            block = handle.read(block_bytes)
            text += decoder.decode(block, final=not block)
            if block and len(text) < block_bytes:
                continue
            cut = len(text) if not block else _cut(text)
            piece, text = text[:cut], text[cut:]
            if piece.strip():
                found = True
                # How far the file has been read (a block ahead at most): progress for a caller
                # reading a large file (chunks do not keep it, `preparation._chunk_extra`).
                yield Section(piece, meta={"read_bytes": handle.tell()})
            if not block:
                break
    if not found:
        raise LoadError("no text (file is blank)")


def _cut(text: str) -> int:
    """Where to end a streamed section: after the last paragraph break in its second half,
    else after the last line end, else the whole text (one endless line)."""
    half = len(text) // 2
    for mark in ("\n\n", "\n"):
        at = text.rfind(mark, half)
        if at >= 0:
            return at + len(mark)
    return len(text)


@register(".txt", ".text", ".rst", ".log", ".tex", ".json", ".jsonl", ".xml", ".yaml", ".yml",
          stream=iter_text_sections)
def load_text(path: Path) -> list[Section]:
    return [Section(read_text_file(path))]


HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@register(".md", ".markdown")
def load_markdown(path: Path) -> list[Section]:
    """One section per heading, carrying the heading trail (e.g. "Setup > Install")."""
    return markdown_sections(read_text_file(path))


def markdown_sections(text: str) -> list[Section]:
    builder = HeadedSections()
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            builder.heading(len(match.group(1)), match.group(2))
        builder.add(line)
    sections = builder.finish()
    if not sections:
        raise LoadError("no text (file is blank)")
    return sections


CUE_TIME = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})")
VOICE_TAG = re.compile(r"<[^>]+>")


@register(".vtt", ".srt")
def load_subtitles(path: Path) -> list[Section]:
    """WebVTT/SRT cues as timed sections (start/end seconds), like a transcript.

    Hand-written: the cue syntax is two timestamps and text lines, not worth a dependency.
    """
    sections: list[Section] = []
    start = end = None
    lines: list[str] = []

    def emit() -> None:
        text = " ".join(VOICE_TAG.sub("", line).strip() for line in lines).strip()
        if start is not None and text:
            sections.append(Section(text, start=start, end=max(end, start)))
        lines.clear()

    for line in read_text_file(path).splitlines():
        match = CUE_TIME.match(line)
        if match:
            emit()
            start, end = _seconds(match.group(1)), _seconds(match.group(2))
        elif not line.strip():
            emit()
            start = end = None
        elif start is not None:
            lines.append(line)
    emit()
    if not sections:
        raise LoadError("no subtitle cues found")
    return sections


def _seconds(stamp: str) -> float:
    parts = [float(p.replace(",", ".")) for p in stamp.split(":")]
    total = 0.0
    for part in parts:
        total = total * 60 + part
    return round(total, 3)
