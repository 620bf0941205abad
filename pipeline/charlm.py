"""A character n-gram language model of the real records: how surprising a text is to them.

CCNet (Wenzek et al. 2019) ranks web text by the perplexity of a language model fitted on a
reference corpus: text like the reference scores low, boilerplate, gibberish, code and other
languages score high. Here the reference is the run's own real records and the model is a
character n-gram model with interpolated Witten-Bell smoothing (Witten & Bell 1991; Chen &
Goodman 1998 compare it with Kneser-Ney: close on characters, and it needs no discount
estimation), so it needs no tokenizer and works for any script.

    p(c | h) = (C(h c) + T(h) * p(c | h')) / (C(h) + T(h))

h' is h without its first character, C counts, T(h) the number of distinct characters seen
after h; the recursion ends in the add-one unigram over the characters seen (plus one slot for
every unseen character). The score of a text is its cross-entropy in bits per character
(log2 perplexity), so long and short texts read on one scale.

Everything is numpy over one stream of code points: n-gram keys are 64-bit polynomial hashes
(a collision, about 2**-64 per pair, can only add counts), counted with `np.unique`, looked up
with `np.searchsorted`. Texts are lower-cased and every digit counts as 0 (CCNet does the
same) so that numbers do not look like new words; texts are separated by `order - 1` boundary
marks, so no n-gram spans two texts and every text starts in the same context.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .minhash import fmix64
from .text import normalize

_BOUNDARY = 2            # code point U+0002 marks text starts: never in normalized text
_MULT = np.uint64(0x9E3779B97F4A7C15)
_U64 = np.uint64
# Code points of the digits 1-9 of every script map to 0 (see `_codepoints`).
_FIT_CHARS = 20_000_000  # fit on at most this many characters (a seeded sample of texts)
# Texts are scored in runs of about this many characters: each run's arrays are a few dozen
# bytes a character, so scoring 50,000 records at once held several GiB.
_SCORE_CHARS = 1_000_000


def _codepoints(texts: Sequence[str], pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stream, starts, lengths): every text's code points after `pad` boundary marks, one
    stream; the position of each text's first character and its length in characters."""
    norm = [normalize(t) if isinstance(t, str) else "" for t in texts]
    lengths = np.fromiter((len(t) for t in norm), dtype=np.int64, count=len(norm))
    joined = ("\x02" * pad).join([""] + norm)
    stream = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    # digits of any script -> '0': str.isdigit on the few distinct code points only
    distinct = np.unique(stream)
    digits = distinct[[chr(c).isdigit() for c in distinct.tolist()]]
    stream[np.isin(stream, digits)] = ord("0")
    starts = pad * np.arange(1, len(norm) + 1) + np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return stream, starts, lengths


def _gram_keys(stream: np.ndarray, order: int) -> Iterator[tuple[int, np.ndarray]]:
    """(k, keys) for k = 1 .. order: keys[i] = hash of stream[i - k + 1 .. i] (positions
    before k - 1 are junk). One order at a time, rolled from the one before, so that the
    keys of two orders (and the rolling hash) are alive at once, not of every order (a fit
    streams up to 20M characters)."""
    h = np.zeros(len(stream), dtype=np.uint64)
    for j in range(order):
        shifted = np.zeros(len(stream), dtype=np.uint64)
        shifted[j:] = stream[:len(stream) - j].astype(np.uint64) + _U64(1)
        h = h * _MULT + shifted                       # wraps mod 2**64, as intended
        del shifted
        yield j + 1, fmix64(h ^ _U64(j + 1))


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values of the queries found among the sorted keys, 0 where absent."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=values.dtype)
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[at] == queries, values[at], 0)


