"""Embed stage: judge synthetic records and the synthetic set against the real distribution.

The real records are the yardstick (DESIGN.md §5). A seeded part of them is held out; the rest
is the *reference*. Every number below is read against what the held-out real records score
against the same reference, so a threshold or a metric means "as far as real data goes":

per record (synthetic)
    off_distribution  k-NN cosine distance to the reference above the configured quantile of
                      the held-out records' own k-NN distances
    copies_real       a paraphrase: cosine to the nearest real record above what real records
                      reach with each other, or closer to a real record, relative to that
                      record's own nearest real neighbour, than nearly any real record comes
                      (authenticity, Alaa et al. 2022)
per set
    fidelity          precision, recall, density, coverage (Naeem et al. 2020, k-NN balls
                      around the reference) and Fréchet distance, synthetic vs the hold-out
                      at the same sample size
    tails             k-means on the reference; the smallest clusters holding ~10% of it are
                      the rare ones; how many of them the synthetic set reaches
    vendi             the Vendi score (exp of the entropy of the similarity spectrum)

`run()` embeds, decides per record and measures the synthetic input; `finalize()` measures the
kept synthetic set, after the share cap, and adds the collapse checks to the gate.

The plain functions `fidelity`, `vendi`, `frechet`, `fit_real_clusters`, `assign_clusters` and
`rare_coverage` take embeddings only, for benchmarks and other stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from checks import Check, at_least

from .dedup import normalize
from .diversity import distinct_n
from .embed import ModelEmbedder, batches, length_order
from .records import Reason, holdout_mask, is_real, is_synthetic, reject, scorable
from .report import histogram
from .stage import Embedder, RunContext, StageOutcome

# Exact blocked search up to this many query x base pairs, an HNSW index (usearch) beyond.
# Measured by benchmarks/embed.py on 2 shared CPU threads, d = 384: exact ~16-26 ns a pair,
# the index ~0.2-0.3 ms a vector inserted plus ~0.6-0.9 ms a query, so a self-search breaks
# even near 2e9 pairs (n ~ 48k). The index is approximate (recall@5 0.71 on the benchmark's
# noisy synthetic vectors, where true neighbours are near-ties): only large runs use it.
EXACT_MAX_PAIRS = 2_000_000_000
# Similarity block of the exact search: rows x base <= this many floats (~64 MB).
BLOCK_FLOATS = 1 << 24
# Texts handed to the embedder at once: one progress-bar step each.
EMBED_CHUNK = 512
# Fewer held-out real records than this and no threshold can be calibrated.
MIN_HOLDOUT = 10
# Set metrics on fewer records than this are noise: they are reported but not gated.
MIN_GATED_SAMPLE = 50
# Rare clusters: the smallest clusters that together hold about this share of the reference.
RARE_SHARE = 0.10
MAX_CLUSTERS = 256
# k-means is fitted on at most this many reference records, then every record is assigned.
CLUSTER_FIT_SAMPLE = 20_000
CLUSTER_SEED_SAMPLE = 5_000
# Vendi and fidelity are compared at equal sizes, and computed on at most this many records.
METRIC_SAMPLE = 20_000
HISTOGRAM_BINS = 30


# ----------------------------------------------------------------------------- neighbours

class NeighbourIndex:
    """Cosine nearest neighbours among the rows of `base` (unit vectors).

    Exact, by blocked matrix products (memory O(block x n), never n x n), while the search is
    small enough; an HNSW index beyond, built once and single-threaded so that the same inputs
    give the same graph and the same neighbours.
    """

    def __init__(self, base: np.ndarray, exact: bool | None = None):
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.exact = exact
        self._ann = None

    def __len__(self) -> int:
        return len(self.base)

    def use_exact(self, n_queries: int) -> bool:
        if self.exact is not None:
            return self.exact
        return len(self.base) * n_queries <= EXACT_MAX_PAIRS

    def _blocks(self, queries: np.ndarray):
        """(row slice, similarity block as a torch tensor) over the queries."""
        import torch
        base = torch.from_numpy(self.base)
        rows = max(1, BLOCK_FLOATS // max(1, len(self.base)))
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        for part in batches(len(queries), rows):
            yield part, q[part] @ base.T

    def _index(self):
        if self._ann is None:
            from usearch.index import Index
            self._ann = Index(ndim=self.base.shape[1], metric="ip", dtype="f32",
                              connectivity=16, expansion_add=64, expansion_search=128)
            self._ann.add(np.arange(len(self.base), dtype=np.uint64), self.base, threads=1)
        return self._ann

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar base rows of each query: (similarities, base indices), best
        first. `exclude[i]` is a base row query i must not match (itself), or -1. Missing
        neighbours (k > available) are similarity -inf, index -1."""
        n = len(queries)
        k = max(1, k)
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        idx = np.full((n, k), -1, dtype=np.int64)
        if n == 0 or len(self.base) == 0:
            return sims, idx
        extra = 0 if exclude is None else 1
        want = min(k + extra, len(self.base))
        if self.use_exact(n):
            import torch
            for part, block in self._blocks(queries):
                if exclude is not None:
                    ex = torch.from_numpy(exclude[part])
                    rows = torch.nonzero(ex >= 0).flatten()
                    block[rows, ex[rows]] = -torch.inf
                top = torch.topk(block, min(k, len(self.base)), dim=1)
                got = top.values.shape[1]
                sims[part, :got] = top.values.numpy()
                idx[part, :got] = top.indices.numpy()
        else:
            # Queries are independent, so searching on every core changes no result.
            matches = self._index().search(np.ascontiguousarray(queries, dtype=np.float32),
                                           want, threads=0)
            keys = matches.keys.astype(np.int64)[:, :want]
            found = 1.0 - matches.distances[:, :want].astype(np.float32)
            valid = np.arange(want)[None, :] < matches.counts[:, None]
            if exclude is not None:
                valid &= keys != exclude[:, None]
            for i in range(n):  # compact each row: drop the excluded and the missing
                got = np.flatnonzero(valid[i])[:k]
                sims[i, :len(got)] = found[i, got]
                idx[i, :len(got)] = keys[i, got]
        # Float error can put a self-match a hair above 1; similarities are cosines.
        np.clip(sims, -1.0, 1.0, out=sims)
        sims[idx < 0] = -np.inf
        return sims, idx

    def ball_counts(self, radius_sim: np.ndarray, queries: np.ndarray, k_hint: int = 5
                    ) -> tuple[np.ndarray, np.ndarray]:
        """For balls around each base row (row i holds every point at cosine >= radius_sim[i]):
        how many balls hold each query, and whether any query falls in each ball.

        Exact in blocks; with the index, counted over each query's 10*k_hint nearest rows:
        whether a query is in any ball is then right, but in high dimensions a point can sit
        in the balls of centres beyond its nearest ones, so counts (density) may come out low.
        The stage keeps its fidelity searches small enough to be exact."""
        n_q = len(queries)
        counts = np.zeros(n_q, dtype=np.int64)
        covered = np.zeros(len(self.base), dtype=bool)
        if n_q == 0 or len(self.base) == 0:
            return counts, covered
        if self.use_exact(n_q):
            import torch
            radius = torch.from_numpy(np.ascontiguousarray(radius_sim, dtype=np.float32))
            hit_any = torch.zeros(len(self.base), dtype=torch.bool)
            for part, block in self._blocks(queries):
                inside = block >= radius[None, :]
                counts[part] = inside.sum(dim=1).numpy()
                hit_any |= inside.any(dim=0)
            covered = hit_any.numpy()
        else:
            sims, idx = self.search(queries, min(len(self.base), 10 * k_hint))
            safe = np.where(idx >= 0, idx, 0)
            inside = (idx >= 0) & (sims >= radius_sim[safe])
            counts = inside.sum(axis=1)
            # Coverage asks the other way round: each ball's nearest query.
            nearest, _ = NeighbourIndex(queries, exact=False).search(self.base, 1)
            covered = nearest[:, 0] >= radius_sim
        return counts, covered


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)


