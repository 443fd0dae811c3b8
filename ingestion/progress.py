"""How a run reports progress: files done, chunks embedded, seconds of each recording transcribed,
pages of each scan read by OCR.

Why an interface: the pipeline says what happened and a `Progress` decides how it shows, so the
CLI gets its tqdm bars on stderr, the Python API and tests stay silent, and no other part of
ingestion imports tqdm.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol


class Progress(Protocol):
    def start(self, n_files: int) -> None:
        """A run over `n_files` files begins."""

    def file_started(self, name: str) -> None:
        """The run waits for this file now."""

    def file_done(self) -> None: ...

    def embedding(self, n_chunks: int) -> Callable[[int], None]:
        """A batch of `n_chunks` goes to the model; returns the callback it reports chunks to."""

    def transcription(self, path: Path, total: float
                      ) -> AbstractContextManager[Callable[[float, float], None]]:
        """One recording is transcribed; yields a callback of (seconds done, seconds in total)."""

    def ocr_pages(self, path: Path) -> AbstractContextManager[Callable[[int, int], None]]:
        """A file whose pages OCR may read; yields a callback of (pages read by OCR, pages in
        the file), called after each page OCR reads (never, for a PDF with a good text layer).
        Optional: the pipeline skips it on a `Progress` without it."""

    def reading(self, path: Path, total_bytes: int
                ) -> AbstractContextManager[Callable[[int], None]]:
        """A large file read and embedded a part at a time; yields a callback of (bytes read so
        far). Optional: the pipeline skips it on a `Progress` without it."""

    def close(self) -> None:
        """The run is over (also after an error)."""


def _ignore(*_: Any) -> None:
    pass


class SilentProgress:
    """Reports nothing."""

    def start(self, n_files: int) -> None:
        pass

    def file_started(self, name: str) -> None:
        pass

    def file_done(self) -> None:
        pass

    def embedding(self, n_chunks: int) -> Callable[[int], None]:
        return _ignore

    @contextmanager
    def transcription(self, path: Path, total: float) -> Iterator[Callable[[float, float], None]]:
        yield _ignore

    @contextmanager
    def ocr_pages(self, path: Path) -> Iterator[Callable[[int, int], None]]:
        yield _ignore

    @contextmanager
    def reading(self, path: Path, total_bytes: int) -> Iterator[Callable[[int], None]]:
        yield _ignore

    def close(self) -> None:
        pass


class TqdmProgress:
    """The CLI's bars on stderr: files (with the current name), embedded chunks, and one bar per
    recording while it is transcribed."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def start(self, n_files: int) -> None:
        from tqdm import tqdm

        self._bars = {
            "files": tqdm(total=n_files, desc="files", unit="file", file=sys.stderr,
                          dynamic_ncols=True, position=0),
            "embed": tqdm(total=0, desc="embed", unit="chunk", file=sys.stderr,
                          dynamic_ncols=True, position=1),
        }

    def file_started(self, name: str) -> None:
        self._bars["files"].set_postfix_str(name[-40:])

    def file_done(self) -> None:
        self._bars["files"].update(1)

    def embedding(self, n_chunks: int) -> Callable[[int], None]:
        bar = self._bars["embed"]
        if bar.n == 0:
            bar.reset(total=n_chunks)  # the rate counts from the first batch, not from start-up
        else:
            bar.total = (bar.total or 0) + n_chunks
            bar.refresh()
        return bar.update

    @contextmanager
    def transcription(self, path: Path, total: float) -> Iterator[Callable[[float, float], None]]:
        from tqdm import tqdm

        with tqdm(total=round(total, 1), desc=f"transcribe {path.name[-30:]}", unit="s",
                  file=sys.stderr, dynamic_ncols=True, position=2, leave=False) as bar:
            def progress(done: float, known_total: float) -> None:
                if known_total > (bar.total or 0):
                    bar.total = round(known_total, 1)
                bar.update(round(done - bar.n, 1))

            yield progress

    @contextmanager
    def ocr_pages(self, path: Path) -> Iterator[Callable[[int, int], None]]:
        """A bar of pages, shown from the first page OCR reads (a PDF with a text layer shows none)."""
        from tqdm import tqdm

        bars: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(total=total, desc=f"ocr {path.name[-30:]}", unit="page",
                                 file=sys.stderr, dynamic_ncols=True, position=2, leave=False))
            bars[0].update(done - bars[0].n)

        try:
            yield progress
        finally:
            for bar in bars:
                bar.close()

    @contextmanager
    def reading(self, path: Path, total_bytes: int) -> Iterator[Callable[[int], None]]:
        """A bar of the file's bytes read, with the rate and the time left: a 500 MB file takes
        hours, and the embed bar only knows the chunks read so far."""
        from tqdm import tqdm

        with tqdm(total=total_bytes, desc=f"read {path.name[-30:]}", unit="B", unit_scale=True,
                  file=sys.stderr, dynamic_ncols=True, position=2, leave=False) as bar:
            def progress(done: int) -> None:
                bar.update(min(done, total_bytes) - bar.n)

            yield progress

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars = {}