class CharNgramLM:
    """Character n-gram model with interpolated Witten-Bell smoothing, scikit-learn shaped:
    `fit(texts)` counts, `score_samples(texts)` gives bits per character (higher = less like
    the texts it was fitted on).

    Attributes after fit: `vocabulary_` (sorted code points seen) with `unigram_` counts,
    `tables_` (per order >= 2: sorted n-gram keys and their counts, sorted context keys with
    their distinct continuations and their counts), `chars_fitted_`.
    """

    def __init__(self, order: int = 5, max_chars: int = _FIT_CHARS, seed: int = 0):
        self.order = order
        self.max_chars = max_chars
        self.seed = seed

    def fit(self, texts: Sequence[str]) -> "CharNgramLM":
        if self.order < 1:
            raise ValueError(f"order must be at least 1, not {self.order}")
        texts = [t for t in texts if isinstance(t, str)]
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        if lengths.sum() > self.max_chars:    # a seeded sample of whole texts
            order = np.random.default_rng(self.seed).permutation(len(texts))
            keep = np.sort(order[:int(np.searchsorted(np.cumsum(lengths[order]),
                                                      self.max_chars)) + 1])
            texts = [texts[i] for i in keep]
        pad = self.order - 1
        stream, starts, lens = _codepoints(texts, max(pad, 1))
        targets = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lens)]) \
            if len(lens) else np.zeros(0, dtype=np.int64)
        chars = stream[targets]
        self.vocabulary_, unigram = np.unique(chars, return_counts=True)
        self.unigram_ = unigram
        self.chars_fitted_ = int(len(chars))
        self.tables_ = {}
        previous = None
        for k, keys in _gram_keys(stream, self.order):
            if k == 1:
                previous = keys
                continue
            # an n-gram's hash fixes its context, so the contexts of the distinct n-grams
            # give T(h) (how many) and C(h) (their counts summed)
            grams, first, counts = np.unique(keys[targets], return_index=True,
                                             return_counts=True)
            ctx = previous[targets - 1][first]
            previous = keys
            ctx_keys, inverse, distinct = np.unique(ctx, return_inverse=True,
                                                    return_counts=True)
            ctx_counts = np.bincount(inverse, weights=counts).astype(np.int64)
            self.tables_[k] = (grams, counts, ctx_keys, distinct, ctx_counts)
        return self

    def char_log2probs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(log2 p of every character of every text, in one array; each text's length)."""
        pad = max(self.order - 1, 1)
        stream, starts, lens = _codepoints(texts, pad)
        targets = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lens)]) \
            if len(lens) else np.zeros(0, dtype=np.int64)
        chars = stream[targets]
        total = self.chars_fitted_
        at = np.minimum(np.searchsorted(self.vocabulary_, chars), len(self.vocabulary_) - 1)
        seen = self.vocabulary_[at] == chars
        # add-one over the characters seen and one more slot shared by every unseen one
        p = (np.where(seen, self.unigram_[at], 0) + 1.0) / (total + len(self.vocabulary_) + 1)
        previous = None
        for k, keys in _gram_keys(stream, self.order):
            if k == 1:
                previous = keys
                continue
            gram_keys, gram_counts, ctx_keys, distinct, ctx_counts = self.tables_[k]
            c_hc = _lookup(gram_keys, gram_counts, keys[targets])
            ctx = previous[targets - 1]
            previous = keys
            c_h = _lookup(ctx_keys, ctx_counts, ctx).astype(float)
            t_h = _lookup(ctx_keys, distinct, ctx).astype(float)
            p = np.where(c_h > 0, (c_hc + t_h * p) / np.maximum(c_h + t_h, 1.0), p)
        return np.log2(p), lens

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """Cross-entropy of each text in bits per character (NaN for an empty text).
        Each text is scored on its own (it starts in the boundary context), so scoring runs
        of texts in turn gives every text the value it gets among all of them."""
        texts = list(texts)
        sizes = np.cumsum([len(t) if isinstance(t, str) else 0 for t in texts])
        out, start = [], 0
        while start < len(texts):
            # at least one text a run, however long
            base = sizes[start - 1] if start else 0
            stop = max(int(np.searchsorted(sizes, base + _SCORE_CHARS, side="right")),
                       start + 1)
            logp, lens = self.char_log2probs(texts[start:stop])
            sums = np.bincount(np.repeat(np.arange(len(lens)), lens), weights=logp,
                               minlength=len(lens))
            out.append(np.where(lens > 0, -sums / np.maximum(lens, 1), np.nan))
            start = stop
        return np.concatenate(out) if out else np.zeros(0)
