"""The incremental BM25 index must score exactly like rank-bm25's BM25Okapi."""

from collections import Counter
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi

from retrievers.bm25 import BM25Index
from retrievers.text import tokenize

SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample"


def paragraphs() -> list[str]:
    texts = []
    for path in sorted(SAMPLE.glob("*.*")):
        if path.suffix in {".md", ".txt"}:
            texts += [p for p in path.read_text().split("\n\n") if p.strip()]
    return texts


QUERIES = ["green tea water temperature", "warranty lightning", "ask not what your country",
           "the the of", "steeping oolong leaves infusions", "nothing matches zebra"]


def assert_same_as_okapi(index: BM25Index, docs: dict[str, str]):
    ids = list(docs)
    okapi = BM25Okapi([tokenize(docs[i]) for i in ids])
    for query in QUERIES:
        tokens = tokenize(query)
        expected = okapi.get_scores(tokens)
        got = index.scores(tokens)
        dense = np.array([got.get(i, 0.0) for i in ids])
        np.testing.assert_allclose(dense, expected, rtol=1e-9, atol=1e-12)
        top = index.top_k(tokens, 3)
        want = sorted(
            [(i, s) for i, s in zip(ids, expected) if i in got], key=lambda x: (-x[1], x[0])
        )[:3]
        assert [i for i, _ in top] == [i for i, _ in want]


def test_scores_equal_bm25okapi():
    docs = {f"c{n}": text for n, text in enumerate(paragraphs())}
    assert len(docs) > 10
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add_tokens(chunk_id, tokenize(text))
    assert_same_as_okapi(index, docs)


def test_scores_stay_equal_after_removals_and_readds():
    docs = {f"c{n}": text for n, text in enumerate(paragraphs())}
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add(chunk_id, dict(Counter(tokenize(text))))
    removed = list(docs)[::3]
    index.remove(removed)
    for chunk_id in removed:
        del docs[chunk_id]
    assert_same_as_okapi(index, docs)
    docs["new"] = "Green tea and black tea need different water temperatures."
    index.add_tokens("new", tokenize(docs["new"]))
    assert_same_as_okapi(index, docs)
    assert len(index) == len(docs)


def test_tokenizer_stems_and_drops_stop_words():
    assert tokenize("The Steeping of TEAS, steeped!") == ["steep", "tea", "steep"]
    assert tokenize("don't") == []


def test_an_acronym_plural_is_the_acronym():
    # Snowball leaves words without a vowel, and "-us" endings, unstemmed: "VCs" stayed "vcs"
    assert tokenize("VCs LLMs GPUs CNN-based RTX3090s") == tokenize("VC LLM GPU CNNs-based RTX3090")
    assert tokenize("VCs LLMs GPUs") == ["vc", "llm", "gpu"]
    # one capital, an uppercase S, or a word that is not an acronym: as before
    assert tokenize("Ms Smith, BUS, TEAS, PhDs") == ["ms", "smith", "bus", "tea", "phds"]


def test_a_latin_letters_accents_are_dropped_and_other_scripts_kept():
    # MuSiQue questions typed "Aschenbrodel", "Akinoshu", "Tekeze"; the paragraphs accent them
    assert tokenize("Aschenbrödel by Akinoshū on the Tekezé") == tokenize("Aschenbrodel by Akinoshu on the Tekeze")
    assert tokenize("naïve café ﬁnance Łódź") == ["naiv", "cafe", "financ", "łodz"]
    assert tokenize("Москва й がっこう 한국 Ελλάδα") == ["москва", "й", "がっこう", "한국", "ελλάδα"]


def test_empty_index_returns_nothing():
    assert BM25Index().top_k(["tea"], 5) == []


def test_scores_stay_equal_through_compaction_and_a_snapshot():
    """Compaction renumbers slots and moves each one's term ids in the flat buffer; a later
    removal must still take back exactly that chunk's document frequencies."""
    docs = {f"c{n}": text for n, text in enumerate(paragraphs())}
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add_tokens(chunk_id, tokenize(text))
    for chunk_id in list(docs)[1::2]:
        index.remove([chunk_id])
        del docs[chunk_id]
    index.compact()
    assert_same_as_okapi(index, docs)
    for chunk_id in list(docs)[::3]:  # slots renumbered by the compaction
        index.remove([chunk_id])
        del docs[chunk_id]
    assert_same_as_okapi(index, docs)
    restored = BM25Index.from_arrays(index.to_arrays())
    gone = list(docs)[0]
    restored.remove([gone])
    del docs[gone]
    restored.add_tokens("new", tokenize("Oolong leaves take several infusions of green tea."))
    docs["new"] = "Oolong leaves take several infusions of green tea."
    assert_same_as_okapi(restored, docs)


def test_counts_over_a_byte_score_like_okapi_through_compaction_and_a_snapshot():
    """Counts are kept in one byte until a term's count passes 255: a chunk repeating a word
    300 (and 70,000) times must score exactly as rank-bm25 scores it, before and after a
    compaction and a snapshot round trip."""
    docs = {f"c{n}": text for n, text in enumerate(paragraphs())}
    docs["loud"] = "tea " * 300 + "water temperature"
    docs["louder"] = "green " * 70_000 + "lightning"
    docs["quiet"] = "tea water green"
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add_tokens(chunk_id, tokenize(text))
    assert index.scores(tokenize("tea"))["loud"] > index.scores(tokenize("tea"))["quiet"]
    assert_same_as_okapi(index, docs)
    for chunk_id in list(docs)[:8:2]:
        index.remove([chunk_id])
        del docs[chunk_id]
    index.compact()
    assert_same_as_okapi(index, docs)
    restored = BM25Index.from_arrays(index.to_arrays())
    assert_same_as_okapi(restored, docs)
    restored.add_tokens("again", tokenize("oolong " * 256))
    docs["again"] = "oolong " * 256
    assert_same_as_okapi(restored, docs)


