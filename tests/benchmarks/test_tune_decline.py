"""benchmarks/tune_decline.py's choices on made-up features: what a threshold choice depends on."""

from __future__ import annotations

from benchmarks import tune_decline as td


def _row(corpus: str, answerable: bool, sentence: float, *, dense: float = 0.30,
         rerank: float = -1.0, group: str = "short", declined_by_model: bool = False) -> dict:
    """A question today's gate finds weak (cosine 0.30, chunk logit -1) unless told otherwise."""
    return {"corpus": corpus, "set": group if answerable else "unanswerable", "kind": "dev",
            "answerable": answerable, "dense_top": dense, "coverage": 1.0,
            "missing_names": False, "rerank_top": rerank, "sentence_top": sentence,
            "model_declined": declined_by_model}


def _corpora() -> dict[str, list[dict]]:
    out = {}
    for name in ("a", "b"):
        rows = [_row(name, True, 4.0), _row(name, True, 3.0)]  # a sentence answers: rescue them
        rows += [_row(name, False, 1.0), _row(name, False, -2.0)]  # off-topic: keep declining
        rows += [_row(name, True, -5.0, dense=0.8) for _ in range(20)]  # strong evidence
        out[name] = rows
    return out


def test_the_sentence_bar_lets_answerable_questions_through_and_keeps_unanswerable_ones_out():
    corpora = _corpora()
    grid = td.grids([r for rows in corpora.values() for r in rows])
    family, (dense, rerank, bar) = td.choose_sentence_bar(corpora, grid, 0.4096, 2.2585)
    assert family == "gate&rerank&sentence" and (dense, rerank) == (0.4096, 2.2585)
    assert 1.0 < bar <= 3.0  # between the best unanswerable sentence and the lowest answering one
    assert bar == max(b for b in grid["sentence"] if 1.0 < b <= 3.0)  # ties: the highest bar
    rule = td.end_to_end(td.RULES[family][1](dense, rerank, bar))
    rows = [r for rs in corpora.values() for r in rs]
    assert td.errors(rows, rule) == 0
    # a question the model itself declined stays declined, whatever the gate lets through
    assert rule(_row("a", True, 9.0, declined_by_model=True))


def test_a_rule_decides_a_row_and_all_rows_at_once_alike():
    """`choose` scores columns, `figures` rows: the same definition must give the same answer."""
    rows = [r for rs in _corpora().values() for r in rs]
    rows.append(_row("a", False, 5.0, dense=0.35, rerank=3.0))
    rows[0]["missing_names"] = True
    columns = td.columns(rows)
    for family, (params, build) in td.RULES.items():
        values = {"dense": 0.4096, "rerank": 2.2585, "sentence": 2.0}
        rule = td.end_to_end(build(*(values[p] for p in params)))
        assert [bool(rule(r)) for r in rows] == list(rule(columns)), family
