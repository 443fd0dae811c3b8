"""A question quoting a phrase is served the chunks that hold it (retrievers/phrases.py): the
holder rises over better-fused chunks, a holder neither retriever ranked still comes, the
holder's document comes next, filters still hold, and a question quoting nothing is untouched."""

from __future__ import annotations

from retrievers.hybrid import HybridRetriever
from retrievers.phrases import boost_quoted, phrase_patterns, holds_phrase, quoted_phrases
from retrievers.fusion import Fused
from retrievers.records import Chunk

TEXTS = {
    "a": ("/papers/consensus.pdf", "Consensus algorithms: proof of work and proof of stake compared."),
    "b": ("/papers/consensus.pdf", "Ethereum and EOS differ in their consensus algorithms."),
    "ref": ("/papers/consensus.pdf", "19. Ethereum VS  EOS, https://www.coinsmart.com/blog/, "
                                     "last accessed 2021/11/30."),
    "essay-title": ("/essays/cities.txt", "Written by Paul Graham\n\nCities and\nAmbition\n\nMay 2008"),
    "essay-body": ("/essays/cities.txt", "Great cities attract ambitious people. In Florence I "
                                         "found I was 450 years too late."),
    "other": ("/essays/art.txt", "Florence was an art centre of the Renaissance."),
}


def chunks(ids):
    return {cid: Chunk(chunk_id=cid, text=TEXTS[cid][1], source=TEXTS[cid][0], source_id=cid,
                       content_hash="h", position=0) for cid in ids if cid in TEXTS}


def ranked(*ids):
    return [(cid, float(len(ids) - n)) for n, cid in enumerate(ids)]


class KeywordsForPhrases:
    """A keyword search for the phrase itself: every chunk sharing a word with it, and the
    filters it was asked with."""

    def __init__(self):
        self.asked = []

    def __call__(self, query, k, filters=None):
        self.asked.append((query, filters))
        words = set(query.lower().split())
        return [(cid, 1.0) for cid, (_, text) in TEXTS.items() if words & set(text.lower().split())][:k]


def retriever(searches, **options):
    return HybridRetriever(searches, chunks, **options)


def served(r, question, **kw):
    return [h.chunk.chunk_id for h in r.retrieve(question, **kw)]


QUESTION = 'What is the difference between Ethereum and EOS according to the source "Ethereum VS EOS"?'


def test_quoted_phrases_and_folded_matching():
    assert quoted_phrases(QUESTION) == ["Ethereum VS EOS"]
    assert quoted_phrases('In \u201cCities and Ambition\u201d, who?') == ["Cities and Ambition"]
    assert quoted_phrases('What does "spam" mean?') == []
    patterns = phrase_patterns(["Cities and Ambition."])
    assert holds_phrase("Cities and\nAMBITION", patterns)  # a title broken over lines, any case
    assert not holds_phrase("Cities and Ambitions", patterns)  # word boundaries
    # accents as the BM25 tokenizer reads them, either way round
    assert holds_phrase("the film Drei Haselnüsse für Aschenbrödel (1973)",
                        phrase_patterns(["Drei Haselnusse fur Aschenbrodel"]))
    assert holds_phrase("Ecole Normale Superieure", phrase_patterns(["École normale supérieure"]))


def test_a_chunk_holding_the_quoted_phrase_rises_above_better_fused_ones():
    searches = {"bm25": lambda q, k, f=None: ranked("b", "a", "ref"),
                "dense": lambda q, k, f=None: ranked("b", "a", "ref")}
    keywords = KeywordsForPhrases()
    boosted = retriever(searches, phrase_boost=6.0, phrase_search=keywords)
    assert served(boosted, QUESTION, top_k=2)[0] == "ref"
    assert served(retriever(searches, phrase_search=keywords), QUESTION, top_k=2) == ["b", "a"]  # off
    hit = boosted.retrieve(QUESTION, top_k=1)[0]
    assert hit.scores["phrase"] == 6.0 and hit.ranks["phrase"] == 1  # shown beside the retrievers' ranks


