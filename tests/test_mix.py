"""The share cap: exact, deterministic, and keeping the real clusters' tails."""

import numpy as np
import pandas as pd
import pytest

from synthgate.config import Config
from synthgate.fidelity import RealClusters
from synthgate.mix import MixStage, allocate, share_limit, synthetic_budget, take
from synthgate.records import new_table
from synthgate.stage import Embeddings, RunContext

run = MixStage().run


def _clustered_table(n_real_per_cluster, n_synth_per_cluster, seed=0, dim=16):
    """Real and synthetic records around known cluster centres, with fake embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_real_per_cluster), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids, sources, clusters, vecs = [], [], [], []
    for source, counts in (("real", n_real_per_cluster), ("synthetic", n_synth_per_cluster)):
        for c, n in enumerate(counts):
            for j in range(n):
                ids.append(f"{source[0]}{c}-{j}")
                sources.append(source)
                clusters.append(c)
                v = centres[c] + 0.3 * rng.normal(size=dim)
                vecs.append(v / np.linalg.norm(v))
    table = new_table(ids, sources, [f"record {i} text here" for i in ids])
    table["cluster"] = pd.array(clusters, dtype="Int64")
    table["formulaic"] = np.where(table["source"] == "synthetic", rng.uniform(size=len(ids)),
                                  np.nan)
    embeddings = Embeddings(
        vectors=np.asarray(vecs, dtype=np.float32), embedded=np.ones(len(ids), dtype=bool),
        clusters=RealClusters(centroids=centres, sizes=np.asarray(n_real_per_cluster),
                              rare=[c for c, n in enumerate(n_real_per_cluster)
                                    if n <= min(n_real_per_cluster)]))
    return table, embeddings


@pytest.mark.parametrize("n_real", [0, 1, 2, 3, 7, 10, 99, 100, 101, 997])
@pytest.mark.parametrize("cap", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9, 0.999, 1.0])
def test_budget_is_the_largest_count_under_the_cap(n_real, cap):
    budget = synthetic_budget(n_real, cap)
    if cap >= 1:
        assert budget is None
        return
    share = lambda s: s / (n_real + s) if n_real + s else 0.0  # noqa: E731
    assert share(budget) <= cap + 1e-15
    assert share(budget + 1) > cap


def test_allocation_follows_real_mass_with_a_floor_for_rare_clusters():
    quota = allocate(20, np.array([80.0, 15.0, 4.0, 1.0]), np.array([100, 100, 100, 100]), 1)
    assert quota.sum() == 20
    assert quota[3] >= 1 and quota[2] >= 1          # the tails keep representatives
    assert quota[0] > quota[1] > quota[3]           # and the mass decides the rest


def test_allocation_never_exceeds_what_a_cluster_has():
    quota = allocate(50, np.array([50.0, 30.0, 20.0]), np.array([3, 100, 0]), 1)
    assert list(quota) == [3, 47, 0]


def test_coverage_cap_keeps_rare_clusters_and_is_exact():
    # A generator that over-produces the common modes: 400 synthetic in cluster 0, 5 in the
    # rare ones. A top-score or uniform rule would keep few or none of the rare ones.
    table, embeddings = _clustered_table([60, 20, 10, 5, 5], [400, 100, 3, 2, 2])
    ctx = RunContext(config=Config(max_synthetic_share=0.2, stages=["mix"]),
                     embeddings=embeddings)
    outcome = run(table, ctx)
    kept = table[table["kept"]]
    n_real, n_synth = (kept["source"] == "real").sum(), (kept["source"] == "synthetic").sum()
    assert n_synth == synthetic_budget(100, 0.2) == 25
    assert n_synth / (n_real + n_synth) <= 0.2
    kept_clusters = set(kept.loc[kept["source"] == "synthetic", "cluster"])
    assert kept_clusters == {0, 1, 2, 3, 4}
    rows = {r["cluster"]: r for r in outcome.details["clusters"]}
    assert rows[0]["synthetic_kept_share"] < rows[0]["synthetic_in_share"]
    dropped = table[~table["kept"]]
    assert all(r == ["share_cap"] for r in dropped["reasons"])


def test_picks_inside_a_cluster_spread_out():
    # One cluster holding two tight groups of near-identical synthetic records: quality alone
    # would take the 10 best of the first group; MMR takes from both.
    table, embeddings = _clustered_table([20], [20])
    vecs = embeddings.vectors
    synth = np.flatnonzero(table["source"] == "synthetic")
    a, b = np.eye(16)[0], np.eye(16)[1]
    vecs[synth[:10]] = a
    vecs[synth[10:]] = b
    table.loc[synth[:10], "formulaic"] = 0.0     # group a scores better
    table.loc[synth[10:], "formulaic"] = 0.3
    ctx = RunContext(config=Config(max_synthetic_share=2 / 22, stages=["mix"]),
                     embeddings=embeddings)
    run(table, ctx)
    kept_synth = np.flatnonzero(table["kept"] & (table["source"] == "synthetic"))
    assert len(kept_synth) == 2
    assert {tuple(vecs[i]) for i in kept_synth} == {tuple(a.astype(np.float32)),
                                                    tuple(b.astype(np.float32))}


def test_selection_is_deterministic():
    outs = []
    for _ in range(2):
        table, embeddings = _clustered_table([30, 10], [80, 20], seed=3)
        run(table, RunContext(config=Config(max_synthetic_share=0.3), embeddings=embeddings))
        outs.append(table["kept"].tolist())
    assert outs[0] == outs[1]


def test_fallback_without_embeddings_is_a_seeded_sample_and_exact():
    table = new_table([f"r{i}" for i in range(30)] + [f"s{i}" for i in range(70)],
                      ["real"] * 30 + ["synthetic"] * 70, ["some text here"] * 100)
    outcome = run(table, RunContext(config=Config(max_synthetic_share=0.25, seed=7)))
    assert (table["kept"] & (table["source"] == "synthetic")).sum() == 10
    assert "seeded uniform sample" in outcome.details["rule"]
    again = new_table(table["id"].tolist(), table["source"].tolist(), ["some text here"] * 100)
    run(again, RunContext(config=Config(max_synthetic_share=0.25, seed=7)))
    assert again["kept"].tolist() == table["kept"].tolist()


def test_per_generation_share_holds_on_the_final_output():
    gen = np.array([1] * 60 + [2] * 60 + [3] * 10)
    chosen = take(np.arange(130), 100, gen, n_real=50, per_generation=0.2)
    total = 50 + len(chosen)
    for g in (1, 2, 3):
        assert (gen[chosen] == g).sum() <= share_limit(total, 0.2)
    assert len(chosen) > 0


def test_per_generation_cap_through_the_stage_reports_shares():
    n_real, n_synth = 40, 60
    table = new_table([f"r{i}" for i in range(n_real)] + [f"s{i}" for i in range(n_synth)],
                      ["real"] * n_real + ["synthetic"] * n_synth, ["some text here"] * 100,
                      generation=[0] * n_real + [1] * 30 + [2] * 30)
    config = Config(max_synthetic_share=0.5).with_overrides(
        **{"mix.max_share_per_generation": 0.2})
    outcome = run(table, RunContext(config=config))
    kept = table[table["kept"]]
    for g in (1, 2):
        assert (kept["generation"] == g).sum() / len(kept) <= 0.2
    shares = {r["generation"]: r for r in outcome.details["generations"]}
    assert shares[0]["kept"] == n_real
    assert shares[1]["output_share"] <= 0.2
    # Each generation's diversity is measured at one sample size, so rounds compare.
    assert len({r["sample"] for r in shares.values()}) == 1
    assert all(0 < r["distinct_2"] <= 1 for r in shares.values())


def test_generation_metrics_show_a_round_that_repeats_itself():
    n = 40
    varied = [f"record {i} about topic {i * 7} with words {i * 13} and {i * 17}" for i in range(n)]
    looped = [f"the same phrase again {i % 3} the same phrase again" for i in range(n)]
    table = new_table([f"g{i}" for i in range(3 * n)], ["real"] * n + ["synthetic"] * 2 * n,
                      varied + varied[::-1] + looped, generation=[0] * n + [1] * n + [2] * n)
    rows = {r["generation"]: r for r in
            run(table, RunContext(config=Config(max_synthetic_share=1.0))).details["generations"]}
    assert rows[2]["distinct_2"] < rows[1]["distinct_2"]


def test_without_the_mix_stage_the_cap_is_checked_not_applied():
    from synthgate import run as run_pipeline

    real = pd.DataFrame({"text": [f"real record number {i} says something" for i in range(5)]})
    synth = pd.DataFrame({"text": [f"synthetic record {i} says another thing" for i in range(15)]})
    result = run_pipeline(real=real, synthetic=synth,
                          config=Config(stages=["dedup"], max_synthetic_share=0.5))
    share = {c["name"]: c for c in result.report["gate"]["checks"]}["output.synthetic_share"]
    assert not share["passed"] and not result.passed
    assert "not applied" in share["message"]
    result = run_pipeline(real=real, synthetic=synth,
                          config=Config(stages=["dedup", "mix"], max_synthetic_share=0.5))
    assert result.passed
