"""`rag reindex`: move an index to another embedding model while it keeps answering.

Steps (each safe to kill -9 at any point; the serving collection is never written):
  1. record the run in the catalog (`reindex.building`: the model record and the collection);
  2. embed every live chunk's text from the catalog (no re-parsing) into a new versioned
     collection (`rag_chunks_v2`, ...: retrievers/collections.py), in batches, flushing as it
     goes; a later run with the same model finds the rows already there and embeds only the
     rest (resume), and one with another model drops the unfinished collection;
  3. with this process's writes held (ingest, delete), catch up with what changed meanwhile,
     then run the smoke evaluation (rag/smoke.py) on the new collection: a failure refuses the
     switch and the index keeps serving the old one;
  4. switch: the alias moves (one Milvus call), the catalog records the new model and keeps
     the old collection as `previous` (`--rollback` switches back to it, after embedding with
     the old model whatever was ingested since), and this process's queries move to the new
     collection and model in one step under the index's write lock.
Queries never wait for steps 1-3; other processes serving the same index (a Milvus server,
or `milvus-lite server`) follow the switch at their next query (`RAG._follow_switch`).
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable

from rag import parts
from rag.config import Settings
from rag.errors import ConfigError
from rag.models.embedder import embedder_for
from rag.serving import (INDEX_SETTINGS_KEY, MODEL_KEYS, REINDEX_KEY, collection_of,
                         from_properties, loadable_ref, model_record, ref_of)
from rag.smoke import SmokeResult, probe_ids, self_retrieval
from retrievers.catalog import LIVE
from retrievers.collections import CollectionFamily, as_properties

log = logging.getLogger(__name__)
FLUSH_EVERY_ROWS = 1024  # what a kill -9 can cost a resumed run, at most (Lite keeps a WAL too)

Progress = Callable[[int, int], None]  # (chunks in the new collection, live chunks)


@dataclass
class ReindexReport:
    """What a run did; `switched` says whether the index now serves the new collection."""

    model: dict[str, Any]
    collection: str
    previous: str | None
    chunks: int = 0  # live chunks in the index
    already: int = 0  # rows the collection held when the run started (a resumed run)
    embedded: int = 0  # chunks embedded by this run
    removed: int = 0  # rows deleted from it (chunks deleted or replaced meanwhile)
    seconds: float = 0.0
    smoke: SmokeResult | None = None
    serving_smoke: SmokeResult | None = None
    switched: bool = False
    dropped: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"switched": self.switched, "model": self.model, "collection": self.collection,
                "previous": self.previous, "chunks": self.chunks, "already": self.already,
                "embedded": self.embedded, "removed": self.removed,
                "seconds": round(self.seconds, 2), "note": self.note, "dropped": self.dropped,
                "smoke": self.smoke.to_json() if self.smoke else None,
                "serving_smoke": self.serving_smoke.to_json() if self.serving_smoke else None}


class Reindexer:
    """Re-embeds an open index into a new collection and switches to it (module docstring).

    Parts passed in: the `index` (a `ChunkIndex` serving the old collection), the `settings`,
    `writes()` (held while catching up and switching: this process's ingests and deletes wait),
    `on_switch(store, embedder)` (the owner adopts the new parts), `serving_encode` (the old
    model's query embedding, for the comparison smoke run), `load(ref)` (name -> embedder)."""

    def __init__(self, index: Any, settings: Settings, *,
                 writes: Callable[[], AbstractContextManager[Any]],
                 on_switch: Callable[[Any, Any], None],
                 serving_encode: Callable[[str], Any] | None = None,
                 load: Callable[[str], Any] | None = None,
                 progress: Progress | None = None, say: Callable[[str], None] | None = None):
        self.index, self.settings = index, settings
        self.writes, self.on_switch = writes, on_switch
        self.serving_encode = serving_encode
        self.load = load or (lambda ref: embedder_for(ref, settings))
        self.progress = progress or (lambda done, total: None)
        self.say = say or log.info

    def run(self, model: str | None = None, rollback: bool = False) -> ReindexReport:
        started = time.perf_counter()
        s, catalog = self.settings, self.index.catalog
        served = catalog.get_meta(INDEX_SETTINGS_KEY)
        state = catalog.get_meta(REINDEX_KEY) or {}
        serving_name = collection_of(served, s)
        if rollback:
            previous = state.get("previous")
            if not previous:
                raise ConfigError(f"{s.index_dir}: there is no previous collection to roll back "
                                  "to (the index was never switched by `rag reindex`)")
            ref = ref_of(previous)
        elif not model:
            raise ConfigError("rag reindex needs --embedding-model NAME_OR_PATH, or --rollback")
        else:
            ref = loadable_ref(model)
        embedder = self.load(ref)
        record = model_record(embedder, ref)  # loads the model (its dimension)
        if record["embedding_fingerprint"] == served["embedding_fingerprint"]:
            return ReindexReport(record, serving_name, None, chunks=catalog.count(),
                                 seconds=time.perf_counter() - started,
                                 note=f"the index already serves {record['embedding_model']}")

        from retrievers.milvus_store import milvus_client

        client = milvus_client(s.milvus_target, s.milvus_token)
        try:
            family = CollectionFamily(client, s.collection)
            target, note = self._target(family, record, state, serving_name)
            catalog.set_meta(REINDEX_KEY, {**state, "building": {
                **record, "collection": target, "started_at": time.time()}})
            store = parts.default_dense_store(s, record["dimension"], collection=target,
                                              properties=as_properties(record))
            report = ReindexReport(record, target, serving_name, note=note)
            try:
                holds = from_properties(family.record(target))
                if holds and holds["embedding_fingerprint"] != record["embedding_fingerprint"]:
                    raise ConfigError(f"collection {target} holds vectors of "
                                      f"{holds['embedding_model']}, not {record['embedding_model']}")
                self._fill(store, embedder, report)
                with self.writes():
                    self._catch_up(store, embedder, report)
                    if self.serving_encode is not None:
                        report.serving_smoke = self._smoke(self.index.dense, self.serving_encode)
                    baseline = report.serving_smoke.rate if report.serving_smoke else None
                    report.smoke = self._smoke(store, embedder.encode_query, baseline)
                    if report.smoke.passed:
                        self._switch(family, store, embedder, record, served, serving_name)
                        report.switched = True
            finally:
                if not report.switched:
                    store.close()
            if report.switched:
                for name in family.members():
                    if name not in (target, serving_name):
                        family.drop(name)
                        report.dropped.append(name)
        finally:
            client.close()
        report.seconds = time.perf_counter() - started
        return report

    def _target(self, family: CollectionFamily, record: dict[str, Any], state: dict[str, Any],
                serving_name: str) -> tuple[str, str]:
        """The collection to fill: an unfinished one of the same model (resume), the previous
        one of the same model (rollback: only what changed since is embedded), or a new one."""
        members = family.members()
        building, previous = state.get("building"), state.get("previous")
        for candidate, why in ((building, "resuming an interrupted re-index"),
                               (previous, "reusing the previous collection")):
            if (candidate and candidate.get("embedding_fingerprint") == record["embedding_fingerprint"]
                    and candidate.get("collection") in members
                    and candidate.get("collection") != serving_name):
                return candidate["collection"], why
        keep = {serving_name, (previous or {}).get("collection")}
        if building and building.get("collection") in members and building["collection"] not in keep:
            self.say(f"dropping unfinished collection {building['collection']} "
                     f"({building.get('embedding_model')}): another model was asked for")
            family.drop(building["collection"])
        return family.next_name(), "new collection"

    def _fill(self, store: Any, embedder: Any, report: ReindexReport) -> None:
        """Embed every live chunk the collection lacks (all of them on a first run)."""
        catalog = self.index.catalog
        self._present = store.all_ids()
        report.already = len(self._present)
        live = catalog.ids_in_state(LIVE)
        report.chunks = len(live)
        self.say(f"re-indexing {len(live)} chunks into {store.collection} with "
                 f"{report.model['embedding_model']} ({report.model['dimension']}-d)"
                 + (f"; {report.note}: {report.already} already there" if report.already else ""))
        self._sync(store, embedder, live, report)

    def _catch_up(self, store: Any, embedder: Any, report: ReindexReport) -> None:
        """Chunks ingested or deleted while the collection was filled (writes are held now)."""
        self._sync(store, embedder, self.index.catalog.ids_in_state(LIVE), report)
        store.flush()

    def _sync(self, store: Any, embedder: Any, live: list[str], report: ReindexReport) -> None:
        live_set = set(live)
        extra = sorted(self._present - live_set)
        if extra:
            store.delete(extra)
            self._present.difference_update(extra)
            report.removed += len(extra)
        todo = [chunk_id for chunk_id in live if chunk_id not in self._present]
        total = len(live)
        self.progress(total - len(todo), total)
        batch, unflushed = max(1, self.settings.reindex_batch_chunks), 0
        for start in range(0, len(todo), batch):
            ids = todo[start:start + batch]
            found = self.index.catalog.chunks(ids)  # a chunk replaced meanwhile is gone: skip it
            chunks = [found[c] for c in ids if c in found]
            if chunks:
                store.upsert(chunks, embedder.encode(self.index.passage_texts(chunks)))
                self._present.update(c.chunk_id for c in chunks)
                report.embedded += len(chunks)
                unflushed += len(chunks)
            if unflushed >= FLUSH_EVERY_ROWS:
                store.flush()
                unflushed = 0
            self.progress(total - len(todo) + start + len(ids), total)
        if unflushed:
            store.flush()

    def _smoke(self, store: Any, encode_query: Callable[[str], Any],
               baseline: float | None = None) -> SmokeResult:
        s = self.settings
        catalog = self.index.catalog
        live = catalog.ids_in_state(LIVE)
        ids = probe_ids(live, s.reindex_smoke_probes)
        texts = {cid: chunk.text for cid, chunk in catalog.chunks(ids).items()}
        # The top 5 of a small index is most of it: there a probe must rank its chunk first.
        k = max(1, min(5, len(live) // 20))
        return self_retrieval(texts, encode_query, lambda vector, k: store.search(vector, k),
                              k=k, min_rate=s.reindex_smoke_min_rate, baseline=baseline,
                              max_drop=s.reindex_smoke_max_drop)

    def _switch(self, family: CollectionFamily, store: Any, embedder: Any,
                record: dict[str, Any], served: dict[str, Any], serving_name: str) -> None:
        """The alias first (the switch itself), then the catalog (one transaction), then this
        process's queries. A kill between the first two is completed at the next open."""
        catalog = self.index.catalog
        family.switch(store.collection)
        previous = {**{k: served.get(k) for k in MODEL_KEYS}, "embedding_ref": ref_of(served),
                    "collection": serving_name}
        with catalog.transaction():
            catalog.set_meta(INDEX_SETTINGS_KEY, {**served, **record, "collection": store.collection,
                                                  "switched_at": time.time()})
            catalog.set_meta(REINDEX_KEY, {"building": None, "previous": previous})
            # Parts of a large file staged by an interrupted ingest have their vectors in the
            # old collection: the file is embedded again when it is next ingested.
            catalog.forget_staging()
        old_store, _ = self.index.switch_dense(store, embedder)
        self.on_switch(store, embedder)
        old_store.close()
