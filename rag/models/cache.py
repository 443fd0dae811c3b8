"""Assemble model files shipped in parts, verify them by sha256 and cache the result once per machine.

Hand-written because no library covers "concatenate wheel-shipped parts, verify, cache": it is
a few lines over hashlib. A sidecar JSON records the parts' sizes and mtimes, so later runs skip
re-hashing hundreds of megabytes unless the parts changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from rag.errors import ModelFileError

T = TypeVar("T")

CHUNK = 1 << 20


def cache_dir() -> Path:
    """`$RAG_CACHE_DIR`, else `~/.cache/rag-framework/models`."""
    root = os.environ.get("RAG_CACHE_DIR") or Path.home() / ".cache" / "rag-framework" / "models"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(paths: Iterable[Path]) -> str:
    """sha256 of the concatenation of files, streamed."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    return digest.hexdigest()


def parts_signature(parts: list[Path]) -> list[list]:
    """Cheap identity of the parts (name, size, mtime) used to trust an earlier hash check."""
    return [[str(p), p.stat().st_size, int(p.stat().st_mtime)] for p in parts]


def verified_assembly(parts: list[Path], expected_sha256: str, out_path: Path, fix: str) -> Path:
    """Concatenate `parts` into `out_path` once, checking the sha256; reuse it while parts are unchanged.

    `fix` is the sentence telling the user how to repair a corrupt or missing part.
    """
    for part in parts:
        if not part.is_file():
            raise ModelFileError(f"{part}: model part is missing; {fix}")
    sidecar = out_path.with_suffix(out_path.suffix + ".json")
    signature = parts_signature(parts)
    if out_path.is_file() and sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("parts") == signature and recorded.get("sha256") == expected_sha256:
            if out_path.stat().st_size == recorded.get("size"):
                return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while block := handle.read(CHUNK):
                        digest.update(block)
                        out.write(block)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            names = ", ".join(str(p) for p in parts)
            raise ModelFileError(
                f"{names}: assembled model has sha256 {actual}, expected {expected_sha256}; {fix}"
            )
        os.replace(tmp_name, out_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    record = {"parts": signature, "sha256": expected_sha256, "size": out_path.stat().st_size}
    write_json_atomic(sidecar, record)
    return out_path


STALE_AFTER_S = 3600  # an assembly takes seconds; a temporary this old was left by a killed run


def remove_stale_temporaries(out_path: Path) -> None:
    """Delete half-written copies of `out_path` (`<name>*.tmp`, over an hour old) left by a
    process killed mid-write (they are never read: a file is only renamed into place whole),
    so repeated crashes do not fill the cache with gigabyte fragments."""
    import time

    now = time.time()
    for leftover in out_path.parent.glob(out_path.name + "*.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_AFTER_S:
                leftover.unlink()
        except OSError:
            continue  # another process removed or is finishing it


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def staging_folder(final: Path) -> Path:
    """A new empty folder beside `final` to build a cached model in before renaming it into
    place (so a half-built one is never read); folders that killed runs left, over an hour
    old, are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(final.name + ".tmp-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=final.name + ".tmp-"))


def move_into_place(work: Path, final: Path, finished: Callable[[], T | None],
                    failure: type[Exception] = ModelFileError) -> T | None:
    """Rename the folder built in `work` (see `staging_folder`) to `final`. None when ours is in
    place. A `final` that `finished()` does not accept (stale, altered) is replaced; when another
    process renamed its finished copy there first, `work` is dropped and `finished()` of theirs
    is returned; a `final` that is neither raises `failure` saying to delete it."""
    if final.exists() and finished() is None:
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(work, final)
        return None
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(work, ignore_errors=True)
        if (found := finished()) is None:
            raise failure(f"{final}: exists and is not a finished copy; delete it") from None
        return found
