"""Watching a collection's upload folder from the Library tab: files copied, edited, renamed or
removed there (by hand, a sync tool, an editor) are re-indexed as they change (`rag.watch`).

One `Watcher` thread per collection at most, writing under the collection's writer lock so an
upload and the watcher never write at once; stopped when switched off or the app closes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

log = logging.getLogger(__name__)


class Watches:
    """The collections being watched, and the last changes each one saw."""

    def __init__(self, service: Any, keep: int = 20):
        self.service = service
        self.keep = keep
        self._running: dict[str, tuple[Any, threading.Thread]] = {}
        self._recent: dict[str, deque] = {}
        self._guard = threading.Lock()

    def is_on(self, collection: str) -> bool:
        with self._guard:
            found = self._running.get(collection)
            return found is not None and found[1].is_alive()

    def start(self, collection: str) -> None:
        from rag.watch import Watcher

        with self._guard:
            if collection in self._running and self._running[collection][1].is_alive():
                return
            folder = self.service.area(collection)
            folder.mkdir(parents=True, exist_ok=True)
            recent = self._recent.setdefault(collection, deque(maxlen=self.keep))
            watcher = Watcher(self.service.rag(collection), [folder], on_change=lambda c: (
                recent.append(c.line()), log.info("%s: %s", collection, c.line())),
                lock=self.service.write_lock(collection))
            thread = threading.Thread(target=self._run, args=(collection, watcher),
                                      name=f"watch-{collection}", daemon=True)
            self._running[collection] = (watcher, thread)
            thread.start()
        watcher.ready.wait(timeout=60)

    def _run(self, collection: str, watcher: Any) -> None:
        try:
            watcher.run()
        except Exception as exc:  # shown in the status line, never takes the app down
            log.warning("watching %s stopped: %s", collection, exc)
            self._recent.setdefault(collection, deque(maxlen=self.keep)).append(
                f"stopped: {type(exc).__name__}: {exc}")

    def stop(self, collection: str) -> None:
        with self._guard:
            found = self._running.pop(collection, None)
        if found is not None:
            found[0].stop()
            found[1].join(timeout=30)

    def close(self) -> None:
        for name in list(self._running):
            self.stop(name)

    def status(self, collection: str) -> str:
        """A line for the Library tab: on or off, and the last changes."""
        if not self.is_on(collection):
            return "Watching is off."
        lines = list(self._recent.get(collection, ()))[-5:]
        head = f"Watching `{self.service.area(collection)}`: changes there are re-indexed."
        return head + ("\n\n" + "\n".join(f"- `{line}`" for line in lines) if lines else "")
