"""Dataset diversity metrics that need no model: compression ratio, distinct-n, length.

A synthetic set that repeats itself compresses better and has fewer distinct n-grams than the
real data; these are the cheap, model-free signs of collapse (DESIGN.md §6). `vendi`, which
needs embeddings, is added by the embedding stage.
"""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np

from .text import count_words, words

# Compression and distinct-n are computed on a fixed-size sample: they are ratios, stable
# from a few thousand records on, and the sample keeps them O(1) on millions.
SAMPLE = 5000


def _sample(texts: list[str], seed: int = 0) -> list[str]:
    if len(texts) <= SAMPLE:
        return texts
    rng = np.random.default_rng(seed)
    return [texts[i] for i in np.sort(rng.choice(len(texts), SAMPLE, replace=False))]


def distinct_n(token_lists: Iterable[list[str]], n: int) -> float:
    """Distinct n-grams over all n-grams (Li et al. 2016)."""
    total, seen = 0, set()
    for toks in token_lists:
        grams = list(zip(*(toks[i:] for i in range(n))))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def compression_ratio(texts: list[str]) -> float:
    """Raw bytes over zlib-compressed bytes of the concatenated texts: higher = more repetitive."""
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return 0.0
    # Level 6 (zlib's default) ranks sets like level 9 at a sixth of the time.
    return len(raw) / len(zlib.compress(raw, 6))


def diversity(texts: list[str], seed: int = 0, word_counts: np.ndarray | None = None
              ) -> dict[str, float]:
    """DIVERSITY of report.json, less `vendi`. `word_counts` (one per text) spares a second
    split of every text when the caller measures several overlapping sets."""
    if word_counts is None:
        word_counts = np.array([count_words(t) if isinstance(t, str) else 0 for t in texts])
    strings = [isinstance(t, str) for t in texts]
    texts = [t for t, ok in zip(texts, strings) if ok]
    word_counts = np.asarray(word_counts)[np.asarray(strings, dtype=bool)] if texts else []
    if not texts:
        return {"records": 0}
    sample = _sample(texts, seed)
    tokens = [words(t) for t in sample]
    return {
        "records": len(texts),
        "compression_ratio": round(compression_ratio(sample), 4),
        "distinct_1": round(distinct_n(tokens, 1), 4),
        "distinct_2": round(distinct_n(tokens, 2), 4),
        "distinct_4": round(distinct_n(tokens, 4), 4),
        "mean_words": round(float(np.mean(word_counts)), 2),
    }
