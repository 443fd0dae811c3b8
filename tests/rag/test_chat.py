"""Follow-ups become standalone queries before retrieval (the guard and the cheap rewrite)."""

from pathlib import Path

import pytest

from rag.chat import guard_rewrite, list_items, pointed_item, standalone_query

TEAS = [{"role": "user", "content": "Which teas does the guide cover?"},
        {"role": "assistant", "content": "It covers green tea, black tea and oolong [1]."}]


def test_a_first_question_is_searched_as_asked():
    rewrite = standalone_query([{"role": "user", "content": "How hot for green tea?"}])
    assert rewrite.query == "How hot for green tea?" and rewrite.method == "none"


def test_the_second_one_names_the_second_listed_item():
    assert pointed_item("and the second one?", TEAS[1]["content"]) == "black tea"
    assert pointed_item("and the last one?", TEAS[1]["content"]) == "oolong"
    assert list_items("Types:\n1. Nothing\n2. Something less important\n3. More") == \
        ["Nothing", "Something less important", "More"]


def test_cheap_rewrite_carries_the_item_and_the_previous_question():
    rewrite = standalone_query([*TEAS, {"role": "user", "content": "and the second one?"}],
                               llm=None, mode="append")
    assert rewrite.method == "append"
    assert "black tea" in rewrite.query and "teas" in rewrite.query
    assert "black tea" in rewrite.prompt


def test_guard_rejects_a_repeat_of_the_previous_question_and_inventions():
    follow_up = "how long does it steep?"
    history = [{"role": "user", "content": "How hot should the water be for oolong?"},
               {"role": "assistant", "content": "Oolong is brewed at 90 °C [1]."}]
    assert guard_rewrite("How long should oolong steep?", follow_up, history)
    assert not guard_rewrite("How hot should the water be for oolong?", follow_up, history)
    assert not guard_rewrite("How long do Martian volcanoes erupt on Tuesdays?", follow_up, history)
    assert not guard_rewrite("I could not find the answer.", follow_up, history)


ESSAYS = Path(__file__).resolve().parents[3] / "shared" / "data" / "qa" / "paul_graham" / "essays"


@pytest.mark.skipif(not ESSAYS.is_dir(), reason="shared Paul Graham essays not present")
def test_the_second_one_retrieves_its_own_passage_on_real_essays(tmp_path, embedder):
    """Over real essays, "and the second one?" after a listed answer finds the passage about
    the second item; the bare follow-up does not."""
    from rag.api import RAG

    rag = RAG.open(tmp_path / "index", embedder=embedder)
    names = ["procrastination.txt", "siliconvalley.txt", "bubble.txt", "marginal.txt",
             "start.txt", "wealth.txt"]
    assert all(r.status == "added" for r in rag.ingest([ESSAYS / n for n in names]))
    history = [
        {"role": "user", "content": "What are the three types of procrastination?"},
        {"role": "assistant", "content": "The three types of procrastination are:\n"
         "1. Nothing [1]\n2. Something less important [1]\n3. Something more important [1]"},
        {"role": "user", "content": "and the second one?"},
    ]
    rewrite = standalone_query(history, llm=None, mode="append")
    hits = rag.retrieve(rewrite.query, top_k=3)
    bare = rag.retrieve("and the second one?", top_k=3)
    rag.close()

    def about_second(hit):
        return "less important" in hit.chunk.text or "type-B" in hit.chunk.text

    assert any(about_second(h) for h in hits), [h.chunk.text[:80] for h in hits]
    assert all(h.chunk.source.endswith("procrastination.txt") for h in hits)
    assert not any(h.chunk.source.endswith("procrastination.txt") for h in bare)
