"""The repetition signal: the Gopher repetition statistics (Rae et al. 2021) with the
datatrove limits, each raised to what the real records reach: duplicate lines, the top
2/3/4-gram and the duplicated 5..10-gram character fractions. The signal is the statistic
furthest over its limit, as statistic / limit: a generator's loop, not a song's refrain."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .calibration import Signal
from .tokens import Tokens, cover, group_within_docs, ngram_hashes, per_doc_sum

# The datatrove GopherRepetitionFilter defaults: a record whose fraction is above the limit
# is repetitive. Top n-gram: characters of the most repeated n-gram times its count.
# Duplicated n-gram: characters inside n-grams that occur earlier in the same record.
TOP_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
GOPHER_LIMITS = {"duplicate lines": 0.30,             # share of lines repeating an earlier one
                 "duplicate line characters": 0.20,   # share of characters in such lines
                 **{f"top {n}-gram": v for n, v in TOP_NGRAM_LIMITS.items()},
                 **{f"duplicated {n}-grams": v for n, v in DUP_NGRAM_LIMITS.items()}}


class RepetitionSignal(Signal):
    """The Gopher statistic furthest over its limit, as statistic / limit
    (`repetition_limits_`: each limit, raised to the real records' `quantile`)."""

    name = "repetition"
    raw = "repetition_ratio"

    def __init__(self, quantile: float = 0.99):
        self.quantile = quantile

    def counts(self, tokens: Tokens, texts: list[str], real: bool) -> pd.DataFrame | None:
        """The statistics of each real record (the limits are learned from them)."""
        return repetition(texts, tokens) if real else None

    def learn(self, real: list, synthetic: list, n_real: int, n_synthetic: int,
              synthetic_texts: list[str]) -> None:
        """Each Gopher statistic's limit, raised to what the real records themselves reach
        (their `quantile`): song lyrics with a refrain or forms with repeated lines are the
        real style then, not a generator's loop. The limits put the statistics on one scale;
        the repetition signal is then calibrated on the real records like the others."""
        stats = pd.concat(real, ignore_index=True) if real else None
        self.repetition_limits_ = {
            name: max(limit, float(np.quantile(stats[name], self.quantile))
                      if stats is not None and len(stats) else 0)
            for name, limit in GOPHER_LIMITS.items()}

    def worst(self, texts: list[str], tokens: Tokens
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ratio, kind, value): the repetition statistic furthest over its limit."""
        stats = repetition(texts, tokens)
        names = list(stats.columns)
        ratios = stats.to_numpy() / np.array([self.repetition_limits_[k] for k in names])
        worst = ratios.argmax(axis=1) if len(stats) else np.zeros(0, dtype=int)
        rows = np.arange(len(stats))
        return (ratios[rows, worst], np.asarray(names, dtype=object)[worst],
                stats.to_numpy()[rows, worst])

    def raw_values(self, tokens: Tokens, texts: list[str], held_in: str | None
                   ) -> dict[str, np.ndarray]:
        ratio, kind, _ = self.worst(texts, tokens)
        return {"repetition_ratio": ratio, "repetition_kind": kind}


def repetition(texts: Sequence[str], tokens: Tokens) -> pd.DataFrame:
    """The Gopher repetition statistics of each text, one column each, as fractions of the
    text's characters (lines: of its lines). GOPHER_LIMITS holds their datatrove limits."""
    n_docs = tokens.n_docs
    text_chars = np.fromiter(map(len, texts), dtype=float, count=len(texts))
    text_chars[text_chars == 0] = 1
    stats: dict[str, np.ndarray] = {}
    stats["duplicate lines"], stats["duplicate line characters"] = duplicate_lines(texts)
    total = len(tokens.hash)
    cum_chars = np.concatenate([[0], np.cumsum(tokens.chars)])
    for n in sorted({*TOP_NGRAM_LIMITS, *DUP_NGRAM_LIMITS}):
        g, fits = ngram_hashes(tokens, n)
        pos, first = group_within_docs(tokens, g, fits)
        if n in TOP_NGRAM_LIMITS:
            # characters of the most repeated n-gram (with spaces) times its count
            count = np.bincount(np.cumsum(first) - 1)
            lead = pos[first]
            chars = cum_chars[lead + n] - cum_chars[lead] + (n - 1)
            weight = np.where(count >= 2, count * chars, 0).astype(float)
            top = np.zeros(n_docs)
            np.maximum.at(top, tokens.doc[lead], weight)
            stats[f"top {n}-gram"] = top / text_chars
        if n in DUP_NGRAM_LIMITS:
            # characters of the words inside n-grams seen earlier in the same record
            repeated = cover(total, pos[~first], n)
            stats[f"duplicated {n}-grams"] = per_doc_sum(tokens, repeated * tokens.chars) \
                / text_chars
    return pd.DataFrame(stats)


def duplicate_lines(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(share of lines that repeat an earlier line, share of characters in them) per text."""
    frac = np.zeros(len(texts))
    char_frac = np.zeros(len(texts))
    for i, text in enumerate(texts):
        if "\n" not in text:     # one line cannot repeat: the common case costs nothing
            continue
        seen: set[str] = set()
        lines = dup = dup_chars = 0
        for line in text.split("\n"):
            line = line.strip()
            if not line:
                continue
            lines += 1
            if line in seen:
                dup += 1
                dup_chars += len(line)
            else:
                seen.add(line)
        frac[i] = dup / lines if lines else 0.0
        char_frac[i] = dup_chars / len(text)
    return frac, char_frac


