"""Dataset diversity metrics that need no model: compression ratio, distinct-n, length.

A synthetic set that repeats itself compresses better and has fewer distinct n-grams than the
real data; these are the cheap, model-free signs of collapse (DESIGN.md §6). `vendi`, which
needs embeddings, is added by the embedding stage.

Cost: a set of more than `SAMPLE_WORDS` words is measured on a seeded sample of whole records
holding about that many words (records drawn in a seeded random order until the budget is
reached). Distinct-n and the compression ratio depend on how much text they see, so a fixed
word budget keeps sets of short and long records, and runs of any size, comparable; the mean
length of the sample estimates `mean_words` (within about 1-2% at this budget). n-grams are
counted as integer ids (each word, then each n-gram, numbered by a hash table in pandas), so
a set costs a few tens of milliseconds, not a Python tuple per n-gram.
"""

from __future__ import annotations

import zlib
from itertools import chain
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .records import ColumnRows
from .text import words

# Words of text measured per set; a set with fewer is measured whole.
SAMPLE_WORDS = 50_000


def sample_words(texts: Sequence[str], seed: int = 0, budget: int = SAMPLE_WORDS
                 ) -> tuple[list[str], list[list[str]]]:
    """Whole records drawn in a seeded random order until they hold `budget` words (all of
    them when the set is smaller), in their original order: (texts, their words)."""
    n = len(texts)
    order = np.random.default_rng(seed).permutation(n) if n else np.zeros(0, np.int64)
    chosen, held = [], 0
    for i in order:
        if held >= budget:
            break
        chosen.append(int(i))
        held += len(texts[i].split())   # whitespace words: close enough for a budget
    chosen.sort()
    picked = [texts[i] for i in chosen]
    return picked, [words(t) for t in picked]


def distinct_ns(token_lists: Iterable[list[str]], ns: Sequence[int]) -> dict[int, float]:
    """Distinct n-grams over all n-grams (Li et al. 2016) for each n in `ns`, n-grams taken
    within each record. Exact: every word gets a dense id, then every (k+1)-gram the dense id
    of the pair (its k-gram's id, its last word's id), so n-grams are compared whole."""
    token_lists = list(token_lists)
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64,
                          count=len(token_lists))
    total_tokens = int(lengths.sum())
    out = {n: 0.0 for n in ns}
    if total_tokens == 0:
        return out
    ids, vocab = pd.factorize(np.fromiter(chain.from_iterable(token_lists), dtype=object,
                                          count=total_tokens))
    ids = ids.astype(np.int64)
    # Words left in the record from each position on (itself included).
    ends = np.repeat(np.cumsum(lengths), lengths)
    remaining = ends - np.arange(total_tokens)
    width = max(1, len(vocab))
    grams = ids                              # grams[j]: id of the k-gram starting at j
    for k in range(1, max(ns) + 1):
        if k > 1:
            # Dense ids are < total_tokens and word ids < width, so the key fits in int64.
            grams, _ = pd.factorize(grams[:-1] * width + ids[k - 1:])
            grams = grams.astype(np.int64)
        if k in out:
            valid = remaining[:len(grams)] >= k
            count = int(valid.sum())
            out[k] = len(pd.unique(grams[valid])) / count if count else 0.0
        if len(grams) <= 1:
            break
    return out


def distinct_n(token_lists: Iterable[list[str]], n: int) -> float:
    """Distinct n-grams over all n-grams (Li et al. 2016)."""
    return distinct_ns(token_lists, (n,))[n]


def compression_ratio(texts: list[str]) -> float:
    """Raw bytes over zlib-compressed bytes of the concatenated texts: higher = more repetitive."""
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return 0.0
    # Level 6 (zlib's default) ranks sets like level 9 at a sixth of the time.
    return len(raw) / len(zlib.compress(raw, 6))


def diversity(texts: list, seed: int = 0) -> dict[str, float]:
    """DIVERSITY of report.json, less `vendi`, on at most about SAMPLE_WORDS words.
    `texts`: strings (a list, or `ColumnRows` of a column's text rows)."""
    if not isinstance(texts, ColumnRows):
        texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        return {"records": 0}
    sample, tokens = sample_words(texts, seed)
    distinct = distinct_ns(tokens, (1, 2, 4))
    return {
        "records": len(texts),
        "compression_ratio": round(compression_ratio(sample), 4),
        "distinct_1": round(distinct[1], 4),
        "distinct_2": round(distinct[2], 4),
        "distinct_4": round(distinct[4], 4),
        "mean_words": round(float(np.mean([len(t) for t in tokens])), 2),
    }
