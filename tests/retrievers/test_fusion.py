from retrievers.fusion import reciprocal_rank_fusion, weighted_score_fusion


def test_rrf_rewards_agreement_and_keeps_per_retriever_ranks():
    fused = reciprocal_rank_fusion(
        {"bm25": [("a", 9.0), ("b", 5.0), ("c", 1.0)], "dense": [("b", 0.9), ("d", 0.8)]}, k=60
    )
    assert fused[0].chunk_id == "b"
    assert fused[0].ranks == {"bm25": 2, "dense": 1}
    assert fused[0].scores == {"bm25": 5.0, "dense": 0.9}
    assert abs(fused[0].score - (1 / 62 + 1 / 61)) < 1e-12
    assert {f.chunk_id for f in fused} == {"a", "b", "c", "d"}


def test_rrf_weights_change_the_winner():
    rankings = {"bm25": [("a", 1.0)], "dense": [("b", 1.0)]}
    assert reciprocal_rank_fusion(rankings, weights={"bm25": 1, "dense": 2})[0].chunk_id == "b"
    assert reciprocal_rank_fusion(rankings, weights={"bm25": 2, "dense": 1})[0].chunk_id == "a"


def test_weighted_fusion_normalises_each_retriever():
    fused = weighted_score_fusion(
        {"bm25": [("a", 30.0), ("b", 10.0)], "dense": [("b", 0.9), ("a", 0.1)]},
        weights={"bm25": 1.0, "dense": 1.5},
    )
    assert [f.chunk_id for f in fused] == ["b", "a"]
    assert fused[0].score == 1.5 and fused[1].score == 1.0


def test_zscore_fusion_standardises_each_list_and_ranks_absent_chunks_last_there():
    from statistics import mean, pstdev

    from retrievers.fusion import zscore_fusion

    bm25 = [("a", 30.0), ("b", 10.0), ("c", 8.0), ("d", 7.0)]
    dense = [("b", 0.62), ("c", 0.60), ("a", 0.40), ("e", 0.30)]
    fused = zscore_fusion({"bm25": bm25, "dense": dense})
    by_id = {f.chunk_id: f for f in fused}

    def z(ranked, chunk_id):
        values = [s for _, s in ranked]
        return (dict(ranked)[chunk_id] - mean(values)) / pstdev(values)

    assert abs(by_id["a"].score - (z(bm25, "a") + z(dense, "a"))) < 1e-9
    assert abs(by_id["b"].score - (z(bm25, "b") + z(dense, "b"))) < 1e-9
    # "e" is not among bm25's candidates: it counts as bm25's lowest (d's), not as average (0).
    assert abs(by_id["e"].score - (z(bm25, "d") + z(dense, "e"))) < 1e-9
    assert [f.chunk_id for f in fused] == ["a", "b", "c", "d", "e"]
    assert by_id["b"].ranks == {"bm25": 2, "dense": 1} and by_id["e"].ranks == {"dense": 4}
    # Weighting dense up lets the chunk both lists like beat bm25's single favourite.
    assert zscore_fusion({"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 1.4})[0].chunk_id == "b"
