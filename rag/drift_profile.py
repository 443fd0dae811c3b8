"""The drift reference profile: what the corpus's embeddings looked like when it was ingested.

`rag drift` (eval/drift.py) compares new documents and recent queries with it. Kept at ingest
in the index directory as `drift_profile.npz` (numpy arrays only, read with
`allow_pickle=False`): a uniform reservoir sample (Vitter's algorithm R) of up to `size` chunk
embeddings with the source and position of each (so the drift test can hold out whole
passages, not single chunks), the running sum of all embeddings (their centroid) and how many
were seen, and the embedding model's fingerprint so a profile is never compared with another
model's vectors. Every embedded chunk counts once, including versions later replaced or
deleted: the profile describes what the index was built on, not what it holds today.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

PROFILE_FILE = "drift_profile.npz"


def source_key(source_id: str) -> int:
    """A source id as a number the profile can store (its first 15 hex digits)."""
    try:
        return int(source_id[:15], 16)
    except ValueError:
        return abs(hash(source_id)) % (1 << 60)


@dataclass
class DriftProfile:
    sample: np.ndarray  # (m, d) float32, m <= size
    sources: np.ndarray  # (m,) int64: `source_key` of each sampled chunk's source
    positions: np.ndarray  # (m,) int64: its position in the source
    total: np.ndarray  # (d,) float64: the sum of every vector seen
    seen: int
    size: int
    fingerprint: str

    @classmethod
    def empty(cls, size: int, fingerprint: str) -> "DriftProfile":
        return cls(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros(0), 0, size, fingerprint)

    @property
    def centroid(self) -> np.ndarray:
        return self.total / max(1, self.seen)

    def add(self, vectors: np.ndarray, sources: Sequence[int], positions: Sequence[int],
            rng: np.random.Generator) -> None:
        """Count `vectors` (n x d) in: each has the same chance of being in the sample."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(vectors):
            return
        if self.seen == 0 or self.sample.shape[1] != vectors.shape[1]:
            self.sample = np.zeros((0, vectors.shape[1]), np.float32)
            self.sources = np.zeros(0, np.int64)
            self.positions = np.zeros(0, np.int64)
            self.total = np.zeros(vectors.shape[1])
            self.seen = 0
        sources = np.asarray(sources, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        self.total = self.total + vectors.sum(axis=0, dtype=np.float64)
        room = min(len(vectors), max(0, self.size - len(self.sample)))
        if room:
            self.sample = np.concatenate([self.sample, vectors[:room]])
            self.sources = np.concatenate([self.sources, sources[:room]])
            self.positions = np.concatenate([self.positions, positions[:room]])
        for offset in range(room, len(vectors)):
            j = int(rng.integers(0, self.seen + offset + 1))
            if j < self.size:
                self.sample[j] = vectors[offset]
                self.sources[j] = sources[offset]
                self.positions[j] = positions[offset]
        self.seen += len(vectors)

    def save(self, directory: str | Path) -> Path:
        """Write atomically (a temporary file, then a rename)."""
        path = Path(directory) / PROFILE_FILE
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, sample=self.sample, sources=self.sources, positions=self.positions,
                 total=self.total, seen=np.int64(self.seen), size=np.int64(self.size),
                 fingerprint=np.str_(self.fingerprint))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "DriftProfile | None":
        """The profile in `directory`, or None when there is none."""
        path = Path(directory) / PROFILE_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["sample"].astype(np.float32), data["sources"].astype(np.int64),
                       data["positions"].astype(np.int64), data["total"].astype(np.float64),
                       int(data["seen"]), int(data["size"]), str(data["fingerprint"]))


class ProfileRecorder:
    """The ingestion pipeline's `on_embedded` observer: adds each embedded batch to a profile."""

    def __init__(self, profile: DriftProfile, seed: int = 0):
        self.profile = profile
        self.rng = np.random.default_rng(seed + profile.seen)

    def __call__(self, chunks: Sequence[Any], vectors: np.ndarray) -> None:
        self.profile.add(vectors, [source_key(c.source_id) for c in chunks],
                         [c.position for c in chunks], self.rng)
