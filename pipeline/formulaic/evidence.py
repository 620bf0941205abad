"""The statistics that say an n-gram is a template: smoothed log-odds (Monroe et al. 2008),
Fisher's exact test, and the Benjamini-Hochberg bar over many such tests."""

from __future__ import annotations

import math

import numpy as np


def log_odds(y_s: np.ndarray, n_s: int, y_r: np.ndarray, n_r: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(delta, z, ratio) of document counts y_s of n_s synthetic vs y_r of n_r real records.

    Monroe et al. 2008 §3.5: the log-odds ratio with an informative Dirichlet prior, here on
    document frequencies. The prior is the mean of the two sets' rates, worth as many
    documents as the smaller set, so neither set's size dominates it; z divides by the
    estimate's standard deviation, so a phrase seen in 3 records is not a template however
    rare it is in the real set. `ratio` is the smoothed rate ratio (the effect size).
    """
    y_s = np.asarray(y_s, dtype=float)
    y_r = np.asarray(y_r, dtype=float)
    prior = float(min(n_s, n_r))
    alpha = prior * (y_s / n_s + y_r / n_r) / 2
    tiny = 1e-9
    in_s, out_s = y_s + alpha, np.maximum(n_s + prior - y_s - alpha, tiny)
    in_r, out_r = y_r + alpha, np.maximum(n_r + prior - y_r - alpha, tiny)
    delta = np.log(in_s / out_s) - np.log(in_r / out_r)
    z = delta / np.sqrt(1 / in_s + 1 / out_s + 1 / in_r + 1 / out_r)
    ratio = (in_s / (n_s + prior)) / (in_r / (n_r + prior))
    return delta, z, ratio


def log_factorials(n: int) -> np.ndarray:
    """log k! for k = 0..n."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))])


def _log_hypergeom_pmf(x, k, n_s, total, lf):
    """log P(X = x): x of the k records holding an n-gram fall among the n_s synthetic ones
    of `total` records, when the synthetic labels are drawn at random."""
    def log_binom(n, r):
        return lf[n] - lf[r] - lf[n - r]
    return log_binom(k, x) + log_binom(total - k, n_s - x) - log_binom(total, n_s)


def fisher_log_p(y_s: np.ndarray, n_s: int, y_r: np.ndarray, n_r: int,
                 lf: np.ndarray | None = None, stop_above: float = 1.0) -> np.ndarray:
    """log of Fisher's exact one-sided p-value that an n-gram in y_s of n_s synthetic and y_r
    of n_r real records is over-represented in the synthetic ones: P(X >= y_s) under random
    labels (hypergeometric). An n-gram no real record holds, in y_s synthetic ones, gets about
    (n_s / (n_s + n_r)) ** y_s: absence is informative when the real set is large.

    The tail is summed term by term until it converges; where it passes `stop_above` the sum
    stops there (the value is then only known to be above it), which keeps the work on the
    n-grams that can matter.
    """
    y_s = np.asarray(y_s, dtype=np.int64)
    y_r = np.asarray(y_r, dtype=np.int64)
    total = n_s + n_r
    if lf is None or len(lf) <= total:
        lf = log_factorials(total)
    out = np.zeros(len(y_s))
    k = y_s + y_r
    # at or under the expected count the p-value is near or above 1/2: leave it at 1
    todo = np.flatnonzero((y_s * total > k * n_s) & (y_s > 0))
    if len(todo) == 0 or n_s <= 0 or n_r <= 0:
        return out
    x, kk = y_s[todo], k[todo]
    top = np.minimum(kk, n_s)
    acc = _log_hypergeom_pmf(x, kk, n_s, total, lf)
    log_stop = math.log(stop_above)
    live = np.flatnonzero((x < top) & (acc < log_stop))
    step = 1
    while len(live):
        term = _log_hypergeom_pmf(x[live] + step, kk[live], n_s, total, lf)
        acc[live] = np.logaddexp(acc[live], term)
        # the terms fall geometrically past the mode: stop once they no longer move the sum
        keep = (x[live] + step < top[live]) & (term > acc[live] - 35) & (acc[live] < log_stop)
        live = live[keep]
        step += 1
    out[todo] = np.minimum(acc, 0.0)
    return out


def fisher_log_p_min(y_s: np.ndarray, n_s: int, y_r: np.ndarray, n_r: int,
                     lf: np.ndarray) -> np.ndarray:
    """The smallest log p-value the n-gram's total count allows: all of its records
    synthetic. A count that cannot reach the bar even then is not a test worth counting."""
    k = np.asarray(y_s, dtype=np.int64) + np.asarray(y_r, dtype=np.int64)
    x = np.minimum(k, n_s)
    return _log_hypergeom_pmf(x, k, n_s, n_s + n_r, lf)


def benjamini_hochberg(log_p: np.ndarray, alpha: float) -> float:
    """The log p-value at or under which the Benjamini-Hochberg procedure at false discovery
    rate `alpha` rejects (-inf when it rejects nothing)."""
    m = len(log_p)
    if m == 0 or alpha <= 0:
        return -math.inf
    ordered = np.sort(log_p)
    bars = math.log(alpha) + np.log(np.arange(1, m + 1) / m)
    passed = np.flatnonzero(ordered <= bars)
    return float(ordered[passed[-1]]) if len(passed) else -math.inf
