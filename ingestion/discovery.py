"""Which files a run covers, what each is called, and which are refused before any reading.

Why apart from the pipeline: these answers depend on the file system alone (no catalog, no
model), so the CLI, `RAG.delete` and the change detector share them, and a file refused here
(empty, too big, a type no loader reads) costs one `stat` and is never opened.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Mapping

from ingestion.loaders import AUDIO_EXTENSIONS, Loader, loader_for
from ingestion.results import FileResult, one_line

UNSUPPORTED_HINTS = {
    ".doc": "legacy Word .doc is not supported; save it as .docx",
    ".xls": "legacy Excel .xls is not supported; save it as .xlsx",
    ".ppt": "legacy PowerPoint .ppt is not supported; save it as .pptx",
    ".gif": "GIF images are not read; save the image as PNG to have it read by OCR",
}


def source_id_for(path: Path) -> str:
    """Stable id of a source: its absolute path."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files under the given paths (recursively, sorted, hidden entries skipped), and problems.

    Every path given, and every entry met in a folder, ends as a file to read or a problem with
    a one-line reason: a broken link, a link loop, a FIFO or device, a folder that cannot be
    listed (no permission, a path too long). Links to folders are not followed (no loops); a
    file reached twice (a link to a file also given) is read once.
    """
    found: list[Path] = []
    problems: list[FileResult] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside: list[Path] = []
            _walk(path, inside, problems)
            found.extend(sorted(inside))
        elif path.is_file():
            found.append(path)
        else:
            problems.append(FileResult(str(path), "failed", error=_not_a_file(path)))
    return _read_once(found), problems


def _read_once(found: list[Path]) -> list[Path]:
    """Each file once, in order: of several names for one file (links, a path given twice),
    the file's own name if it is among them, else the first."""
    chosen: dict[str, Path] = {}
    for path in found:
        try:
            key = os.path.realpath(path)
        except (OSError, ValueError):
            key = str(path)
        if key not in chosen or (chosen[key].is_symlink() and not path.is_symlink()):
            chosen[key] = path
    keep = {id(path) for path in chosen.values()}
    return [path for path in found if id(path) in keep]


def _walk(folder: Path, found: list[Path], problems: list[FileResult]) -> None:
    """Regular files under `folder` (links to files included, links to folders not followed)."""
    try:
        with os.scandir(folder) as entries:
            listed = list(entries)
    except OSError as exc:
        problems.append(FileResult(str(folder), "failed",
                                   error=f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in listed:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                _walk(child, found, problems)
            elif entry.is_file():  # follows a link to a file
                found.append(child)
            elif not (entry.is_symlink() and child.is_dir()):
                problems.append(FileResult(str(child), "failed", error=_not_a_file(child)))
        except OSError:  # a link loop, a name too long
            problems.append(FileResult(str(child), "failed", error=_not_a_file(child)))


def _not_a_file(path: Path) -> str:
    """Why an existing name is not a file that can be read, or that nothing is there."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if exc.errno == errno.ENAMETOOLONG:
            return f"path too long for the system ({len(os.fsencode(path))} bytes)"
        if path.is_symlink():
            return f"broken link: its target {os.readlink(path)!r} does not exist"
        if exc.errno == errno.ENOENT:
            return "no such file or directory"
        return one_line(exc)
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
    return f"not a regular file ({kind}); only regular files are read"


def changed_since(path: Path, before: os.stat_result) -> str | None:
    """How a file changed since `before` was taken (None: same size and mtime)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return "file vanished"
    if now.st_size != before.st_size:
        return f"file changed size ({before.st_size} -> {now.st_size} bytes)"
    if now.st_mtime_ns != before.st_mtime_ns:
        return "file was modified"
    return None


def name_problem(path: Path) -> str | None:
    """Why a path cannot be recorded as it is (None: it can). The catalog and Milvus store
    text: a name with bytes that are not UTF-8 (Linux allows any bytes but / and NUL) has no
    faithful text form, and a lossy one would break `--prune` and `rag delete`."""
    text = os.path.realpath(path)  # what is recorded: the resolved path
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = os.fsencode(text[exc.start:exc.end])[:1]
        return f"file name is not valid UTF-8 (byte 0x{bad.hex()}); rename it to index it"
    return None


def refusal(path: Path, stat_: os.stat_result, max_file_bytes: int,
            loaders: Mapping[str, Loader] | None = None) -> str | None:
    """Why a file is not even tried (not a regular file, a name that is not UTF-8, empty, over
    the size limit, no reader for its type), or None. `loaders`: extension -> loader (None: the
    registry's)."""
    if not stat.S_ISREG(stat_.st_mode):
        return _not_a_file(path)
    problem = name_problem(path)
    if problem:
        return problem
    if stat_.st_size == 0:
        return "empty file (0 bytes)"
    if stat_.st_size > max_file_bytes:
        return (f"file is {stat_.st_size / 2**20:.1f} MiB, over the max_file_mb limit of "
                f"{max_file_bytes / 2**20:.0f} MiB")
    suffix = path.suffix.lower()
    known = loader_for(path) if loaders is None else loaders.get(suffix)
    if suffix not in AUDIO_EXTENSIONS and known is None:
        return UNSUPPORTED_HINTS.get(suffix) or f"unsupported file type '{path.suffix or path.name}'"
    return None
