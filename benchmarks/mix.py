"""Which synthetic records should survive the share cap? Coverage selection vs random vs top-score.

Same data, same cap, three rules for picking the synthetic records that stay:

- coverage   the mix stage: budget spread over the real clusters by real mass with a floor
             for rare clusters, max-marginal relevance inside each cluster
- random     a seeded uniform sample (the fallback rule without embeddings)
- top-score  the best-scoring records: lowest formulaic score and distance percentile

and, for each, the kept synthetic set's rare-cluster coverage, fidelity recall and coverage
(Naeem et al. 2020) and Vendi score, measured against the real records by the embed stage's
own functions.

The data: a real distribution of `--clusters` Gaussian clusters on the unit sphere with
Zipf-distributed mass (a long tail of rare clusters), and a synthetic set drawn the way
generators drift: mode-seeking (cluster mass raised to a power > 1, so common modes are
over-produced and rare ones thin out), with formulaic scores at random. The embed stage runs
for real on these vectors (the embedder is a lookup), so distance percentiles, clusters and
rare clusters are what a run would compute.

    python benchmarks/mix.py [--real 4000] [--synthetic 16000] [--cap 0.3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from synthgate import fidelity, mix
from synthgate.distance import EmbedStage
from synthgate.config import Config
from synthgate.records import new_table
from synthgate.stage import RunContext


def make_data(n_real: int, n_synth: int, n_clusters: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    mass = 1.0 / np.arange(1, n_clusters + 1) ** 1.1          # Zipf: a long tail
    mass /= mass.sum()
    synth_mass = mass ** 1.8                                  # mode-seeking generator
    synth_mass /= synth_mass.sum()

    def draw(n, p, spread):
        labels = rng.choice(n_clusters, size=n, p=p)
        v = centres[labels] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    real = draw(n_real, mass, 0.6)
    synth = draw(n_synth, synth_mass, 0.6)
    return np.vstack([real, synth]).astype(np.float32)


def stage_table(vectors: np.ndarray, n_real: int, seed: int) -> tuple[pd.DataFrame, RunContext]:
    n = len(vectors)
    ids = [f"r{i}" if i < n_real else f"s{i}" for i in range(n)]
    texts = [f"record number {i}" for i in range(n)]
    table = new_table(ids, ["real"] * n_real + ["synthetic"] * (n - n_real), texts)
    rng = np.random.default_rng(seed + 1)
    table["formulaic"] = np.where(table["source"] == "synthetic", rng.uniform(size=n), np.nan)

    def lookup(batch: list[str]) -> np.ndarray:
        return vectors[[int(t.rsplit(" ", 1)[1]) for t in batch]]

    return table, lookup


def measure(name: str, table: pd.DataFrame, vectors: np.ndarray, clusters: dict,
            seconds: float) -> dict:
    kept = np.flatnonzero(table["kept"].to_numpy() & (table["source"] == "synthetic").to_numpy())
    real = np.flatnonzero((table["source"] == "real").to_numpy())
    fid = fidelity.fidelity(vectors[real], vectors[kept])
    return {"rule": name, "kept": len(kept),
            "rare_coverage": fidelity.rare_coverage(vectors[kept], clusters.centroids,
                                                    clusters.rare),
            "recall": fid.get("recall", float("nan")),
            "coverage": fid.get("coverage", float("nan")),
            "vendi": fidelity.vendi(vectors[kept]), "select_s": seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", type=int, default=4000)
    ap.add_argument("--synthetic", type=int, default=16000)
    ap.add_argument("--clusters", type=int, default=80)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--cap", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality-weight", type=float, default=None,
                    help="override [mix] quality_weight (default: the config default)")
    args = ap.parse_args()

    vectors = make_data(args.real, args.synthetic, args.clusters, args.dim, args.seed)
    table, lookup = stage_table(vectors, args.real, args.seed)
    config = Config(max_synthetic_share=args.cap, stages=["embed", "mix"], seed=args.seed)
    if args.quality_weight is not None:
        config = config.with_overrides(**{"mix.quality_weight": args.quality_weight})
    ctx = RunContext(config=config, embedder=lookup)
    start = time.perf_counter()
    EmbedStage().run(table, ctx)
    print(f"embed stage (k-NN, clusters, per-record decisions): "
          f"{time.perf_counter() - start:.1f} s")
    clusters = ctx.embeddings.clusters
    after_embed = table.copy(deep=True)
    n_candidates = int((after_embed["kept"] & (after_embed["source"] == "synthetic")).sum())
    n_real = int((after_embed["kept"] & (after_embed["source"] == "real")).sum())
    budget = mix.synthetic_budget(n_real, args.cap)
    print(f"real {args.real}, synthetic {args.synthetic}, cap {args.cap}: {n_candidates} "
          f"acceptable synthetic candidates, budget {budget}; {len(clusters.sizes)} real "
          f"clusters, {len(clusters.rare)} rare")

    rows = []
    # coverage: the mix stage itself
    t = after_embed.copy(deep=True)
    start = time.perf_counter()
    mix.MixStage().run(t, RunContext(config=config, embeddings=ctx.embeddings))
    rows.append(measure("coverage (mix stage)", t, vectors, clusters,
                        time.perf_counter() - start))
    candidates = np.flatnonzero(after_embed["kept"].to_numpy()
                                & (after_embed["source"] == "synthetic").to_numpy())
    for name, order in (
            ("random", lambda: mix.random_priority(candidates, args.seed)),
            ("top-score", lambda: candidates[np.argsort(-mix.quality_of(after_embed, candidates),
                                                        kind="stable")])):
        t = after_embed.copy(deep=True)
        start = time.perf_counter()
        chosen = order()[:budget]
        keep = t["kept"].to_numpy().copy()
        keep[candidates] = False
        keep[chosen] = True
        t["kept"] = keep
        rows.append(measure(name, t, vectors, clusters, time.perf_counter() - start))
    everything = after_embed.copy(deep=True)
    rows.append(measure("(all candidates, no cap)", everything, vectors, clusters, 0.0))

    print()
    print(f"{'rule':<26}{'kept':>7}{'rare_cov':>10}{'recall':>9}{'coverage':>10}"
          f"{'vendi':>9}{'select_s':>10}")
    for r in rows:
        print(f"{r['rule']:<26}{r['kept']:>7}{r['rare_coverage']:>10.3f}{r['recall']:>9.3f}"
              f"{r['coverage']:>10.3f}{r['vendi']:>9.2f}{r['select_s']:>10.2f}")


if __name__ == "__main__":
    main()
