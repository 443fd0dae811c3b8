"""Ingestion on a Ray cluster: files are parsed, transcribed and embedded by Ray actors, and
this process (the driver) stays the one writer of the index.

Why this split: the incremental and crash-safety guarantees live in the write path
(`ChunkIndex.write_sources`: stage, upsert, publish in one catalog transaction) and in the
change detection against the catalog, so both stay in the driver, unchanged, and Ray only
computes. The pipeline (ingestion.pipeline) runs as usual with three parts swapped:
  - `RayPreparer` loads and chunks each file (the pure `FilePreparer` step) in a `Parser`
    actor, or in a `Transcriber` actor for recordings (each holds its own Whisper);
  - `RayEmbedder` splits each batch over the `Encoder` actors (each holds the embedding model);
  - `ThreadExecutor(readers=N)` keeps N files on the cluster at once (N driver threads wait).
Chunk ids depend only on the file (source id, content hash, position), so the same files and
settings give the same ids as an embedded run.

Ray Core actors rather than Ray Data: the pipeline already orders, batches and isolates
failures per file, and its results come back in file order; actors keep each model loaded
once per worker. Paths are read by the workers: on several machines the files must be on a
shared filesystem at the same path (README "scaling out").

A crashed worker (kill -9, out of memory) is restarted by Ray and the call in flight retried
(`max_restarts`, `max_task_retries`); a call that still fails fails its file with a one-line
reason that is not remembered, so the next run tries it again. Ray is imported only here,
and this module only when `engine = "ray"`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ingestion.executors import ThreadExecutor
from ingestion.loaders import AUDIO_EXTENSIONS
from ingestion.timelimits import call_with_deadline
from retrievers.records import Chunk

log = logging.getLogger(__name__)

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN_FILE = Path.home() / ".ray" / "auth_token"
# Each preparing actor's and each encoder's own environment: no model hub, no tokenizer threads.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
              "HF_HUB_DISABLE_TELEMETRY": "1"}


@dataclass
class RayConfig:
    """Where the cluster is and how many actors of each kind to start on it.

    `address` "" starts a private Ray inside this process (one machine; `object_store_mb`,
    `num_cpus` and `temp_dir` apply to it); "auto" or "host:port" joins a running cluster
    (`ray start --head`). `actor_cpus` is what each actor reserves from Ray's CPU count,
    small by default so a 2-core machine fits them all; `model_threads` sets torch's threads
    in the encoder and transcriber actors (0: all cores of their node).
    """

    address: str = ""
    parsers: int = 2
    transcribers: int = 1
    encoders: int = 1
    actor_cpus: float = 0.25
    model_threads: int = 0
    max_restarts: int = 3
    object_store_mb: int = 500
    num_cpus: int = 0  # local Ray only; 0: the machine's
    temp_dir: str = ""  # local Ray only; "": Ray's default (/tmp/ray)
    env: dict[str, str] = field(default_factory=dict)


class WorkerLost(RuntimeError):
    """The Ray worker that held a file's work died and Ray gave up on it (the file is not
    remembered as failed: the next run tries it again)."""


def ray_get(ref: Any) -> Any:
    """`ray.get`, with a remote error re-raised as itself (so `file_at_fault` and the
    one-line reason see the loader's error, not Ray's wrapper with its traceback)."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise WorkerLost(_first_line(exc)) from None
    except RayActorError as exc:
        raise WorkerLost(f"the Ray worker died ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _set_threads(threads: int) -> None:
    """torch's threads in a model actor (Ray sets OMP_NUM_THREADS=1 for fractional CPUs)."""
    import torch

    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))


class PrepareWorker:
    """A Ray actor's state: one `FilePreparer` (and, for recordings, its Whisper), kept
    loaded across files. `make_preparer(audio)` builds it on the worker."""

    def __init__(self, make_preparer: Callable[[bool], Any], audio: bool, timeout_s: float,
                 threads: int = 0):
        if audio:
            _set_threads(threads)
        self.preparer = make_preparer(audio)
        self.timeout_s = timeout_s

    def prepare(self, path: str, source_id: str, content_hash: str) -> list[Chunk]:
        return call_with_deadline(
            lambda deadline: self.preparer.prepare(Path(path), source_id, content_hash,
                                                   deadline=deadline), self.timeout_s)

    def pid(self) -> int:
        return os.getpid()


class EncodeWorker:
    """A Ray actor's state: one embedding model, kept loaded."""

    def __init__(self, make_embedder: Callable[[], Any], threads: int = 0):
        _set_threads(threads)
        self.embedder = make_embedder()

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)

    def pid(self) -> int:
        return os.getpid()


class _Pool:
    """Actors of one kind; each call goes to the one with the fewest calls in flight."""

    def __init__(self, actors: list[Any]):
        self.actors = actors
        self._busy = [0] * len(actors)
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            slot = min(range(len(self.actors)), key=self._busy.__getitem__)
            self._busy[slot] += 1
        try:
            return ray_get(getattr(self.actors[slot], method).remote(*args))
        finally:
            with self._lock:
                self._busy[slot] -= 1