def test_a_holder_neither_retriever_ranked_is_still_served():
    searches = {"bm25": lambda q, k, f=None: ranked("b", "a"),
                "dense": lambda q, k, f=None: ranked("a", "b")}
    got = served(retriever(searches, phrase_boost=2.0, phrase_search=KeywordsForPhrases()),
                 QUESTION, top_k=3)
    assert got[0] == "ref" and set(got) == {"ref", "a", "b"}


def test_the_holders_document_comes_next_with_a_document_boost():
    """The title line holds the quoted title; the passage that answers is the essay's body."""
    question = 'In "Cities and Ambition", which city was 450 years too late?'
    searches = {"bm25": lambda q, k, f=None: ranked("other", "essay-body", "essay-title"),
                "dense": lambda q, k, f=None: ranked("other", "essay-body", "essay-title")}
    keywords = KeywordsForPhrases()
    assert served(retriever(searches, phrase_search=keywords, phrase_boost=6.0), question,
                  top_k=3) == ["essay-title", "other", "essay-body"]
    assert served(retriever(searches, phrase_search=keywords, phrase_boost=6.0,
                            phrase_document_boost=3.0), question, top_k=3) == \
        ["essay-title", "essay-body", "other"]


def test_filters_reach_the_phrase_search_and_unquoted_questions_skip_it():
    searches = {"bm25": lambda q, k, f=None: ranked("b", "a"),
                "dense": lambda q, k, f=None: ranked("a", "b")}
    keywords = KeywordsForPhrases()
    r = retriever(searches, phrase_boost=2.0, phrase_search=keywords)
    r.retrieve(QUESTION, filters={"source": "/papers/consensus.pdf"})
    assert keywords.asked[-1][0] == "Ethereum VS EOS" and keywords.asked[-1][1] is not None
    asked = len(keywords.asked)
    r.retrieve("How do Ethereum and EOS differ?")
    r.retrieve('Is "spam" one word?')  # one quoted word is not a phrase
    assert len(keywords.asked) == asked


def test_boost_quoted_leaves_the_list_alone_without_holders_or_boosts():
    fused = [Fused("a", 1.0), Fused("b", 0.5)]
    assert boost_quoted(fused, set(), {}, 2.0, 1.0) is fused
    assert boost_quoted(fused, {"b"}, {"b": "/s"}, 0.0, 0.0) is fused
    assert [f.chunk_id for f in boost_quoted(fused, {"b"}, {"b": "/s"}, 1.0, 0.0)] == ["b", "a"]


def test_a_real_index_serves_the_chunk_holding_a_quoted_phrase(filter_index, embedder):
    """Milvus Lite + BM25 with MiniLM vectors: a sentence of the lamp manual quoted in a
    question about tea is served first, the keyword search finding it."""
    from retrievers.filters import Filters

    lamp = [c for c in filter_index.chunks(sorted(filter_index.keywords.ids())).values()
            if c.source.endswith("lamp.txt")]
    words = lamp[len(lamp) // 2].text.split()[:4]
    question = f'How long should green tea steep, and what does "{" ".join(words)}" say?'
    plain = HybridRetriever.for_index(filter_index, embedder.encode_query)
    boosted = HybridRetriever.for_index(filter_index, embedder.encode_query, phrase_boost=4.0)
    holders = {c.chunk_id for c in lamp if " ".join(words).lower() in " ".join(c.text.lower().split())}
    assert served(boosted, question, top_k=1)[0] in holders
    assert served(plain, question, top_k=1)[0] not in holders  # tea, without the boost
    only_tea = Filters(sources=tuple(c.source for c in filter_index.chunks(sorted(
        filter_index.keywords.ids())).values() if c.source.endswith("tea.md"))[:1])
    assert not holders & set(served(boosted, question, top_k=5, filters=only_tea))