# ----------------------------------------------------------------------------- set metrics

class RealReference:
    """The real reference set with its k-NN balls, built once and measured against many
    times (the synthetic input, the kept set, the real hold-out)."""

    def __init__(self, emb: np.ndarray, k: int = 5, self_sims: np.ndarray | None = None):
        self.emb = unit_rows(emb)
        self.k = k
        self.index = NeighbourIndex(self.emb)
        if self_sims is None:
            self_sims, _ = self.index.search(self.emb, k, exclude=np.arange(len(self.emb)))
        # The radius of each reference ball: cosine to its k-th nearest other reference row.
        self.radius_sim = self_sims[:, min(k, self_sims.shape[1]) - 1]
        self._gaussian: Gaussian | None = None

    @property
    def gaussian(self) -> Gaussian:
        if self._gaussian is None:
            self._gaussian = Gaussian(self.emb)
        return self._gaussian

    def fidelity(self, synth: np.ndarray) -> dict[str, float]:
        """Naeem et al. 2020 precision, recall, density, coverage (k-NN balls) and the
        Fréchet distance of `synth` against this reference."""
        synth = unit_rows(synth)
        m, k = len(synth), self.k
        if m <= k or len(self.emb) <= k:
            return {}
        counts, covered = self.index.ball_counts(self.radius_sim, synth, k_hint=k)
        # Recall needs balls around the synthetic points, sized by their own k-NN.
        fake_index = NeighbourIndex(synth)
        fake_sims, _ = fake_index.search(synth, k, exclude=np.arange(m))
        fake_counts, _ = fake_index.ball_counts(fake_sims[:, k - 1], self.emb, k_hint=k)
        return {
            "precision": float(np.mean(counts > 0)),
            "recall": float(np.mean(fake_counts > 0)),
            "density": float(counts.sum() / (k * m)),
            "coverage": float(np.mean(covered)),
            "frechet": self.gaussian.frechet(synth),
        }