class RayPreparer:
    """Shaped like `FilePreparer` for the pipeline: loads and chunks a file on the cluster.
    Progress callbacks, stage timings and the deadline stay on the worker (it applies
    `file_timeout_s`)."""

    def __init__(self, parsers: _Pool, transcribers: _Pool | None):
        self.parsers = parsers
        self.transcribers = transcribers

    def streams(self, path: Path) -> bool:
        return False  # a large text file is read whole by a worker (max_file_mb still applies)

    def prepare(self, path: Path, source_id: str, content_hash: str, transcription: Any = None,
                pages: Any = None, deadline: Any = None, timed: Any = None) -> list[Chunk]:
        audio = path.suffix.lower() in AUDIO_EXTENSIONS
        pool = self.transcribers if audio and self.transcribers is not None else self.parsers
        return pool.call("prepare", str(path.resolve()), source_id, content_hash)


class RayEmbedder:
    """Shaped like the embedder for the pipeline: a batch is split over the encoder actors,
    which embed their parts at once; the vectors come back in order."""

    def __init__(self, encoders: _Pool, min_part: int = 32):
        self.encoders = encoders
        self.min_part = min_part

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
        texts = list(texts)
        n_parts = max(1, min(len(self.encoders.actors), len(texts) // self.min_part))
        size = -(-len(texts) // n_parts) if texts else 0
        parts = [texts[i:i + size] for i in range(0, len(texts), size)] if texts else []
        if len(parts) <= 1:
            vectors = self.encoders.call("encode", texts)
        else:
            results: list[Any] = [None] * len(parts)
            errors: list[BaseException] = []

            def run(n: int) -> None:
                try:
                    results[n] = self.encoders.call("encode", parts[n])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(n,)) for n in range(len(parts))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            vectors = np.concatenate(results)
        if progress:
            progress(len(texts))
        return np.asarray(vectors, dtype=np.float32)


class RayEngine:
    """Connects to (or starts) Ray, starts the actors, and hands the pipeline its parts:
    `preparer`, `embedder` and `executor`. `with RayEngine(...) as engine:` spans a run; on
    leaving, the actors are killed and this process disconnects (a cluster started with
    `ray start` keeps running)."""

    def __init__(self, config: RayConfig, make_preparer: Callable[[bool], Any],
                 make_embedder: Callable[[], Any], file_timeout_s: float = 0.0):
        self.config = config
        self.make_preparer = make_preparer
        self.make_embedder = make_embedder
        self.file_timeout_s = file_timeout_s
        self._actors: list[Any] = []
        self._started_ray = False
        self.preparer: RayPreparer | None = None
        self.embedder: RayEmbedder | None = None

    @property
    def executor(self) -> ThreadExecutor:
        """Driver threads that each wait on one file on the cluster: one per preparing actor,
        so every actor has a file to work on (results are still consumed in file order)."""
        c = self.config
        return ThreadExecutor(readers=max(1, c.parsers) + max(0, c.transcribers))

    def __enter__(self) -> "RayEngine":
        c = self.config
        if c.address and AUTH_MODE not in os.environ and TOKEN_FILE.is_file():
            # `ray start` (2.60) turns on token authentication and keeps the token in
            # ~/.ray/auth_token; a driver given an explicit address only sends it when asked
            # (read when Ray is imported, hence before the import).
            os.environ[AUTH_MODE] = "token"
        import ray

        env = {**WORKER_ENV, **c.env}
        if not ray.is_initialized():
            options: dict[str, Any] = {"runtime_env": {"env_vars": env},
                                       "log_to_driver": False, "logging_level": logging.WARNING}
            if c.address:
                options["address"] = c.address
            else:
                options.update(include_dashboard=False,
                               object_store_memory=c.object_store_mb << 20)
                if c.num_cpus:
                    options["num_cpus"] = c.num_cpus
                if c.temp_dir:
                    options["_temp_dir"] = c.temp_dir
            ray.init(**options)
            self._started_ray = True
        try:
            self._start_actors(ray)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_actors(self, ray: Any) -> None:
        c = self.config
        # SPREAD: each node gets its share of the actors (and its own model copies) instead
        # of Ray packing small actors onto the first node until it is half full.
        common = {"num_cpus": c.actor_cpus, "max_restarts": c.max_restarts,
                  "max_task_retries": c.max_restarts, "scheduling_strategy": "SPREAD"}
        prepare_cls = ray.remote(PrepareWorker)
        encode_cls = ray.remote(EncodeWorker)
        parsers = [prepare_cls.options(**common).remote(
            self.make_preparer, False, self.file_timeout_s) for _ in range(max(1, c.parsers))]
        transcribers = [prepare_cls.options(**common).remote(
            self.make_preparer, True, self.file_timeout_s, c.model_threads)
            for _ in range(max(0, c.transcribers))]
        encoders = [encode_cls.options(**common).remote(self.make_embedder, c.model_threads)
                    for _ in range(max(1, c.encoders))]
        self._actors = parsers + transcribers + encoders
        # Wait until every actor is up, so a broken worker environment fails here, once.
        for actor in self._actors:
            ray_get(actor.pid.remote())
        self.preparer = RayPreparer(_Pool(parsers), _Pool(transcribers) if transcribers else None)
        self.embedder = RayEmbedder(_Pool(encoders))
        log.info("ray: %d parsers, %d transcribers, %d encoders on %s", len(parsers),
                 len(transcribers), len(encoders), c.address or "a local Ray")

    def __exit__(self, *exc_info: Any) -> None:
        import ray

        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                log.debug("could not kill a Ray actor", exc_info=True)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
