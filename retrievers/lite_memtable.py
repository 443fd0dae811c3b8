"""What Milvus Lite's memtable holds (its unflushed rows), read as arrays for a search.

Why this exists: Lite's own `to_search_arrays` turns each unflushed vector into a Python list
(~100 ms for 4,096 rows of 384 floats), under the memtable's lock; the direct search
(`retrievers/lite_search.py`) reads the rows here instead, once per search, and combines the
rows of a flush in flight with those written after it by Lite's own visibility rule. It reads
Lite's memtable internals, pinned like `lite_search` (SUPPORTED_VERSIONS there).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class UnflushedRows:
    """What Milvus Lite's memtable holds, read once under its own lock: the newest unflushed
    version of each id (ids, sequence numbers, vectors as one float32 array) and the unflushed
    deletes (id -> sequence number). `origin`: where each row's scalar columns are (parts of
    (memtable batches, row numbers across them), in row order), read only by a filter."""

    def __init__(self, pks: list[Any], seqs: np.ndarray, vectors: np.ndarray,
                 deletes: dict[Any, int], origin: list[tuple[tuple[Any, ...], np.ndarray]] | None = None):
        self.pks, self.seqs, self.vectors, self.deletes = pks, seqs, vectors, deletes
        self.newest = dict(zip(pks, seqs.tolist()))
        self.origin = origin if origin is not None else []

    def filter_mask(self, evaluate: Any) -> np.ndarray:
        """Which rows pass a filter: `evaluate` maps a table of rows to a boolean array."""
        import pyarrow as pa

        masks = []
        for batches, rows in self.origin:
            if not len(rows):
                continue
            table = pa.Table.from_batches(batches).take(pa.array(rows, type=pa.int64()))
            if "_partition" in table.column_names:  # a WAL-only column, as Lite drops it
                table = table.drop(["_partition"])
            masks.append(np.asarray(evaluate(table), dtype=bool))
        mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
        if len(mask) != len(self.pks):
            raise LookupError("unflushed rows without their scalar columns")
        return mask

    @staticmethod
    def combined(older: "UnflushedRows", newer: "UnflushedRows") -> "UnflushedRows":
        """The rows of a memtable being flushed and of the one written after it, by Lite's
        rule: for each id the newest insert, unless a newer delete hides it."""
        keep = [i for i, pk in enumerate(older.pks)
                if pk not in newer.newest and not newer.hides(pk, int(older.seqs[i]))]
        if not len(newer.pks):
            vectors = older.vectors[keep]
        elif not keep:
            vectors = newer.vectors
        else:
            vectors = np.concatenate([older.vectors[keep], newer.vectors])
        deletes = dict(older.deletes)
        for pk, seq in newer.deletes.items():
            deletes[pk] = max(seq, deletes.get(pk, seq))
        origin, start, kept = [], 0, np.asarray(keep, dtype=np.int64)
        for batches, rows in older.origin:  # the kept rows of each of older's parts
            inside = kept[(kept >= start) & (kept < start + len(rows))] - start
            origin.append((batches, rows[inside]))
            start += len(rows)
        return UnflushedRows([older.pks[i] for i in keep] + list(newer.pks),
                             np.concatenate([older.seqs[keep], newer.seqs]).astype(np.uint64),
                             vectors, deletes, origin + list(newer.origin))

    def hides(self, pk: Any, seq: int) -> bool:
        """Whether an unflushed insert or delete of `pk` is newer than version `seq`."""
        newer = self.newest.get(pk)
        if newer is not None and newer > seq:
            return True
        deleted = self.deletes.get(pk)
        return deleted is not None and deleted > seq


def unflushed_rows(memtable: Any, vector_field: str) -> UnflushedRows | None:
    """The memtable's live rows and deletes (None when a row has no vector: Lite then answers).

    Lite's own `to_search_arrays` turns each vector into a Python list (~100 ms for 4,096 rows
    of 384 floats); here the vectors are sliced out of its Arrow batches as arrays."""
    with memtable._lock:  # the writer appends under this lock: one consistent reading
        batches = tuple(memtable._insert_batches)
        rows = list(memtable._pk_index.items())
        deletes = {pk: int(entry[0]) for pk, entry in memtable._delete_index.items()}
    if not rows:
        return UnflushedRows([], np.zeros(0, dtype=np.uint64), np.zeros((0, 0), np.float32),
                             deletes)
    where = np.array([(position[0], position[1]) for _, position in rows], dtype=np.int64)
    used = np.unique(where[:, 0])
    arrays, offset, start = [], np.zeros(len(batches), dtype=np.int64), 0
    for index in used.tolist():
        column = batches[index].column(vector_field)
        if column.null_count:
            return None
        flat = column.flatten().to_numpy(zero_copy_only=False)
        arrays.append(flat.reshape(len(column), -1).astype(np.float32, copy=False))
        offset[index] = start
        start += len(column)
    vectors = np.concatenate(arrays)[offset[where[:, 0]] + where[:, 1]]
    seqs = np.array([position[2] for _, position in rows], dtype=np.uint64)
    starts = np.concatenate([[0], np.cumsum([batch.num_rows for batch in batches])]).astype(np.int64)
    origin = [(batches, starts[where[:, 0]] + where[:, 1])]
    return UnflushedRows([pk for pk, _ in rows], seqs, vectors, deletes, origin)
