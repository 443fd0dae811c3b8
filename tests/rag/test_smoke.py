"""The re-index smoke evaluation's probes: which chunks, which passage, and the verdict."""

import numpy as np

from rag.smoke import PROBE_WORDS, probe_ids, probe_text, self_retrieval


def test_probes_are_spread_over_the_ids_and_the_same_every_run():
    ids = [f"c{n:03d}" for n in range(100)]
    picked = probe_ids(list(reversed(ids)), 10)
    assert picked == [f"c{n:03d}" for n in range(0, 100, 10)]
    assert probe_ids(ids[:3], 10) == ids[:3]


def test_a_probe_is_a_passage_from_the_middle_not_the_whole_chunk():
    words = [f"w{n}" for n in range(200)]
    passage = probe_text(" ".join(words)).split()
    assert len(passage) == PROBE_WORDS
    assert passage[0] == "w84" and "w0" not in passage and "w199" not in passage
    assert probe_text("too short to cut") == "too short to cut"


def test_the_verdict_counts_chunks_found_by_their_own_passage():
    texts = {"a": "alpha " * 40, "b": "beta " * 40, "c": "gamma " * 40}
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.0, 1.0])}

    def encode(text: str) -> np.ndarray:
        return vectors[{"alpha": "a", "beta": "b", "gamma": "c"}[text.split()[0]]]

    def search(vector: np.ndarray, k: int):  # "b" and "c" share a vector: "c" is never first
        scored = sorted(vectors, key=lambda cid: (-float(vectors[cid] @ vector), cid))
        return [(cid, 1.0) for cid in scored[:k]]

    result = self_retrieval(texts, encode, search, k=1, min_rate=0.8)
    assert (result.probes, result.found, result.missed) == (3, 2, ["c"])
    assert not result.passed and result.to_json()["rate"] == 0.6667
    assert self_retrieval(texts, encode, search, k=2, min_rate=0.8).passed