def test_removals_stay_exact_past_65535_terms_and_from_a_format_1_snapshot():
    """Each chunk's term ids are kept as 16-bit gaps (a larger gap as three words): removing a
    chunk whose ids lie 70,000 apart must take back exactly its document frequencies, and so
    must an index read from a snapshot of the older layout (plain int32 term ids per chunk)."""
    from retrievers.bm25 import _decode_terms

    docs = {f"v{n:04d}": " ".join(f"q{n}z{j}" for j in range(30)) for n in range(2400)}
    docs.update({f"mix{n}": f"tea water q0z{n} q2399z{n} lightning" for n in range(12)})
    docs.update({f"c{n}": text for n, text in enumerate(paragraphs())})
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add_tokens(chunk_id, tokenize(text))
    assert len(index._terms) > 70_000
    for gone in ["mix0", "mix3", "v0000", "v2399", "c2"]:
        index.remove([gone])
        del docs[gone]
    assert_same_as_okapi(index, docs)

    arrays = index.to_arrays()  # the format-1 layout: each slot's term ids as int32
    words, starts = arrays["doc_terms"], arrays["doc_offsets"]
    per_slot = [_decode_terms(words[a:z]) for a, z in zip(starts[:-1], starts[1:])]
    arrays["doc_terms"] = np.array([t for ids in per_slot for t in ids], dtype=np.int32)
    arrays["doc_offsets"] = np.concatenate(([0], np.cumsum([len(ids) for ids in per_slot])))
    restored = BM25Index.from_arrays(arrays)
    for gone in ["mix5", "v1200", "c4"]:
        restored.remove([gone])
        del docs[gone]
    assert_same_as_okapi(restored, docs)


def test_top_k_ranks_every_chunk_when_common_terms_touch_most_chunks():
    """Large enough for `top_k` to rank only the chunks at or above the k-th score of the rare
    terms' holders (`_kth_floor`): its answer must be that of ranking every scored chunk (the
    order to the last bit, the ties among copied chunks broken by id, removed and filtered-out
    chunks left out), and its scores Okapi's."""
    from retrievers.bm25 import FLOOR_POOL, Facets
    from retrievers.filters import Filters

    rng = np.random.default_rng(7)
    vocabulary = [f"w{n}" for n in range(400)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)  # Zipf: a few terms in most chunks
    weights /= weights.sum()
    texts = [" ".join(rng.choice(vocabulary, size=rng.integers(5, 60), p=weights))
             for _ in range(1500)]
    texts += texts[:300]  # identical copies: ties at every rank, broken by id
    docs = {f"c{n:05d}": text for n, text in enumerate(texts)}
    index = BM25Index()
    for n, (chunk_id, text) in enumerate(docs.items()):
        index.add_tokens(chunk_id, tokenize(text), Facets(source=f"/d/{n % 3}.txt"))
    gone = list(docs)[5::7]
    index.remove(gone)
    for chunk_id in gone:
        del docs[chunk_id]
    okapi_scores = BM25Okapi([tokenize(t) for t in docs.values()])
    for q in range(60):
        query = list(rng.choice(vocabulary[:3], size=2)) + list(rng.choice(vocabulary, size=4))
        every = index.scores(query)  # each scored chunk, no cut
        expected = dict(zip(docs, okapi_scores.get_scores(query)))
        for k, only in ((10, None), (50, None), (10, Filters(sources=("/d/1.txt",)))):
            want = sorted(((i, s) for i, s in every.items()
                           if only is None or int(i[1:]) % 3 == 1),
                          key=lambda x: (-x[1], x[0]))[:k]
            got = index.top_k(query, k, filters=only)
            assert got == want, (query, k, only)
            np.testing.assert_allclose([s for _, s in got], [expected[i] for i, _ in got],
                                       rtol=1e-9)
    assert len(index) > FLOOR_POOL * 50  # the floor took part


def test_scores_kept_between_queries_are_the_fresh_scores_to_the_bit_until_the_index_changes():
    """`_term_scores` keeps each queried term's posting scores: a second query reuses them and
    must rank exactly as an index that never kept any; an added chunk must change them."""
    from retrievers.bm25 import TERM_SCORES_KEPT

    docs = {f"p{n:03d}": text for n, text in enumerate(paragraphs())}
    index = BM25Index()
    for chunk_id, text in docs.items():
        index.add_tokens(chunk_id, tokenize(text))
    for query in QUERIES:  # fills the kept scores
        index.top_k(tokenize(query), 5)
    assert index._kept_scores and index._kept_postings <= TERM_SCORES_KEPT
    fresh = BM25Index.from_arrays(index.to_arrays())
    for query in QUERIES:
        assert index.top_k(tokenize(query), 5) == fresh.top_k(tokenize(query), 5)
    tokens = tokenize("green tea water temperature")
    before = index.scores(tokens)
    index.add_tokens("new", tokenize("green tea " * 30))
    docs["new"] = "green tea " * 30
    after = index.scores(tokens)
    assert after["new"] > 0 and any(after[i] != before[i] for i in before)
    assert_same_as_okapi(index, docs)
