"""Format loaders, looked up by file extension: `loader_for(path)(path) -> list[Section]`.

Each format lives in its own module and registers itself on import; every loader raises
`LoadError` with a one-line cause for a file it cannot read.
"""

from ingestion.loaders.registry import (
    AUDIO_EXTENSIONS, LOADERS, OCR_EXTENSIONS, STREAMERS, Loader, Streamer, loader_for,
    reader_version, reads_with_ocr, register,
)
from ingestion.loaders.text import load_markdown, load_text, read_text_file
from ingestion.loaders import (  # noqa: F401  (imported to register their formats)
    ebook, html, image, mail, office, opendocument, pdf, rtf, tabular,
)

__all__ = ["AUDIO_EXTENSIONS", "LOADERS", "OCR_EXTENSIONS", "STREAMERS", "Loader", "Streamer", "loader_for",
           "reader_version", "reads_with_ocr", "register", "load_markdown", "load_text", "read_text_file"]
