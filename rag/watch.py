"""Keep an index in step with folders as files change: `rag watch PATH...`.

watchfiles (Rust `notify`: inotify, FSEvents, ReadDirectoryChangesW) reports changes; a burst
of them (an editor's save writes, renames and touches several times) is collected until the
folder has been quiet for `quiet_ms` (at most `max_wait_ms`), then handled as one batch:

- files that are gone: their sources are deleted from both indexes;
- a new path whose bytes equal a gone source's (same content hash and type): a rename, moved
  with `ChunkIndex.move_source`, which reuses the stored vectors (no embedding);
- every other new or modified file: one `RAG.ingest` call for the batch (unchanged ones cost a
  stat, a modified one replaces its chunks atomically).

Each change is reported as one `Change` (one log line). `stop()` (Ctrl-C, SIGTERM, the UI's
switch) ends the loop between batches: an ingest in flight completes first.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

log = logging.getLogger(__name__)

# Editor droppings that are never documents (vim's 4913 probe, backup and swap files).
SCRATCH_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")


@dataclass
class Change:
    """One handled change: `kind` is added | updated | deleted | renamed | failed."""

    kind: str
    path: str
    chunks: int = 0
    old_path: str | None = None
    error: str | None = None

    def line(self) -> str:
        if self.kind == "renamed":
            return f"renamed    {self.old_path} -> {self.path} ({self.chunks} chunks, no embedding)"
        if self.kind == "failed":
            return f"failed     {self.path}: {self.error}"
        return f"{self.kind:<10} {self.path} ({self.chunks} chunks)"

    def to_json(self) -> dict[str, Any]:
        return {"change": self.kind, "path": self.path, "chunks": self.chunks,
                "old_path": self.old_path, "error": self.error}


class Watcher:
    """Watches `paths` for one `RAG`; `run()` blocks until `stop()`.

    `on_change(change)` is called for each change handled (default: logged at INFO);
    `initial_sync` first ingests the paths and deletes sources whose files went while nobody
    watched (`RAG.ingest(prune=True)`). `lock` is held while a batch is written (the UI's
    per-collection writer lock: an upload and the watcher never write at once)."""

    def __init__(self, rag: Any, paths: Iterable[str | Path], *,
                 on_change: Callable[[Change], None] | None = None, quiet_ms: int = 400,
                 max_wait_ms: int = 3000, initial_sync: bool = True,
                 lock: ContextManager[Any] | None = None,
                 on_ready: Callable[[], None] | None = None):
        self.rag = rag
        self.paths = [Path(p).resolve() for p in paths]
        missing = [str(p) for p in self.paths if not p.is_dir() and not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: no such file or folder to watch")
        self.on_change = on_change or (lambda change: log.info("%s", change.line()))
        self.quiet_ms = quiet_ms
        self.max_wait_ms = max_wait_ms
        self.initial_sync = initial_sync
        self.lock = lock if lock is not None else nullcontext()
        self.on_ready = on_ready  # called once watching (the CLI prints "watching ...")
        self.batches = 0  # change batches handled (a burst of saves is one)
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once watching (after the initial sync)

    def stop(self) -> None:
        """End `run()` after the batch in progress (safe from a signal handler or a thread)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        from watchfiles import watch

        from ingestion.chunking import Chunker

        self.rag.index  # opened now, and the splitter's library (llama-index) imported: the
        Chunker(len).splitter  # first change would otherwise wait 2-5 s for them
        if self.initial_sync and not self.stopped:
            with self.lock:
                self._report(self.rag.ingest(self.paths, prune=True))
        if self.stopped:
            return
        # watchfiles yields a set once no change came for `step` ms (at most `debounce` ms
        # after the first): an editor's burst of writes arrives as one set.
        changes = watch(*self.paths, debounce=self.max_wait_ms, step=self.quiet_ms,
                        stop_event=self._stop, yield_on_timeout=True, rust_timeout=500,
                        raise_interrupt=False)  # watchfiles' default filter skips .git, swap files
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready()
        for batch in changes:
            if self._stop.is_set():
                break
            if batch:
                with self.lock:
                    self.handle({Path(path) for _, path in batch})

    def handle(self, touched: set[Path]) -> list[Change]:
        """Bring the index in step with the current state of `touched` paths; returns what
        changed (also reported through `on_change`)."""
        from ingestion.changes import content_hash_for
        from ingestion.discovery import expand_paths, source_id_for
        from ingestion.results import one_line
        from retrievers.catalog import Publication
        from retrievers.records import chunk_id_for

        self.batches += 1
        catalog = self.rag.index.catalog
        touched = {p for p in touched if not self._ignored(p)}
        present = [p for p in touched if p.exists()]
        gone: dict[str, dict[str, Any]] = {}
        for path in touched:
            if not path.exists():
                for row in catalog.sources_under([str(path)]):
                    gone[row["source_id"]] = row
        files, _ = expand_paths(present) if present else ([], [])
        files = [f for f in files if not self._ignored(f)]
        done: list[Change] = []
        to_ingest: list[Path] = []
        by_hash = {(row["content_hash"], row["file_type"]): sid for sid, row in gone.items()}
        for path in files:
            file_type = path.suffix.lower().lstrip(".")
            new_id = source_id_for(path)
            if by_hash and catalog.source(new_id) is None:
                try:
                    content_hash = content_hash_for(path)
                    stat = path.stat()
                except OSError:
                    continue  # gone again already: the next batch sees it
                old_id = by_hash.pop((content_hash, file_type), None)
                if old_id is not None:
                    old = gone.pop(old_id)
                    publication = Publication(new_id, str(path.resolve()), content_hash,
                                              file_type, [], stat.st_size, stat.st_mtime,
                                              old["reader"])
                    try:
                        moved = self.rag.index.move_source(
                            old_id, publication,
                            lambda position: chunk_id_for(new_id, content_hash, position))
                    except Exception as exc:
                        log.debug("moving %s failed", old["path"], exc_info=True)
                        done.append(self._emit(Change("failed", str(path), error=one_line(exc))))
                        continue
                    if moved is not None:
                        done.append(self._emit(Change("renamed", str(path), moved, old["path"])))
                        continue
                    gone[old_id] = old  # the store gave no vectors back: delete and ingest
            to_ingest.append(path)
        if to_ingest:
            done += self._report(self.rag.ingest(to_ingest))
        for source_id, row in gone.items():
            removed = self.rag.index.delete_source(source_id)
            done.append(self._emit(Change("deleted", row["path"], removed)))
        return done

    def _ignored(self, path: Path) -> bool:
        """Hidden entries (as `rag ingest` skips them) and editor scratch files."""
        for root in self.paths:
            if path == root or root in path.parents:
                inside = path.relative_to(root).parts
                return any(part.startswith(".") for part in inside) or _scratch(path)
        return _scratch(path)

    def _report(self, results: list) -> list[Change]:
        out = []
        for r in results:
            if r.status in ("added", "updated", "deleted"):
                out.append(self._emit(Change(r.status, r.path, r.chunks)))
            elif r.status == "failed":
                out.append(self._emit(Change("failed", r.path, error=r.error)))
        return out

    def _emit(self, change: Change) -> Change:
        try:
            self.on_change(change)
        except Exception:  # a broken reporter must not stop the watch
            log.debug("on_change failed", exc_info=True)
        return change


def _scratch(path: Path) -> bool:
    name = path.name
    return name.startswith(".") or name.endswith(SCRATCH_SUFFIXES) or name == "4913"
