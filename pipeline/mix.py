"""Mix stage: cap the synthetic share of the output exactly, keeping coverage and tails.

Which synthetic records survive the cap decides whether the training set keeps the diversity
of the real world. Keeping the best-scoring ones concentrates the output on the common modes,
the very collapse the product exists to prevent (DESIGN.md §6). So, with embeddings:

1. the synthetic budget is allocated across the real clusters in proportion to the real
   data's mass, with a floor so rare real clusters keep representatives;
2. inside a cluster, picks follow max-marginal relevance: prefer natural (low formulaic) and
   in-distribution records, but penalize similarity to what the cluster already has, so the
   picks spread instead of piling onto near-identical neighbours;
3. the result is a priority order over all candidates; the cap (and the per-generation cap)
   take from the top of it.

Without embeddings (e.g. `--stages dedup,mix`) the documented fallback is a seeded uniform
sample, which keeps the input's distribution in expectation.

The cap is met by integer counting, never by float comparison: with R real records kept and
cap X, at most floor(X * R / (1 - X)) synthetic records may stay, the largest S with
S / (R + S) <= X.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from .diversity import distinct_n
from .fidelity import rare_coverage, vendi
from .records import Reason, is_real, is_synthetic, reject
from .stage import BaseStage, Embeddings, RunContext, StageOutcome
from .text import words


def synthetic_budget(n_real: int, cap: float) -> int | None:
    """Largest number of synthetic records with share <= cap; None when there is no limit."""
    x = Fraction(cap).limit_denominator(10**9)
    if x >= 1:
        return None
    if x <= 0:
        return 0
    return int((x * n_real) // (1 - x))


def share_limit(total: int, cap: float) -> int:
    """Largest count that is at most `cap` of `total`, exactly."""
    return int(Fraction(cap).limit_denominator(10**9) * total)


# ----------------------------------------------------------------------------- allocation

def allocate(budget: int, mass: np.ndarray, available: np.ndarray, floor: int) -> np.ndarray:
    """Splits `budget` picks across clusters by real `mass`, at most `available` each.

    Every cluster with candidates first gets min(floor, available) picks (the tails keep
    representatives); the rest goes by largest remainder on the real mass, and what a
    cluster cannot use flows to the others. Deterministic: ties break on cluster order.
    """
    available = available.astype(np.int64)
    quota = np.zeros(len(mass), dtype=np.int64)
    budget = int(min(budget, available.sum()))
    base = np.minimum(available, floor)
    if base.sum() > budget:
        # Not even the floor fits: give it to the clusters with the most real mass first.
        for c in np.argsort(-mass, kind="stable"):
            take = min(base[c], budget - quota.sum())
            quota[c] = take
            if quota.sum() == budget:
                break
        return quota
    quota += base
    while quota.sum() < budget:
        room = available - quota
        open_ = room > 0
        left = budget - quota.sum()
        weights = np.where(open_, mass, 0.0)
        if weights.sum() <= 0:
            weights = open_.astype(float)
        share = weights / weights.sum() * left
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:
            # Largest remainders get the last picks, one each.
            order = np.lexsort((np.arange(len(mass)), -(share - np.floor(share))))
            for c in order:
                if quota.sum() == budget:
                    break
                if room[c] > 0:
                    quota[c] += 1
                    room[c] -= 1
            continue
        quota += add
    return quota


# MMR compares each pick with every candidate of its cluster: O(picks * n * d). Clusters
# larger than this are split at random into pools of this size, each spread on its own.
MMR_POOL = 3000


def mmr_order(vectors: np.ndarray, quality: np.ndarray, weight: float, steps: int
              ) -> np.ndarray:
    """Orders one pool's candidates: the first `steps` by max-marginal relevance, the rest
    by quality.

    Each MMR step takes the candidate maximizing weight * quality - (1 - weight) * (its
    highest cosine similarity to those already taken), so picks spread over the pool.
    """
    n = len(quality)
    steps = min(steps, n)
    order = np.empty(n, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    max_sim = np.zeros(n, dtype=np.float32)
    for step in range(steps):
        gain = weight * quality - (1.0 - weight) * max_sim
        gain[taken] = -np.inf
        pick = int(np.argmax(gain))
        order[step] = pick
        taken[pick] = True
        np.maximum(max_sim, vectors @ vectors[pick], out=max_sim)
    rest = np.flatnonzero(~taken)
    order[steps:] = rest[np.argsort(-quality[rest], kind="stable")]
    return order


def cluster_order(vectors: np.ndarray, quality: np.ndarray, weight: float, quota: int,
                  rng: np.random.Generator) -> np.ndarray:
    """One cluster's candidates in pick order (MMR within pools of at most MMR_POOL)."""
    n = len(quality)
    if n <= MMR_POOL:
        return mmr_order(vectors, quality, weight, quota)
    pools = np.array_split(rng.permutation(n), -(-n // MMR_POOL))
    keys = np.empty(n, dtype=float)
    for pool in pools:
        pool_quota = max(1, -(-quota * len(pool) // n))
        order = mmr_order(vectors[pool], quality[pool], weight, pool_quota)
        keys[pool[order]] = (np.arange(len(pool)) + 1) / pool_quota
    return np.lexsort((np.arange(n), keys))


def quality_of(table: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """1 for a natural, central record, 0 for a boilerplate, outlying one; 0.5 if unknown."""
    def col(name: str, scale: float) -> np.ndarray:
        if name not in table:
            return np.full(len(rows), 0.5)
        v = table[name].to_numpy(dtype=float, na_value=np.nan)[rows] / scale
        return np.where(np.isnan(v), 0.5, np.clip(v, 0.0, 1.0))
    return 1.0 - 0.5 * col("formulaic", 1.0) - 0.5 * col("distance_pctl", 100.0)


def coverage_priority(table: pd.DataFrame, candidates: np.ndarray, budget: int,
                      emb: Embeddings, ctx: RunContext) -> np.ndarray:
    """Candidates in the order the cap should keep them, for coverage of the real clusters."""
    cfg = ctx.config.mix
    vectors = emb.vectors
    mass = np.asarray(emb.clusters.sizes, dtype=float)
    cluster_of = table["cluster"].to_numpy(dtype=float, na_value=np.nan)[candidates]
    # A candidate without a cluster (not embedded) goes last, in input order.
    unclustered = candidates[np.isnan(cluster_of)]
    candidates = candidates[~np.isnan(cluster_of)]
    cluster_of = cluster_of[~np.isnan(cluster_of)].astype(np.int64)
    available = np.bincount(cluster_of, minlength=len(mass))
    quota = allocate(budget, mass, available, cfg.min_per_cluster)
    keys = np.empty(len(candidates), dtype=float)
    rng = np.random.default_rng(ctx.config.seed)
    for c in np.flatnonzero(available):
        members = np.flatnonzero(cluster_of == c)
        rows = candidates[members]
        order = cluster_order(vectors[rows], quality_of(table, rows), cfg.quality_weight,
                              int(quota[c]), rng)
        # Within-quota picks get keys <= 1, so the top `budget` of the global order is
        # exactly the allocation; the rest follow, interleaved by how over quota they are.
        keys[members[order]] = (np.arange(len(order)) + 1) / max(quota[c], 0.5)
    ranked = candidates[np.lexsort((candidates, keys))]
    return np.concatenate([ranked, unclustered])


def random_priority(candidates: np.ndarray, seed: int) -> np.ndarray:
    """The fallback order: a seeded uniform shuffle."""
    return np.random.default_rng(seed).permutation(candidates)


# ----------------------------------------------------------------------------- selection

def take(priority: np.ndarray, budget: int, generation: np.ndarray, n_real: int,
         per_generation: float | None) -> np.ndarray:
    """Takes from the top of `priority` up to `budget`, keeping every self-training
    generation k >= 1 at most `per_generation` of the final output (real + taken).

    The output size depends on what is taken, so the per-generation limits are computed
    against the largest output possible and tightened until they hold for what was taken.
    """
    want = min(budget, len(priority))
    if per_generation is None:
        return np.sort(priority[:want])
    total = n_real + want
    while True:
        limit = share_limit(total, per_generation)
        counts: dict[int, int] = {}
        chosen = []
        for row in priority:
            if len(chosen) == want:
                break
            g = generation[row]
            if g >= 1:
                if counts.get(g, 0) >= limit:
                    continue
                counts[g] = counts.get(g, 0) + 1
            chosen.append(row)
        new_total = n_real + len(chosen)
        if share_limit(new_total, per_generation) >= max(counts.values(), default=0):
            return np.sort(np.asarray(chosen, dtype=np.int64))
        total = new_total


class MixStage(BaseStage):
    """Caps the synthetic share of the output exactly: with embeddings the budget is spread
    over the real clusters by real mass (rare ones kept) and max-marginal relevance inside
    each; without, a seeded uniform sample."""

    name = "mix"
    reads = ("source", "kept", "generation", "cluster", "formulaic", "distance_pctl")
    reasons = (Reason.SHARE_CAP,)

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        return cap_share(table, ctx)


def cap_share(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Rejects the synthetic records that do not fit under the cap (`share_cap`)."""
    cfg = ctx.config
    emb = ctx.embeddings
    kept = table["kept"].to_numpy()
    n_real = int((kept & is_real(table)).sum())
    candidates = np.flatnonzero(kept & is_synthetic(table))
    budget = synthetic_budget(n_real, cfg.max_synthetic_share)
    per_gen = cfg.mix.max_share_per_generation
    details: dict = {"cap": cfg.max_synthetic_share, "real_kept": n_real,
                     "synthetic_candidates": int(len(candidates)),
                     "budget": int(len(candidates)) if budget is None else budget,
                     "max_share_per_generation": per_gen}
    budget = len(candidates) if budget is None else budget
    generation = table["generation"].to_numpy(dtype=float, na_value=-1).astype(np.int64)
    has_embeddings = emb is not None and "cluster" in table
    needs_choice = len(candidates) > budget or per_gen is not None
    if not needs_choice:
        details["rule"] = "none needed: every acceptable synthetic record fits under the cap"
        chosen = candidates
    elif has_embeddings:
        details["rule"] = ("coverage: budget allocated over real clusters by real mass "
                           f"(floor {cfg.mix.min_per_cluster} per cluster), max-marginal "
                           "relevance inside each cluster")
        chosen = take(coverage_priority(table, candidates, budget, emb, ctx), budget,
                      generation, n_real, per_gen)
    else:
        details["rule"] = "seeded uniform sample (no embeddings: the embed stage did not run)"
        chosen = take(random_priority(candidates, cfg.seed), budget, generation, n_real,
                      per_gen)
    drop = np.zeros(len(table), dtype=bool)
    drop[candidates] = True
    drop[chosen] = False
    reject(table, drop, Reason.SHARE_CAP,
           f"share cap: {len(chosen)} of {len(candidates)} acceptable synthetic records fit "
           f"under {cfg.max_synthetic_share:g} beside {n_real} real"
           + (f" (at most {per_gen:g} per generation)" if per_gen is not None else ""))
    details["synthetic_kept"] = int(len(chosen))
    if has_embeddings:
        details["clusters"] = cluster_shares(table, emb)
    details["generations"] = generation_shares(table, emb, cfg.seed)
    return StageOutcome(details=details)


# ----------------------------------------------------------------------------- reporting

def cluster_shares(table: pd.DataFrame, emb: Embeddings) -> list[dict]:
    """Per real cluster: real share, synthetic-in share, synthetic-kept share."""
    sizes = np.asarray(emb.clusters.sizes, dtype=float)
    rare = set(int(c) for c in emb.clusters.rare)
    cluster = table["cluster"].to_numpy(dtype=float, na_value=np.nan)
    synth = is_synthetic(table) & ~np.isnan(cluster)
    kept_synth = synth & table["kept"].to_numpy()
    k = len(sizes)
    n_in = np.bincount(cluster[synth].astype(np.int64), minlength=k)
    n_kept = np.bincount(cluster[kept_synth].astype(np.int64), minlength=k)
    rows = []
    for c in range(k):
        rows.append({"cluster": c, "rare": c in rare,
                     "real_share": round(sizes[c] / max(sizes.sum(), 1), 4),
                     "synthetic_in_share": round(n_in[c] / max(n_in.sum(), 1), 4),
                     "synthetic_kept_share": round(n_kept[c] / max(n_kept.sum(), 1), 4),
                     "synthetic_in": int(n_in[c]), "synthetic_kept": int(n_kept[c])})
    return rows


# Per-generation set metrics are compared at one sample size (Vendi and distinct-n grow
# with the number of records); at most this many records a generation.
GENERATION_SAMPLE = 1000


def generation_shares(table: pd.DataFrame, emb: Embeddings | None = None, seed: int = 0
                      ) -> list[dict]:
    """Per generation (0 = human, k = k-th self-training round): input, kept, output share,
    and the diversity of what each generation contributes to the output, all at one sample
    size so rounds compare: distinct-2, and with embeddings Vendi and the share of rare real
    clusters reached. A later round that reaches fewer rare clusters or repeats itself more
    is the collapse the literature warns of (accumulate real data; don't replace it)."""
    gen = table["generation"]
    if gen.isna().all():
        return []
    kept = table["kept"].to_numpy()
    total_out = max(int(kept.sum()), 1)
    labels = gen.astype(object).where(gen.notna(), "unknown").to_numpy()
    groups = sorted(set(labels), key=lambda v: (isinstance(v, str), v))
    kept_rows = {g: np.flatnonzero((labels == g) & kept) for g in groups}
    size = min([GENERATION_SAMPLE] + [len(r) for r in kept_rows.values() if len(r)])
    rng = np.random.default_rng(seed)
    texts = table["text"].tolist()
    rows = []
    for g in groups:
        mask = labels == g
        row = {"generation": g, "input": int(mask.sum()), "kept": int(len(kept_rows[g])),
               "output_share": round(len(kept_rows[g]) / total_out, 4)}
        if len(kept_rows[g]) >= size > 1:
            sample = np.sort(rng.choice(kept_rows[g], size, replace=False))
            row["sample"] = int(size)
            row["distinct_2"] = round(distinct_n([words(texts[i]) for i in sample], 2), 4)
            if emb is not None:
                sample = sample[emb.embedded[sample]]
                if len(sample) > 1:
                    row["vendi"] = round(vendi(emb.vectors[sample]), 3)
                    row["rare_coverage"] = round(rare_coverage(
                        emb.vectors[sample], emb.clusters.centroids, emb.clusters.rare), 4)
        rows.append(row)
    return rows
