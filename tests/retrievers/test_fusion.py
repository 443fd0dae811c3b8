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