def fidelity(real_emb: np.ndarray, synth_emb: np.ndarray, k: int = 5) -> dict[str, float]:
    """precision, recall, density, coverage (Naeem et al. 2020) and frechet of a synthetic
    set against a real one. Compare two synthetic sets at equal sizes: recall and coverage
    grow with the number of synthetic points."""
    return RealReference(real_emb, k).fidelity(synth_emb)


class Gaussian:
    """Mean, covariance and covariance square root of one embedding set: the half of a
    Fréchet distance that a reference can compute once and reuse."""

    def __init__(self, emb: np.ndarray):
        x = np.asarray(emb, dtype=np.float64)
        self.mean = x.mean(axis=0)
        self.cov = np.cov(x, rowvar=False)
        w, v = np.linalg.eigh(self.cov)
        self.root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    def frechet(self, other: np.ndarray) -> float:
        """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2).

        tr((S_a S_b)^1/2) is the sum of the square roots of the eigenvalues of the symmetric
        PSD matrix S_a^1/2 S_b S_a^1/2 = Z^T Z, Z = B S_a^1/2 (B: the centred other set over
        sqrt(m - 1)); Z Z^T has the same non-zero eigenvalues, so the smaller of the two
        (m x m or d x d) is decomposed."""
        b = np.asarray(other, dtype=np.float64)
        if len(b) < 2:
            return float("nan")
        centred = (b - b.mean(axis=0)) / math.sqrt(len(b) - 1)
        z = centred @ self.root
        gram = z @ z.T if len(z) < z.shape[1] else z.T @ z
        trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)).sum()
        diff = self.mean - b.mean(axis=0)
        value = diff @ diff + np.trace(self.cov) + (centred ** 2).sum() - 2 * trace_root
        return float(max(value, 0.0))


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets."""
    if len(a) < 2:
        return float("nan")
    return Gaussian(a).frechet(b)


def vendi(emb: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: the effective number of
    distinct points. The spectrum of X X^T / n (n x n) equals that of X^T X / n (d x d), so
    the smaller is decomposed: O(n d^2) for large n, never O(n^2) memory. Grows with n:
    compare sets at equal sizes."""
    x = unit_rows(emb).astype(np.float64)
    x = x[np.linalg.norm(x, axis=1) > 0]
    if len(x) == 0:
        return 0.0
    gram = x @ x.T if len(x) < x.shape[1] else x.T @ x
    w = np.linalg.eigvalsh(gram / len(x))
    w = w[w > 1e-12]
    w = w / w.sum()
    return float(np.exp(-(w * np.log(w)).sum()))


def cluster_count(n: int) -> int:
    """k for k-means: about sqrt(n/2) (the rule of thumb), so clusters average ~sqrt(2n)
    records and the rarest still hold a few."""
    return int(min(MAX_CLUSTERS, max(2, round(math.sqrt(n / 2)))))


