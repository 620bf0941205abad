"""Set metrics in embedding space: how a set of synthetic records sits against the real data.

Every figure is read beside the same figure for the real hold-out at the same sample size
(DESIGN.md section 5), so "coverage 0.61" reads against "real hold-out 0.95":

    fidelity    precision, recall, density, coverage (Naeem et al. 2020, k-NN balls around
                the reference) and the Frechet distance
    tails       k-means on the reference; the smallest clusters holding ~10% of it are the
                rare ones; how many of them a set reaches
    vendi       the Vendi score (exp of the entropy of the similarity spectrum)
    distinct_2  distinct word 2-grams, the model-free sign of a set repeating itself

`SetMeter` measures any set of rows against one reference and caches the hold-out baselines
per sample size; the plain functions `fidelity`, `vendi`, `frechet`, `fit_real_clusters`,
`assign_clusters` and `rare_coverage` take embeddings only, for benchmarks and other stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .diversity import distinct_n
from .neighbours import BLOCK_FLOATS, NeighbourIndex, batches, unit_rows
from .text import words

# Rare clusters: the smallest clusters that together hold about this share of the reference.
RARE_SHARE = 0.10
MAX_CLUSTERS = 256
# k-means is fitted on at most this many reference records, then every record is assigned.
CLUSTER_FIT_SAMPLE = 20_000
CLUSTER_SEED_SAMPLE = 5_000
# Vendi and fidelity are compared at equal sizes, and computed on at most this many records.
METRIC_SAMPLE = 20_000
FIDELITY_KEYS = ("precision", "recall", "density", "coverage", "frechet")


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


@dataclass
class RealClusters:
    """k-means clusters of the real reference."""

    centroids: np.ndarray   # (k, d) float32
    sizes: np.ndarray       # real records per cluster
    rare: list[int]         # sorted ids of the smallest clusters holding ~10% of the records


def fit_real_clusters(real_emb: np.ndarray, seed: int = 0) -> RealClusters:
    """k-means on the real embeddings, with the rare clusters marked."""
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
    return RealClusters(centroids=centroids, sizes=sizes, rare=rare_clusters(sizes))


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


# ----------------------------------------------------------------------------- a set beside the hold-out

def sample_rows(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded sample of `size` of `rows`, sorted (all of them when there are no more)."""
    if len(rows) <= size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


def distinct_2(texts: list) -> float:
    return distinct_n([words(t) for t in texts if isinstance(t, str)], 2)


def rounded(metrics: dict, keys=None) -> dict:
    keys = keys or metrics.keys()
    return {k: round(float(metrics[k]), 4) for k in keys if k in metrics}


@dataclass
class SetMeter:
    """Measures sets of records against the real reference, each beside the real hold-out at
    the same sample size (the hold-out's figures are computed once per size)."""

    reference: RealReference
    holdout_rows: np.ndarray
    clusters: RealClusters
    vectors: np.ndarray        # every record's vector (rows index it)
    texts: list                # every record's text, for distinct-2
    seed: int = 0
    baselines: dict[int, dict] = field(default_factory=dict)
    holdout_spread: dict[tuple, list] = field(default_factory=dict)

    def metrics(self, rows: np.ndarray, size: int) -> dict[str, float]:
        """Fidelity, rare coverage, Vendi and distinct-2 of `rows` on a seeded sample of
        `size`."""
        sample = sample_rows(rows, size, self.seed)
        out = self.reference.fidelity(self.vectors[sample])
        out["rare_coverage"] = rare_coverage(self.vectors[rows], self.clusters.centroids,
                                             self.clusters.rare, sample_size=size)
        out["vendi"] = vendi(self.vectors[sample])
        out["distinct_2"] = distinct_2([self.texts[i] for i in sample])
        return out

    def subsamples(self, rows: np.ndarray, size: int, count: int, seed: int
                   ) -> list[dict[str, float]]:
        """The metrics of `count` seeded subsamples of `size` of `rows`, drawn without
        replacement (a duplicated point would sit in its own k-NN ball). The spread of a set's
        metric over its subsamples is the sampling noise an interval must allow for."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(count):
            sample = np.sort(rng.choice(rows, size, replace=False)) if size < len(rows) \
                else rows
            metrics = self.reference.fidelity(self.vectors[sample])
            metrics["rare_coverage"] = rare_coverage(self.vectors[sample],
                                                     self.clusters.centroids, self.clusters.rare)
            metrics["vendi"] = vendi(self.vectors[sample])
            metrics["distinct_2"] = distinct_2([self.texts[i] for i in sample])
            out.append(metrics)
        return out

    def holdout_subsamples(self, size: int, count: int) -> list[dict[str, float]]:
        """`subsamples` of the real hold-out (computed once per size)."""
        key = (size, count)
        if key not in self.holdout_spread:
            self.holdout_spread[key] = self.subsamples(self.holdout_rows, size, count,
                                                       self.seed)
        return self.holdout_spread[key]

    def baseline(self, size: int) -> dict[str, float]:
        """The same metrics for the real hold-out at `size`."""
        if size not in self.baselines:
            self.baselines[size] = self.metrics(self.holdout_rows, size)
        return self.baselines[size]

    def measure(self, rows: np.ndarray) -> tuple[dict, dict, int]:
        """(metrics of `rows`, metrics of the hold-out, the size both were measured at: the
        smaller of the two sets, at most METRIC_SAMPLE)."""
        size = min(len(rows), len(self.holdout_rows), METRIC_SAMPLE)
        return self.metrics(rows, size), self.baseline(size), size

    @staticmethod
    def fidelity_report(synth: dict, base: dict, size: int) -> dict:
        """report.json's fidelity block: the set's figures, the sample size and the hold-out's."""
        out = rounded(synth, FIDELITY_KEYS)
        out["sample_size"] = size
        out["real_holdout"] = rounded(base, FIDELITY_KEYS)
        return out
