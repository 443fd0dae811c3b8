"""Hostile zip packages and XML: decompression bombs are refused before anything inflates, and
entity-expansion ("billion laughs") documents neither expand nor fill memory.

Peak memory is read from Linux's VmHWM after resetting it (`/proc/self/clear_refs`), so the
figure is this load's own peak, not the test process's earlier one.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

from ingestion.loaders import loader_for
from ingestion.sections import LoadError

MB = 1 << 20


def zero_member(package: zipfile.ZipFile, name: str, size: int) -> None:
    """Add `size` bytes of zeros as a deflated member (written in blocks: bounded memory)."""
    block = bytes(min(size, 64 * MB))
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with package.open(info, "w", force_zip64=True) as member:
        written = 0
        while written < size:
            part = block[: size - written]
            member.write(part)
            written += len(part)


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("A harmless paragraph.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_with_bomb(path: Path, inflated: int) -> Path:
    """A real DOCX plus one member of `inflated` zero bytes (e.g. an 'image')."""
    path.write_bytes(docx_bytes())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as package:
        zero_member(package, "word/media/image1.bin", inflated)
    return path


def reset_peak_rss() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return rss_kb("VmRSS")


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


def test_a_member_that_inflates_a_thousandfold_is_refused_before_reading(tmp_path):
    bomb = docx_with_bomb(tmp_path / "report.docx", 200 * MB)  # ~0.2 MB on disk
    assert bomb.stat().st_size < 1 * MB
    with pytest.raises(LoadError, match=r"word/media/image1.bin.*expand .*x to 200 MB: refused "
                                        r"as a decompression bomb"):
        loader_for(bomb)(bomb)


@pytest.mark.parametrize("suffix, kind", [(".xlsx", "XLSX"), (".pptx", "PPTX"), (".odt", "ODT"),
                                          (".epub", "EPUB")])
def test_every_zip_format_checks_its_package_first(tmp_path, suffix, kind):
    path = tmp_path / f"bomb{suffix}"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("mimetype", "application/epub+zip" if suffix == ".epub" else "x")
        zero_member(package, "content.xml", 100 * MB)
    with pytest.raises(LoadError, match=f"{kind} package member 'content.xml' would expand"):
        loader_for(path)(path)


def test_a_package_of_too_many_members_is_refused(tmp_path, monkeypatch):
    from ingestion.loaders import packages

    path = tmp_path / "many.docx"
    path.write_bytes(docx_bytes())
    count = len(zipfile.ZipFile(path).infolist())
    monkeypatch.setattr(packages, "MAX_MEMBERS", count - 1)  # the limit, not the parser, is tested
    with pytest.raises(LoadError, match=f"DOCX package with {count} members"):
        loader_for(path)(path)


@pytest.mark.slow
def test_a_10mb_docx_that_would_expand_past_5gb_is_refused_in_seconds_and_bounded_memory(tmp_path):
    """The issue's figure: refused in under 5 s, peak RSS growth under 200 MB."""
    bomb = docx_with_bomb(tmp_path / "bomb.docx", 5 * 1024 * MB + 512 * MB)
    size = bomb.stat().st_size
    assert size < 10 * MB
    before = reset_peak_rss()
    started = time.perf_counter()
    with pytest.raises(LoadError, match="refused as a decompression bomb"):
        loader_for(bomb)(bomb)
    elapsed = time.perf_counter() - started
    growth_mb = (rss_kb("VmHWM") - before) / 1024
    print(f"\n5.5 GB bomb in a {size / MB:.1f} MB DOCX: refused in {elapsed:.3f} s, "
          f"peak RSS growth {growth_mb:.1f} MB")
    assert elapsed < 5 and growth_mb < 200


LAUGHS = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10}">' for i in range(1, 10))
DTD = f'<!DOCTYPE d [<!ENTITY l0 "lol">{LAUGHS}]>'


def billion_laughs_files(tmp_path: Path) -> dict[str, Path]:
    """One DOCX, XLSX, ODT, EPUB and XHTML whose main XML would expand to 3 GB of 'lol'."""
    files = {}
    docx_path = tmp_path / "laughs.docx"
    with zipfile.ZipFile(io.BytesIO(docx_bytes())) as source, \
            zipfile.ZipFile(docx_path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                text = data.decode()
                head, body = text.split("?>", 1)
                data = (head + "?>" + DTD.replace("d [", "w:document [") + body
                        .replace("A harmless paragraph.", "&l9;")).encode()
            target.writestr(item, data)
    files["docx"] = docx_path
    odt_path = tmp_path / "laughs.odt"
    with zipfile.ZipFile(odt_path, "w") as package:
        package.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        package.writestr("content.xml", '<?xml version="1.0"?>' + DTD.replace("d [", "office:document-content [") +
                         '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
                         'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
                         '<office:text><text:p>&l9;</text:p></office:text></office:body>'
                         '</office:document-content>')
    files["odt"] = odt_path
    html_path = tmp_path / "laughs.xhtml"
    html_path.write_text('<?xml version="1.0"?>' + DTD.replace("d [", "html [") +
                         "<html><body><p>&l9;</p></body></html>")
    files["xhtml"] = html_path
    return files


@pytest.mark.parametrize("kind", ["docx", "odt", "xhtml"])
def test_entity_expansion_neither_expands_nor_fills_memory(tmp_path, kind):
    path = billion_laughs_files(tmp_path)[kind]
    loader = loader_for(path)
    assert loader is not None
    before = reset_peak_rss()
    started = time.perf_counter()
    try:
        sections = loader(path)
    except LoadError as exc:  # refused: one line, naming the cause
        assert "\n" not in str(exc)
        sections = []
    elapsed = time.perf_counter() - started
    growth_mb = (rss_kb("VmHWM") - before) / 1024
    text = "".join(s.text for s in sections)
    assert text.count("lol") < 1000, "entities were expanded"
    assert elapsed < 5 and growth_mb < 200, (elapsed, growth_mb)


def test_a_docx_with_a_corrupt_compressed_member_fails_in_one_line(tmp_path):
    """Found by the hypothesis suite: a flipped byte inside a deflated member made zipfile raise
    zlib.error (not an OSError) out of the loader."""
    import io
    import zipfile

    from ingestion.loaders.office import load_docx
    from ingestion.sections import LoadError

    real = next((Path(__file__).resolve().parents[1] / "data" / "documents").rglob("*.docx"))
    data = bytearray(real.read_bytes())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("_rels/.rels")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 2, start + 12):  # inside the deflated stream: zlib fails, not the CRC
        data[i] ^= 0xFF
    path = tmp_path / "broken.docx"
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError) as error:
        load_docx(path)
    assert "\n" not in str(error.value) and "DOCX" in str(error.value)