def fit_real_clusters(real_emb: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """k-means on the real embeddings: {"centroids", "sizes" (real records per cluster),
    "rare" (sorted ids of the smallest clusters that together hold ~10% of the real records)}."""
    from sklearn.cluster import KMeans, kmeans_plusplus

    real_emb = unit_rows(real_emb)
    n = len(real_emb)
    k = min(cluster_count(n), n)
    fit_on = real_emb
    if n > CLUSTER_FIT_SAMPLE:
        rng = np.random.default_rng(seed)
        fit_on = real_emb[np.sort(rng.choice(n, CLUSTER_FIT_SAMPLE, replace=False))]
    # k-means++ seeding finds the small clusters that random seeding merges away, but its
    # cost is O(n k log k) small products (90 s on 20k x 384 with three restarts, measured):
    # seed on a sample, then one Lloyd run on the fit set.
    seeds_from = fit_on
    if len(fit_on) > CLUSTER_SEED_SAMPLE:
        rng = np.random.default_rng(seed + 1)
        seeds_from = fit_on[np.sort(rng.choice(len(fit_on), CLUSTER_SEED_SAMPLE, replace=False))]
    centres, _ = kmeans_plusplus(seeds_from, n_clusters=k, random_state=seed)
    km = KMeans(n_clusters=k, init=centres, n_init=1, random_state=seed).fit(fit_on)
    centroids = km.cluster_centers_.astype(np.float32)
    sizes = np.bincount(assign_clusters(real_emb, centroids), minlength=k)
    return {"centroids": centroids, "sizes": sizes, "rare": rare_clusters(sizes)}


def rare_clusters(sizes: np.ndarray, share: float = RARE_SHARE) -> list[int]:
    """The smallest clusters whose sizes add up to at most `share` of the total (at least
    one), smallest first by size then id; returned sorted by id."""
    order = sorted(range(len(sizes)), key=lambda c: (sizes[c], c))
    budget, total, rare = share * sizes.sum(), 0, []
    for c in order:
        if rare and total + sizes[c] > budget:
            break
        rare.append(c)
        total += sizes[c]
    return sorted(int(c) for c in rare)


def assign_clusters(emb: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid (Euclidean, as k-means fitted) of each row."""
    emb = np.asarray(emb, dtype=np.float32)
    out = np.zeros(len(emb), dtype=np.int64)
    half_sq = 0.5 * (centroids.astype(np.float32) ** 2).sum(axis=1)
    for part in batches(len(emb), max(1, BLOCK_FLOATS // max(1, len(centroids)))):
        out[part] = np.argmax(emb[part] @ centroids.T - half_sq[None, :], axis=1)
    return out


def _chance_any(count: np.ndarray, total: int, sample: int) -> np.ndarray:
    """P(a sample of `sample` drawn without replacement from `total` records, `count` of
    them in a cluster, holds at least one of them): 1 - C(total-count, m) / C(total, m)."""
    count = np.asarray(count, dtype=np.float64)
    rest = total - count
    out = np.ones_like(count)
    possible = rest >= sample
    r = rest[possible]
    log_none = (np.array([math.lgamma(x + 1) - math.lgamma(x - sample + 1) for x in r])
                - (math.lgamma(total + 1) - math.lgamma(total - sample + 1)))
    out[possible] = 1.0 - np.exp(log_none)
    return out


def rare_coverage(synth_emb: np.ndarray, centroids: np.ndarray, rare: list[int],
                  sample_size: int | None = None) -> float:
    """Share of the rare real clusters that the synthetic set reaches (at least one record
    whose nearest centroid is theirs). With `sample_size`, the expected share for a random
    sample of that many records, computed exactly (hypergeometric), so sets of different
    sizes compare without sampling noise."""
    if not rare:
        return float("nan")
    n = len(synth_emb)
    if n == 0:
        return 0.0
    counts = np.bincount(assign_clusters(synth_emb, centroids), minlength=len(centroids))
    counts = counts[np.asarray(rare)]
    if sample_size is None or sample_size >= n:
        return float(np.mean(counts > 0))
    return float(np.mean(_chance_any(counts, n, sample_size)))


# ----------------------------------------------------------------------------- the stage

@dataclass
class _State:
    """What run() leaves for finalize()."""

    reference: RealReference
    holdout_rows: np.ndarray
    clusters: dict[str, Any]
    texts: list
    baselines: dict[int, dict] = field(default_factory=dict)
    tails: dict[str, Any] = field(default_factory=dict)


def embed_texts(texts: list[str], embedder: Embedder, ctx: RunContext) -> np.ndarray:
    """Embeds in chunks, longest first, with a progress bar; returns unit float32 rows
    in the order of `texts`."""
    out: np.ndarray | None = None
    order = length_order(texts)
    with ctx.progress.bar(len(texts), "embed") as update:
        for part in batches(len(order), EMBED_CHUNK):
            idx = order[part]
            vecs = np.asarray(embedder([texts[i] for i in idx]), dtype=np.float32)
            if vecs.ndim != 2 or len(vecs) != len(idx):
                raise ValueError(f"embedder returned shape {vecs.shape} for {len(idx)} texts; "
                                 "expected (texts, dimensions)")
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
            update(len(idx))
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return unit_rows(out)


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


def _sample_rows(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    if len(rows) <= size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


def _distinct_2(texts: list) -> float:
    return distinct_n([normalize(t).split() for t in texts if isinstance(t, str)], 2)


def _set_metrics(state: _State, emb: np.ndarray, rows: np.ndarray, size: int, seed: int
                 ) -> dict[str, float]:
    """Fidelity, rare coverage, Vendi and distinct-2 of `rows` on a seeded sample of `size`."""
    sample = _sample_rows(rows, size, seed)
    out = state.reference.fidelity(emb[sample])
    out["rare_coverage"] = rare_coverage(emb[rows], state.clusters["centroids"],
                                         state.clusters["rare"], sample_size=size)
    out["vendi"] = vendi(emb[sample])
    out["distinct_2"] = _distinct_2([state.texts[i] for i in sample])
    return out


def _holdout_baseline(state: _State, emb: np.ndarray, size: int, seed: int) -> dict:
    """The same metrics for the real hold-out at the same size (cached per size)."""
    if size not in state.baselines:
        state.baselines[size] = _set_metrics(state, emb, state.holdout_rows, size, seed)
    return state.baselines[size]


FIDELITY_KEYS = ("precision", "recall", "density", "coverage", "frechet")


def _rounded(metrics: dict, keys=None) -> dict:
    keys = keys or metrics.keys()
    return {k: round(float(metrics[k]), 4) for k in keys if k in metrics}


def _measure(state: _State, emb: np.ndarray, rows: np.ndarray, seed: int
             ) -> tuple[dict, dict, int]:
    """Metrics of synthetic `rows` and of the hold-out, both at the smaller of their sizes."""
    size = min(len(rows), len(state.holdout_rows), METRIC_SAMPLE)
    return (_set_metrics(state, emb, rows, size, seed),
            _holdout_baseline(state, emb, size, seed), size)


def _fidelity_report(synth: dict, base: dict, size: int) -> dict:
    out = _rounded(synth, FIDELITY_KEYS)
    out["sample_size"] = size
    out["real_holdout"] = _rounded(base, FIDELITY_KEYS)
    return out


def _closeness(n: int, rows: np.ndarray, reference: np.ndarray, nn_ref_sim: np.ndarray,
               ref_nn: np.ndarray) -> np.ndarray:
    """Authenticity (Alaa et al. 2022): a record's distance to its nearest reference record
    over that record's own distance to its nearest reference neighbour (NaN for reference
    rows). Against the reference only, a held-out record is judged exactly like a synthetic
    one (it could not be anyone's neighbour), so the hold-out gives the null distribution."""
    gap = np.full(n, np.nan)
    gap[rows] = 1.0 - nn_ref_sim          # on reference rows: to the nearest *other* one
    own = gap[np.maximum(ref_nn, 0)]
    closeness = np.where(own > 1e-6, gap / np.maximum(own, 1e-6),
                         np.where(gap > 1e-6, np.inf, 0.0))
    closeness[reference | (ref_nn < 0)] = np.nan
    return closeness


def _reject_copies(table: pd.DataFrame, synth: np.ndarray, nn_sim: np.ndarray,
                   nn_row: np.ndarray, closeness: np.ndarray, ref_nn: np.ndarray,
                   thresholds: dict[str, float], cfg) -> dict[str, int]:
    """Paraphrased copies: too similar to a real record, or too close to one relative to
    how close real records sit to it. `dup_of` names the copied real record."""
    sim_cut = thresholds["copies_real_similarity"]
    close_cut = thresholds["copies_real_closeness"]
    by_sim = synth & (nn_sim > sim_cut)
    by_closeness = synth & ~by_sim & (closeness < close_cut)
    copied = np.where(by_sim, nn_row, ref_nn)
    ids = table["id"].tolist()
    dup_of = table["dup_of"].to_numpy(copy=True)
    copies = by_sim | by_closeness
    dup_of[copies] = [ids[r] for r in copied[copies]]
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    reject(table, by_sim, Reason.COPIES_REAL,
           [f"paraphrase of real record {ids[copied[i]]}: cosine {nn_sim[i]:.3f} > "
            f"{sim_cut:.3f}, the {cfg.copy_quantile:g} quantile of real records' "
            f"nearest-real similarity" for i in np.flatnonzero(by_sim)])
    reject(table, by_closeness, Reason.COPIES_REAL,
           [f"paraphrase of real record {ids[copied[i]]}: {closeness[i]:.3f} of that record's "
            f"own nearest-real distance, below {close_cut:.3f}, the "
            f"{1 - cfg.copy_quantile:.3g} quantile of held-out real records' own"
            for i in np.flatnonzero(by_closeness)])
    return {"copies_real_similarity": int(by_sim.sum()),
            "copies_real_closeness": int(by_closeness.sum())}


def _reject_rewordings(table: pd.DataFrame, texts: list, emb: np.ndarray, real: np.ndarray,
                       synth: np.ndarray, cfg, details: dict) -> dict[str, int]:
    """Paraphrases of real records (`copies_real`), then reworded near-duplicates among the
    remaining synthetic records (`near_duplicate`, decided in input order against kept
    records only), by `rewording.RewordingTest` calibrated on the real records."""
    from .rewording import RewordingTest

    real_rows = np.flatnonzero(real)
    test = RewordingTest(cfg.copy_quantile, cfg.k).fit([texts[i] for i in real_rows],
                                                       emb[real_rows])
    ids = table["id"].tolist()
    dup_of = table["dup_of"].to_numpy(copy=True)
    sim = table["dup_similarity"].to_numpy(copy=True) if "dup_similarity" in table \
        else np.full(len(table), np.nan)
    how = table["dup_test"].to_numpy(dtype=object, copy=True) if "dup_test" in table \
        else np.full(len(table), None, dtype=object)

    def mark(rows: np.ndarray, matched: np.ndarray, m, reason: Reason, what: str) -> int:
        for r, j, c, w in zip(rows, matched, m.cosine[m.flagged], m.words[m.flagged]):
            dup_of[r], sim[r] = ids[j], c
        for r, t in zip(rows, [t for t in m.test if t is not None]):
            how[r] = t
        table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
        table["dup_similarity"], table["dup_test"] = sim, how
        return reject(table, np.isin(np.arange(len(table)), rows), reason,
                      [f"{what} {ids[j]}: cosine {c:.3f}, word overlap {w:.2f} ({t}; about "
                       f"1 in {1 / max(p, 1e-300):,.0f} real records come as close)"
                       for j, c, w, t, p in zip(matched, m.cosine[m.flagged],
                                                m.words[m.flagged],
                                                [t for t in m.test if t is not None],
                                                m.p[m.flagged])])

    rows = np.flatnonzero(synth & scorable(table))
    m = test.against([texts[i] for i in rows], emb[rows], [texts[i] for i in real_rows],
                     emb[real_rows])
    copies = mark(rows[m.flagged], real_rows[m.index[m.flagged]], m, Reason.COPIES_REAL,
                  "paraphrase of real record")
    rows = np.flatnonzero(synth & scorable(table))
    _, m = test.within_source([texts[i] for i in rows], emb[rows])
    near = mark(rows[m.flagged], rows[m.index[m.flagged]], m, Reason.NEAR_DUPLICATE,
                "rewords synthetic record")
    details["rewording"] = {"quantile": cfg.copy_quantile,
                            "cosine_alone_bar": round(float(test.cosine_bar_), 4),
                            "copies_real": copies, "near_duplicate": near}
    return {"copies_real_rewording": copies, "near_duplicate_rewording": near}


def _reject_off_distribution(table: pd.DataFrame, texts: list, emb: np.ndarray,
                             real: np.ndarray, synth: np.ndarray, cfg, seed: int,
                             details: dict) -> int:
    """`offdist.OffDistributionScorer` fitted on every embedded real record (cross-fitted),
    applied to the synthetic records still in the running; the signal that fired goes to
    `off_distribution_signal`."""
    from .offdist import OffDistributionScorer

    real_rows = np.flatnonzero(real)
    scorer = OffDistributionScorer(cfg.off_distribution_quantile, cfg.k, seed=seed).fit(
        [texts[i] for i in real_rows], emb[real_rows])
    rows = np.flatnonzero(synth & scorable(table))
    values = scorer.signal_values([texts[i] for i in rows], emb[rows])
    decided = scorer.decide(values)
    signal = np.full(len(table), None, dtype=object)
    signal[rows] = decided["signal"].to_numpy()
    table["off_distribution_signal"] = signal
    off = decided["off_distribution"].to_numpy()
    details["off_distribution_signals"] = {
        "quantile": cfg.off_distribution_quantile, "per_signal_level": scorer.level_,
        "thresholds": {k: round(float(v), 4) for k, v in scorer.thresholds_.items()},
        "fired": {k: int(v) for k, v in decided["signal"].value_counts().items()},
        "real_languages": scorer.language_.top_languages_,
        "distributions": {name: histogram(pair, bins=HISTOGRAM_BINS) for name, pair in
                          scorer.distributions(values).items()}}
    return reject(table, np.isin(np.arange(len(table)), rows[off]), Reason.OFF_DISTRIBUTION,
                  decided["explanation"].to_numpy()[off].tolist())


def run(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    cfg, seed = ctx.config.embed, ctx.config.seed
    n = len(table)
    texts = table["text"].tolist()
    embedded = scorable(table) & np.array([isinstance(t, str) for t in texts], dtype=bool)
    rows = np.flatnonzero(embedded)

    embedder = ctx.embedder
    if embedder is None:
        embedder = ModelEmbedder.from_config(cfg)
    vecs = embed_texts([texts[i] for i in rows], embedder, ctx)
    emb = np.zeros((n, vecs.shape[1] if len(rows) else 0), dtype=np.float32)
    emb[rows] = vecs
    ctx.artifacts["embeddings"] = emb
    ctx.artifacts["embedded"] = embedded

    details: dict[str, Any] = {"embedded": int(embedded.sum()), "dimensions": int(emb.shape[1])}
    if isinstance(embedder, ModelEmbedder):
        details.update(model=embedder.model or "all-MiniLM-L6-v2 (bundled)",
                       encoded=embedder.encoded, from_cache=embedder.cached)
    table["real_nn_sim"] = np.full(n, np.nan)
    table["distance_pctl"] = np.full(n, np.nan)
    table["cluster"] = pd.array([pd.NA] * n, dtype="Int64")

    real = is_real(table) & embedded
    holdout = holdout_mask(table, cfg.holdout_fraction, seed) & embedded
    reference = real & ~holdout
    ref_rows, hold_rows = np.flatnonzero(reference), np.flatnonzero(holdout)
    if len(hold_rows) < MIN_HOLDOUT or len(ref_rows) <= 2 * cfg.k:
        details["skipped"] = (f"too few real records to calibrate: {len(ref_rows)} reference "
                              f"and {len(hold_rows)} held out (need more than {2 * cfg.k} "
                              f"and at least {MIN_HOLDOUT})")
        # The gate cannot vouch for what it could not measure: say so as a failing check
        # rather than pass silently. A user who means it drops `embed` from --stages.
        check = Check("embed.calibrated", False, int(len(hold_rows)), MIN_HOLDOUT,
                      f"the embedding checks could not run: {details['skipped']}; add real "
                      f"records, or leave embed out of --stages to gate without them")
        return StageOutcome(details=details, checks=[check])

    k = cfg.k
    # Row position of each table row inside the reference / hold-out, for self-exclusion.
    pos_ref = np.full(n, -1, dtype=np.int64)
    pos_ref[ref_rows] = np.arange(len(ref_rows))
    pos_hold = np.full(n, -1, dtype=np.int64)
    pos_hold[hold_rows] = np.arange(len(hold_rows))

    ref_index = NeighbourIndex(emb[ref_rows])
    hold_index = NeighbourIndex(emb[hold_rows])
    ref_sims, ref_idx = ref_index.search(emb[rows], k, exclude=pos_ref[rows])
    hold_sims, hold_idx = hold_index.search(emb[rows], 1, exclude=pos_hold[rows])
    details["neighbour_search"] = "exact" if ref_index.use_exact(len(rows)) else "hnsw (usearch)"

    # k-NN distance to the reference (off-distribution), percentile among the hold-out's own.
    kdist = np.full(n, np.nan)
    kdist[rows] = 1.0 - ref_sims[:, k - 1]
    hold_kdist = np.sort(kdist[hold_rows])
    pctl = np.full(n, np.nan)
    pctl[rows] = 100.0 * np.searchsorted(hold_kdist, kdist[rows], side="right") / len(hold_kdist)
    table["distance_pctl"] = np.round(pctl, 2)

    # Nearest real record of every embedded record: the better of reference and hold-out.
    from_ref = ref_sims[:, 0] >= hold_sims[:, 0]
    nn_sim = np.full(n, np.nan)
    nn_row = np.full(n, -1, dtype=np.int64)
    nn_sim[rows] = np.where(from_ref, ref_sims[:, 0], hold_sims[:, 0])
    nn_row[rows] = np.where(from_ref, ref_rows[np.maximum(ref_idx[:, 0], 0)],
                            hold_rows[np.maximum(hold_idx[:, 0], 0)])
    table["real_nn_sim"] = np.round(nn_sim, 4)

    synth = is_synthetic(table) & embedded
    ref_nn = np.full(n, -1, dtype=np.int64)
    ref_nn[rows] = ref_rows[np.maximum(ref_idx[:, 0], 0)]
    closeness = _closeness(n, rows, reference, ref_sims[:, 0], ref_nn)
    thresholds = {
        "off_distribution_knn_distance": _quantile(hold_kdist, cfg.off_distribution_quantile),
        "copies_real_similarity": _quantile(nn_sim[hold_rows], cfg.copy_quantile),
        "copies_real_closeness": _quantile(closeness[hold_rows], 1.0 - cfg.copy_quantile)}
    if cfg.rewording:
        rejected = _reject_rewordings(table, texts, emb, real, synth, cfg, details)
    else:
        rejected = _reject_copies(table, synth, nn_sim, nn_row, closeness, ref_nn,
                                  thresholds, cfg)
    if cfg.signals:
        rejected["off_distribution"] = _reject_off_distribution(table, texts, emb, real, synth,
                                                                cfg, seed, details)
    else:
        off = synth & scorable(table) & (kdist > thresholds["off_distribution_knn_distance"])
        rejected["off_distribution"] = reject(
            table, off, Reason.OFF_DISTRIBUTION,
            [f"k-NN distance {kdist[i]:.3f} to real > "
             f"{thresholds['off_distribution_knn_distance']:.3f}, the "
             f"{cfg.off_distribution_quantile:g} quantile of held-out real records' own"
             for i in np.flatnonzero(off)])

    clusters = fit_real_clusters(emb[ref_rows], seed)
    cluster = np.full(n, np.nan)
    cluster[rows] = assign_clusters(emb[rows], clusters["centroids"])
    table["cluster"] = pd.array(cluster, dtype="Int64")          # NaN -> <NA>
    ctx.artifacts["real_clusters"] = clusters

    state = _State(reference=RealReference(emb[ref_rows], k, self_sims=ref_sims[reference[rows]]),
                   holdout_rows=hold_rows, clusters=clusters, texts=texts)
    ctx.artifacts["embed_state"] = state

    rare = clusters["rare"]
    details.update({
        "real_reference": len(ref_rows), "real_holdout": len(hold_rows),
        "thresholds": {name: round(value, 4) for name, value in thresholds.items()},
        "rejected": rejected,
        "knn_distance": histogram({"real hold-out": kdist[hold_rows],
                                   "synthetic": kdist[synth]}, bins=HISTOGRAM_BINS),
        "nearest_real_similarity": histogram({"real hold-out": nn_sim[hold_rows],
                                              "synthetic": nn_sim[synth]}, bins=HISTOGRAM_BINS),
    })
    state.tails = {"clusters": len(clusters["sizes"]), "rare_clusters": len(rare)}
    metrics: dict[str, Any] = {"tails": state.tails}
    synth_rows = np.flatnonzero(synth)
    if len(synth_rows):
        measured, base, size = _measure(state, emb, synth_rows, seed)
        metrics["fidelity"] = _fidelity_report(measured, base, size)
        state.tails["rare_coverage_in"] = round(measured["rare_coverage"], 4)
        state.tails["rare_coverage_real_holdout"] = round(base["rare_coverage"], 4)
    return StageOutcome(details=details, metrics=metrics)


def _collapse_checks(cfg, kept: dict, base: dict, size: int) -> list[Check]:
    """Each collapse sign of the kept synthetic set against the real hold-out, same size."""
    checks = []
    for name, what, ratio in (
            ("embed.recall", "recall", cfg.min_recall_ratio),
            ("embed.coverage", "coverage", cfg.min_coverage_ratio),
            ("embed.rare_coverage", "rare-cluster coverage", cfg.min_rare_coverage_ratio),
            ("embed.vendi", "Vendi score", cfg.min_vendi_ratio),
            ("embed.distinct_2", "distinct-2", cfg.min_distinct_ratio)):
        key = name.split(".", 1)[1]
        observed, reference = kept.get(key), base.get(key)
        if observed is None or reference is None or not np.isfinite(reference):
            continue
        fell = 1.0 - observed / reference if reference else 0.0
        checks.append(at_least(
            name, round(observed, 4), round(ratio * reference, 4), f"{what} of kept synthetic",
            f"{ratio:g} × real hold-out {reference:.4g}; "
            + (f"{fell:.0%} below the hold-out" if fell > 0 else "not below the hold-out")
            + f"; both on {size} records"))
    return checks


def finalize(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Measures the kept synthetic set (after the share cap) and gates it for collapse."""
    state: _State | None = ctx.artifacts.get("embed_state")
    if state is None:
        return StageOutcome()
    cfg, seed = ctx.config.embed, ctx.config.seed
    emb, embedded = ctx.artifacts["embeddings"], ctx.artifacts["embedded"]
    synth = is_synthetic(table) & embedded
    kept_rows = np.flatnonzero(synth & table["kept"].to_numpy())
    metrics: dict[str, Any] = {"tails": state.tails}
    checks: list[Check] = []
    details: dict[str, Any] = {}
    if len(kept_rows):
        measured, base, size = _measure(state, emb, kept_rows, seed)
        metrics["fidelity_kept"] = _fidelity_report(measured, base, size)
        state.tails["rare_coverage_kept"] = round(measured["rare_coverage"], 4)
        if size >= MIN_GATED_SAMPLE:
            checks = _collapse_checks(cfg, measured, base, size)
        else:
            details["collapse_checks"] = (f"not gated: {size} kept synthetic records, fewer "
                                          f"than {MIN_GATED_SAMPLE}")
    elif synth.any():
        state.tails["rare_coverage_kept"] = 0.0     # synthetic records came, none was kept

    # Vendi of the three sets at one common size, so the three rows of the table compare.
    sets = {"real": np.flatnonzero(is_real(table) & embedded), "synthetic_in": np.flatnonzero(synth),
            "synthetic_kept": kept_rows}
    sized = [len(r) for r in sets.values() if len(r) >= MIN_GATED_SAMPLE]
    common = min(sized + [METRIC_SAMPLE])
    for name, rows in sets.items():
        if len(rows) >= 2:
            metrics[name] = {"vendi": round(vendi(emb[_sample_rows(rows, common, seed)]), 4)}
    details["vendi_sample_size"] = common

    details["rare_clusters"] = _rare_cluster_table(table, state, kept_rows, synth)
    return StageOutcome(details=details, metrics=metrics, checks=checks)


def _rare_cluster_table(table: pd.DataFrame, state: _State, kept_rows: np.ndarray,
                        synth: np.ndarray) -> list[dict]:
    """One row per rare cluster: its real size and how many synthetic records reach it."""
    cluster = table["cluster"].to_numpy(dtype=np.int64, na_value=-1)
    k = len(state.clusters["sizes"])
    synth_in = np.bincount(cluster[synth & (cluster >= 0)], minlength=k)
    synth_kept = np.bincount(cluster[kept_rows], minlength=k)
    texts = state.texts
    ref_rows = np.setdiff1d(np.flatnonzero(is_real(table) & (cluster >= 0)), state.holdout_rows)
    rows = []
    for c in state.clusters["rare"]:
        members = ref_rows[cluster[ref_rows] == c]
        example = texts[members[0]] if len(members) else ""
        rows.append({"cluster": c, "real": int(state.clusters["sizes"][c]),
                     "synthetic_in": int(synth_in[c]), "synthetic_kept": int(synth_kept[c]),
                     "example": example[:120]})
    return rows
