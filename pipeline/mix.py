"""Mix stage: cap the synthetic share of the output, exactly.

The cap is met by integer counting, never by float comparison: with R real records kept and
cap X, at most floor(X * R / (1 - X)) synthetic records may stay, the largest S with
S / (R + S) <= X.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from .records import Reason, is_real, is_synthetic, reject
from .stage import RunContext, StageOutcome


def synthetic_budget(n_real: int, cap: float) -> int | None:
    """Largest number of synthetic records with share <= cap; None when there is no limit."""
    x = Fraction(cap).limit_denominator(10**9)
    if x >= 1:
        return None
    if x <= 0:
        return 0
    return int((x * n_real) // (1 - x))


def select_random(candidates: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """The fallback rule: a seeded uniform sample, which keeps the input's distribution in
    expectation (a top-score rule would concentrate the output on the common modes)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=budget, replace=False))


def run(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    cfg = ctx.config
    kept = table["kept"].to_numpy()
    n_real = int((kept & is_real(table)).sum())
    candidates = np.flatnonzero(kept & is_synthetic(table))
    budget = synthetic_budget(n_real, cfg.max_synthetic_share)
    details = {"cap": cfg.max_synthetic_share, "real_kept": n_real,
               "synthetic_candidates": int(len(candidates)),
               "budget": budget if budget is not None else int(len(candidates)),
               "rule": "none needed"}
    if budget is not None and len(candidates) > budget:
        chosen = select_random(candidates, budget, cfg.seed)
        drop = np.zeros(len(table), dtype=bool)
        drop[candidates] = True
        drop[chosen] = False
        reject(table, drop, Reason.SHARE_CAP,
               f"share cap: {budget} of {len(candidates)} acceptable synthetic records fit "
               f"under {cfg.max_synthetic_share:g} beside {n_real} real")
        details["rule"] = "seeded uniform sample"
    return StageOutcome(details=details)
