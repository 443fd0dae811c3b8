"""The dense side: chunk vectors in Milvus through pymilvus `MilvusClient`.

A local path is Milvus Lite (embedded, one process owns the directory); an http(s) URI is a
Milvus server or cluster. Cosine HNSW by default; HNSW_SQ (8-bit codes, re-scored exactly by the
direct Lite path) for the embedded default, where the index lives in the querying process. Scalar fields carry what filters and
citations need, so a server deployment can answer without the local catalog.

With `full_text=True` (setting `sparse = "milvus"`) the text field gets an analyzer and Milvus's
built-in BM25 function fills a sparse vector field, so keyword search runs inside Milvus too
(`search_text`, `hybrid_search`): no per-process BM25 index is needed when many processes share
a server. Milvus's analyzer does not stem, so its BM25 ranks differ a little from rank-bm25's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from retrievers.errors import DenseStoreDamagedError, IndexLockedError, StoreConfigError, one_line
from retrievers.helper_thread import run_tasks
from retrievers.lite_search import LiteDirectSearch, build_missing_indexes, search_ef
from retrievers.lite_merges import DEFAULT_SEGMENT_ROWS, bound_merges
from retrievers.records import Chunk
from retrievers.text import STOP_WORDS

if TYPE_CHECKING:
    from retrievers.filters import Filters

log = logging.getLogger(__name__)
HNSW_FAMILY = {"HNSW", "HNSW_SQ"}  # vector indexes a collection may be created with

MAX_TEXT = 65535
ID_LENGTH = 64
SPARSE_FIELD = "sparse"
# Lowercase + the same English stop words as the rank-bm25 side (Milvus Lite ignores the
# "_english_" shorthand, and has no stemmer filter: MODELS.md).
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": sorted(STOP_WORDS)}]}


# pymilvus pings every 10 s, idle or not; Milvus Lite's server answers that with GOAWAY
# "too_many_pings". pymilvus keeps one connection per URI for the whole process, so a client
# opened on the same index a minute after the last one closed got the dead connection and
# failed ("Fail connecting to server"; reproduced with pymilvus 2.6.17 and milvus-lite 3.2.2,
# cf. milvus-lite issue #334). No pings while idle, and none more often than Lite accepts.
LITE_GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False,
                     "grpc.keepalive_time_ms": 300_000}


def damaged_lite_data(uri: str, exc: BaseException) -> DenseStoreDamagedError:
    """The one-line error for Milvus Lite files that cannot be read (a truncated segment or
    index file, a schema that is not JSON): the vectors can be rebuilt from the catalog."""
    reason = one_line(exc, 240)
    return DenseStoreDamagedError(
        f"{uri}: the Milvus Lite data is damaged ({reason}); rebuild the vectors from the "
        f"catalog: `rag stats --check --repair --index {Path(uri).parent}`")


def quarantine_lite_data(uri: str) -> Path:
    """Move a damaged Milvus Lite directory aside (kept for inspection, never deleted) so a
    fresh one can be built in its place; returns where it went."""
    import time

    try:  # this process's Lite server still holds the old files open: stop it first
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)
    except ImportError:
        pass
    source = Path(uri)
    target = source.with_name(f"{source.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    source.rename(target)
    return target


def is_lite(uri: str) -> bool:
    """Whether `uri` is a Milvus Lite directory (a local path) rather than a server."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def milvus_client(uri: str, token: str = ""):
    """A `MilvusClient`, with Milvus Lite's single-owner lock turned into a clear message."""
    from pymilvus import MilvusClient

    options: dict[str, Any] = {"token": token} if token else {}
    if is_lite(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        options["grpc_options"] = LITE_GRPC_OPTIONS
    try:
        return MilvusClient(uri=uri, **options)
    except Exception as exc:  # pymilvus logs Milvus Lite's DataDirLockedError and raises a vague one
        text = f"{type(exc).__name__}: {exc}"
        if is_lite(uri) and _open_here(uri):  # our own Lite server holds the lock: not "another process"
            raise StoreConfigError(f"{uri}: this process's Milvus Lite server did not answer "
                                   f"({' '.join(text.split())[:200]}); open the index again") from exc
        if "lock" in text.lower() or _locked_elsewhere(uri):
            raise IndexLockedError(
                f"{uri}: the Milvus Lite index is open in another process{_holder(uri)}. Close "
                "it, or share it: run `milvus-lite server --data-dir "
                f"{uri} --host 127.0.0.1 --port 19530` and set milvus_uri=http://127.0.0.1:19530"
            ) from exc
        raise


def _locked_elsewhere(uri: str) -> bool:
    """Whether another process holds Milvus Lite's advisory lock (`<dir>/LOCK`, flock)."""
    lock = Path(uri) / "LOCK"
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: no flock; fall back to the error text
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_here(uri: str) -> bool:
    """Whether this process has files of the Milvus Lite directory open (Linux /proc)."""
    target = os.path.realpath(uri)
    try:
        return any(os.readlink(fd).startswith(target) for fd in Path("/proc/self/fd").iterdir())
    except OSError:
        return False


def _holder(uri: str) -> str:
    """Which process holds a Milvus Lite directory, when /proc can tell."""
    target = os.path.realpath(uri)
    proc = Path("/proc")
    if not proc.is_dir():
        return ""
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                if os.readlink(fd).startswith(target):
                    cmd = " ".join((pid_dir / "cmdline").read_bytes().decode(errors="replace")
                                   .replace("\0", " ").split())
                    return f" (pid {pid_dir.name}: {cmd[:120]})"
        except OSError:
            continue
    return ""


class MilvusDenseStore:
    """Upsert, delete and search chunk vectors in one Milvus collection."""

    def __init__(self, uri: str, collection: str, dim: int, token: str = "", index: str = "HNSW",
                 full_text: bool = False, properties: Mapping[str, str] | None = None,
                 lite_segment_rows: int = DEFAULT_SEGMENT_ROWS):
        """`properties` are written on the collection when this creates it (an index records
        its embedding model there, so the collection says which model made its vectors).
        `index` is the vector index a collection this creates gets (HNSW or HNSW_SQ); an
        existing collection keeps the one it was built with. `lite_segment_rows` bounds embedded
        Milvus Lite's merges (`retrievers.lite_merges`; process-wide, 0 = Lite's own)."""
        if index not in HNSW_FAMILY:
            raise StoreConfigError(f"dense index {index!r}: expected one of {sorted(HNSW_FAMILY)}")
        self.uri, self.collection, self.dim, self.index_type = uri, collection, dim, index
        self.full_text = full_text
        self._new_properties = {str(k): str(v) for k, v in (properties or {}).items()}
        if is_lite(uri):
            bound_merges(lite_segment_rows)
        self.client = milvus_client(uri, token)
        self._direct: LiteDirectSearch | None = None
        self._released = False  # vector indexes let go while a large file is written
        self._load_lock = threading.Lock()
        # A flush swaps in an empty memtable before it takes Lite's own lock to add the segment,
        # and a search reading both in that gap missed the rows in flight (Lite's own search
        # too: a test found rows written before a query missing in 2 runs of 11). Held by the
        # direct search while it reads the memtable and segments, by a flush while it hands the
        # search its readings (`LiteDirectSearch.flushing`), and by a write that may flush by
        # itself (an upsert or delete near Lite's byte limits), throughout.
        self._writing = threading.Lock()
        # Held for a whole flush (and a write that may flush by itself): Lite's own search reads
        # the memtable and segments itself, so a search the direct path hands back to it waits
        # for a flush to end.
        self._flushing = threading.Lock()
        try:
            self._ensure_collection()
        except (StoreConfigError, IndexLockedError):
            self.client.close()
            raise
        except Exception as exc:  # pymilvus raises MilvusException for unreadable Lite files
            self.client.close()
            if not is_lite(uri):
                raise
            raise damaged_lite_data(uri, exc) from exc
        # Embedded Lite: searches, filtered or not, skip Lite's per-call scan of every row.
        if is_lite(uri) and self.index_type in HNSW_FAMILY:
            self._direct = LiteDirectSearch(uri, collection, consistent=self._writing)

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        if self.client.has_collection(self.collection):
            described = self.client.describe_collection(self.collection)
            names = {f.get("name") for f in described.get("fields", [])}
            if self.full_text and SPARSE_FIELD not in names:
                raise StoreConfigError(
                    f"{self.uri}: collection {self.collection} was built without Milvus BM25 "
                    "(sparse = \"rank-bm25\"); use sparse = \"rank-bm25\", or index into a new "
                    "collection with sparse = \"milvus\""
                )
            for f in described.get("fields", []):
                if f.get("name") == "vector":
                    dim = int(f.get("params", {}).get("dim", self.dim))
                    if dim != self.dim:
                        raise StoreConfigError(
                            f"{self.uri}: collection {self.collection} holds {dim}-d vectors, "
                            f"the embedding model gives {self.dim}-d; use another collection"
                        )
            self._stores_text = "text" in names
            self.index_type = self._built_index() or self.index_type
            self.client.load_collection(self.collection)
            return
        # The chunk text goes into Milvus only for its own BM25: with rank-bm25 the catalog
        # holds it, and a copy in Milvus Lite cost ~4 KB of memory a chunk (80k 1 KB chunks:
        # 1,159 MB with the text, 842 MB without). Collections made before keep their text.
        self._stores_text = self.full_text
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        schema.add_field("file_type", DataType.VARCHAR, max_length=32)
        schema.add_field("page", DataType.INT64)
        schema.add_field("start", DataType.DOUBLE)
        schema.add_field("end", DataType.DOUBLE)
        schema.add_field("ingested_at", DataType.DOUBLE)
        params = self.client.prepare_index_params()
        if self.full_text:
            from pymilvus import Function, FunctionType

            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(
                name="text_bm25", function_type=FunctionType.BM25,
                input_field_names=["text"], output_field_names=[SPARSE_FIELD],
            ))
            params.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        params.add_index("vector", index_type=self.index_type, metric_type="COSINE",
                         params={"M": 16, "efConstruction": 200})
        self.client.create_collection(self.collection, schema=schema, index_params=params,
                                      properties=self._new_properties or None)
        self.client.load_collection(self.collection)

    def _built_index(self) -> str:
        """The vector index type an existing collection was built with ("" if unknown)."""
        try:
            return str(self.client.describe_index(self.collection, "vector").get("index_type") or "")
        except Exception:  # no index on the field (yet), or a server without describe
            return ""

    def properties(self) -> dict[str, str]:
        """The collection's properties (key-value text Milvus keeps with its schema)."""
        described = self.client.describe_collection(self.collection)
        return {str(k): str(v) for k, v in (described.get("properties") or {}).items()}

    def set_properties(self, properties: Mapping[str, str]) -> None:
        """Add or replace collection properties (e.g. the model record of an index built
        before collections carried one)."""
        self.client.alter_collection_properties(
            self.collection, properties={str(k): str(v) for k, v in properties.items()})

    def defer_vector_index(self) -> bool:
        """Embedded Milvus Lite: stop holding (and building) the per-segment vector indexes
        until something reads the store again; whether it did.

        Why: while a large file is written nothing searches, yet Lite keeps an HNSW graph and
        8-bit codes per segment in memory (~0.5 KB a chunk) and builds them again each time it
        merges segments. Released, Lite keeps writing and merging; `write_index_files` (at the
        end of the file, and on close) writes the index files of the final segments, so the
        first read (`_loaded`) only reads them, and so does the next open. A Milvus server is
        never released: other clients search it."""
        if not is_lite(self.uri) or self.index_type not in HNSW_FAMILY:
            return False
        with self._load_lock:
            if not self._released:
                self.client.release_collection(self.collection)
                self._released = True
        return True

    def _loaded(self) -> None:
        """Load the collection again if `defer_vector_index` let it go (reads need it)."""
        if self._released:
            with self._load_lock:
                if self._released:
                    self.client.load_collection(self.collection)
                    self._released = False

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray, batch: int = 512) -> None:
        for start in range(0, len(chunks), batch):
            rows = [_row(c, v, self._stores_text)
                    for c, v in zip(chunks[start : start + batch], vectors[start : start + batch])]
            with self._writes_that_may_flush():
                self.client.upsert(self.collection, rows)

    def delete(self, chunk_ids: Iterable[str], batch: int = 512) -> None:
        ids = list(chunk_ids)
        for start in range(0, len(ids), batch):
            with self._writes_that_may_flush():
                self.client.delete(self.collection, ids=ids[start : start + batch])

    def _writes_that_may_flush(self) -> Any:
        """The locks for a write, where it may make embedded Lite flush by itself."""
        if self._direct is None or self._direct.flush_may_follow():
            stack = contextlib.ExitStack()
            stack.enter_context(self._flushing)
            stack.enter_context(self._writing)
            return stack
        return contextlib.nullcontext()

    def flush(self) -> None:
        if self._direct is not None:
            self._direct.wait_for_merge()  # before the lock: queries answer while a merge runs
        with self._flushing:
            if self._direct is None:
                with self._writing:
                    self.client.flush(self.collection)
                return
            with self._direct.flushing():  # searches meanwhile read what it is writing
                self.client.flush(self.collection)

    def write_index_files(self) -> None:
        """A collection released while writing (`defer_vector_index`): flush, and write the
        index file of each segment that lacks one, one segment at a time and none kept, so that
        loading it later (the next search here, or the next open) only reads them. Why not at
        every flush: Lite merges young segments (4k -> 16k -> 64k rows), and each merge would
        need its index built again."""
        with self._load_lock:  # a search meanwhile waits, rather than load what is half built
            if not self._released:
                return
            self.flush()
            try:
                if build_missing_indexes(self.uri, self.collection):
                    return
            except Exception as exc:  # the data is flushed: loading builds what is missing
                log.warning("%s: could not write the vector index files (%s); loading the "
                            "collection instead", self.uri, one_line(exc))
            # A Lite this does not know: its own load builds (and keeps) them.
            self.client.load_collection(self.collection)
            self._released = False

    def search(
        self, vector: np.ndarray, k: int, filters: "Filters | None" = None, ef: int = 64
    ) -> list[tuple[str, float]]:
        """Top-k (id, cosine similarity) among rows matching `filters`."""
        self._loaded()
        if self._direct is not None:
            hits = self._direct.search(vector, k, ef, _expr(filters))
            if hits is not None:
                return hits

        def through_milvus() -> list[tuple[str, float]]:
            with self._flushing if is_lite(self.uri) else contextlib.nullcontext():
                result = self.client.search(
                    self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()],
                    limit=k, filter=_expr(filters), search_params=self._dense_params(k, ef),
                    output_fields=[], anns_field="vector",
                )
            return [(hit["id"], float(hit["distance"])) for hit in result[0]]
        # On the query helper thread while a hybrid query's BM25 runs here, if it is free
        # (`helper_thread.meanwhile`): a server's round trip or Lite's own search overlaps it.
        return run_tasks([through_milvus])[0]

    def _dense_params(self, k: int, ef: int = 64) -> dict[str, Any]:
        params: dict[str, Any] = {"metric_type": "COSINE"}
        if self.index_type in HNSW_FAMILY:
            params["params"] = {"ef": search_ef(k, ef)}
        return params

    def search_text(self, query: str, k: int, filters: "Filters | None" = None
                    ) -> list[tuple[str, float]]:
        """Top-k (id, score) by Milvus's built-in BM25 (needs `full_text=True`). Milvus Lite
        reports BM25 as negative distances; they are negated so that higher is better."""
        self._need_full_text()
        self._loaded()
        result = self.client.search(
            self.collection, data=[query], limit=k, filter=_expr(filters), anns_field=SPARSE_FIELD,
            search_params={"metric_type": "BM25"}, output_fields=[],
        )
        return [(hit["id"], abs(float(hit["distance"]))) for hit in result[0]]

    def hybrid_search(self, vector: np.ndarray, query: str, k: int,
                      filters: "Filters | None" = None, rrf_k: int = 60) -> list[tuple[str, float]]:
        """Dense + BM25 fused by Milvus's RRFRanker in one call (server-side fusion)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        self._need_full_text()
        self._loaded()
        filter_expr = _expr(filters)
        requests = [
            AnnSearchRequest(data=[np.asarray(vector, dtype=np.float32).tolist()],
                             anns_field="vector", param=self._dense_params(k), limit=k,
                             expr=filter_expr or None),
            AnnSearchRequest(data=[query], anns_field=SPARSE_FIELD, param={"metric_type": "BM25"},
                             limit=k, expr=filter_expr or None),
        ]
        result = self.client.hybrid_search(self.collection, requests, ranker=RRFRanker(rrf_k),
                                           limit=k, output_fields=[])
        return [(hit["id"], float(hit["distance"])) for hit in result[0]]

    def _need_full_text(self) -> None:
        if not self.full_text:
            raise StoreConfigError(f"{self.uri}: Milvus BM25 needs the store opened with sparse = \"milvus\"")

    def all_ids(self) -> set[str]:
        """Every id in the collection (a full scan: used by checks and repair, not queries).

        In batches of 16,384 ids, Milvus's largest: Milvus Lite 3.2.2 walks every row of the
        collection for each batch, so with batches of 1,000 the resumed open of 200k staged
        rows spent ~2 of its ~3 minutes here."""
        self._loaded()
        ids: set[str] = set()
        iterator = self.client.query_iterator(self.collection, batch_size=16_384, filter="",
                                              output_fields=["id"])
        try:
            while rows := iterator.next():
                ids.update(r["id"] for r in rows)
        finally:
            iterator.close()
        return ids

    def count(self) -> int:
        self._loaded()
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def vectors(self, chunk_ids: Sequence[str], batch: int = 512) -> np.ndarray:
        """The stored vectors of `chunk_ids`, row-aligned (a renamed file keeps its vectors,
        `ChunkIndex.move_source`); KeyError naming an id that is not stored."""
        self._loaded()
        found: dict[str, list[float]] = {}
        ids = list(chunk_ids)
        for start in range(0, len(ids), batch):
            for row in self.client.get(self.collection, ids=ids[start:start + batch],
                                       output_fields=["vector"]):
                found[row["id"]] = row["vector"]
        missing = [c for c in ids if c not in found]
        if missing:
            raise KeyError(f"{len(missing)} vectors not stored, e.g. {missing[0]}")
        return np.asarray([found[c] for c in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def close(self) -> None:
        """Close the client; a collection released while writing first gets its index files
        (else the next open would build them)."""
        try:
            self.write_index_files()
        finally:
            self.client.close()


def _expr(filters: "Filters | None") -> str:
    return filters.milvus_expr() if filters is not None and not filters.empty else ""


def _row(chunk: Chunk, vector: np.ndarray, with_text: bool) -> dict[str, Any]:
    row = {
        "id": chunk.chunk_id,
        "vector": vector.tolist(),
        "source": chunk.source[:4096],
        "file_type": chunk.file_type[:32],
        "page": -1 if chunk.page is None else int(chunk.page),
        "start": -1.0 if chunk.start is None else float(chunk.start),
        "end": -1.0 if chunk.end is None else float(chunk.end),
        "ingested_at": float(chunk.ingested_at),
    }
    if with_text:
        row["text"] = _clip_utf8(chunk.text, MAX_TEXT)
    return row


def _clip_utf8(text: str, limit: int) -> str:
    """Milvus counts VARCHAR length in bytes."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")
