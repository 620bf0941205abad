"""Rewordings: a record that says what another says, in other or a few changed words.

Two uses, one yardstick (how close distinct real records come to each other):

- paraphrases of real records (`copies_real`): a synthetic record and its nearest real ones;
- reworded near-duplicates within a source (`near_duplicate`): a record and the records of its
  own source kept before it (`within_source`).

The test of a pair combines its embedding cosine with its word overlap (Jaccard of the two
sets of words). Either alone misses: a paraphrase a generator writes keeps half its words and
lands at a cosine that related real records also reach (issue 10: 71% caught by the cosine
alone), while two real records can share many words and mean different things. Each is turned
into a tail probability under the real pairs (every real record with its k nearest other real
records, leave-one-out): p_cos, p_words. Fisher's method joins them, T = -2 (ln p_cos +
ln p_words), so a pair moderately rare on both counts is as rare as one extreme on one. The
two are not independent, so T is not read against chi-square: a record's statistic is its
largest T over its k nearest candidates, and its tail probability is read from the same
statistic of the real records against the other real records (`SignalTail`). A pair is a
rewording when that probability falls under 1 - quantile: at most that share of distinct real
records would be taken for one.

`learn_jaccard_bar` does the same for the lexical MinHash test: the Jaccard that distinct real
records reach with their lexically nearest real record, at the same quantile, is the bar the
MinHash-LSH candidates must be confirmed at (issue 10: the fixed 0.8 on word 2-grams caught
13% of 5-15%-edited copies).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .dedup import normalize
from .distance import NeighbourIndex, unit_rows
from .formulaic import SignalTail

_EDGE = re.compile(r"^\W+|\W+$")
TEST_COSINE = "cosine"
TEST_COMBINED = "cosine+words"


def word_set(text: str) -> frozenset[str]:
    """The distinct words of a text, normalized as exact dedup does, punctuation stripped."""
    if not isinstance(text, str):
        return frozenset()
    return frozenset(w for w in (_EDGE.sub("", t) for t in normalize(text).split()) if w)


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass
class Matches:
    """The best match of each query: `index` (into the base; -1 for none), `cosine`,
    `words` (word Jaccard), `p` (tail probability of the record's statistic among real
    records), `flagged` (p under the bar) and `test` (TEST_COSINE when the cosine alone is
    past the bar, else TEST_COMBINED; None when not flagged)."""

    index: np.ndarray
    cosine: np.ndarray
    words: np.ndarray
    p: np.ndarray
    flagged: np.ndarray
    test: list


class RewordingTest:
    """Fitted on the real records (texts and embeddings); judges query records against a base
    (the real records, or the kept records of the query's own source). See module doc.

    Attributes after fit: `cos_tail_`, `words_tail_` (tails of the real pairs' cosine and
    word Jaccard), `stat_tail_` (tail of the record statistic among real records), `level_`
    (1 - quantile), `null_` (the real records' statistic, for the report). Real pairs whose
    word Jaccard reaches `duplicate` (the dedup stage's cap) are left out of the yardstick.
    """

    def __init__(self, quantile: float = 0.995, k: int = 5, duplicate: float = 0.8):
        self.quantile = quantile
        self.k = k
        self.duplicate = duplicate

    def fit(self, real_texts: Sequence[str], real_emb: np.ndarray) -> "RewordingTest":
        n = len(real_texts)
        if n <= self.k + 1:
            raise ValueError(f"need more than {self.k + 1} real records, got {n}")
        emb = unit_rows(real_emb)
        sets = [word_set(t) for t in real_texts]
        sims, idx = NeighbourIndex(emb).search(emb, self.k, exclude=np.arange(n))
        words = self._pair_words(sets, sets, idx)
        # Real pairs sharing `duplicate` of their words are copies, not distinct records: a
        # real set that still holds some must not make copies look normal.
        valid = (idx >= 0) & (words < self.duplicate)
        self.cos_tail_ = SignalTail.fit(np.clip(sims[valid], 0.0, 1.0), 0.01)
        self.words_tail_ = SignalTail.fit(words[valid], 0.01)
        self.null_ = self._statistic(sims, words, valid).max(axis=1)
        self.stat_tail_ = SignalTail.fit(self.null_, 1.0)
        self.level_ = 1.0 - self.quantile
        self.cosine_bar_ = self.cos_tail_.value_at(self.level_)
        return self

    @staticmethod
    def _pair_words(query_sets, base_sets, idx: np.ndarray) -> np.ndarray:
        out = np.zeros(idx.shape)
        for i, row in enumerate(idx):
            for j, b in enumerate(row):
                if b >= 0:
                    out[i, j] = jaccard(query_sets[i], base_sets[b])
        return out

    def _statistic(self, sims: np.ndarray, words: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Fisher's T of each pair (0 where there is no pair)."""
        p_cos = self.cos_tail_.survival(np.clip(sims, 0.0, 1.0))
        p_words = self.words_tail_.survival(words)
        t = -2.0 * (np.log(np.clip(p_cos, 1e-300, 1.0)) + np.log(np.clip(p_words, 1e-300, 1.0)))
        return np.where(valid, t, 0.0)

    def judge_pairs(self, sims: np.ndarray, idx: np.ndarray, query_texts: Sequence[str],
                    base_texts: Sequence[str]) -> Matches:
        """Judges each query against its candidates (`sims`, `idx`: (queries, c) cosines and
        base indices, -1 for none), keeping its strongest pair."""
        q_sets = [word_set(t) for t in query_texts]
        needed = sorted({int(b) for b in idx.ravel() if b >= 0})
        b_sets: dict[int, frozenset] = {b: word_set(base_texts[b]) for b in needed}
        words = np.zeros(idx.shape)
        for i, row in enumerate(idx):
            for j, b in enumerate(row):
                if b >= 0:
                    words[i, j] = jaccard(q_sets[i], b_sets[int(b)])
        valid = idx >= 0
        t = self._statistic(sims, words, valid)
        n = len(idx)
        best = t.argmax(axis=1) if idx.shape[1] else np.zeros(n, dtype=int)
        rows = np.arange(n)
        stat = t[rows, best] if idx.shape[1] else np.zeros(n)
        has = valid[rows, best] if idx.shape[1] else np.zeros(n, dtype=bool)
        p = np.where(has, self.stat_tail_.survival(stat), 1.0)
        flagged = has & (p < self.level_)
        cos = np.where(has, sims[rows, best], np.nan)
        test = [None if not f else TEST_COSINE if c > self.cosine_bar_ else TEST_COMBINED
                for f, c in zip(flagged, cos)]
        return Matches(index=np.where(has, idx[rows, best], -1), cosine=cos,
                       words=np.where(has, words[rows, best], np.nan), p=p, flagged=flagged,
                       test=test)

    def against(self, query_texts: Sequence[str], query_emb: np.ndarray,
                base_texts: Sequence[str], base_emb: np.ndarray) -> Matches:
        """Each query's best pair among its k nearest base records (paraphrases of real
        records: the base is the real records)."""
        sims, idx = NeighbourIndex(unit_rows(base_emb)).search(unit_rows(query_emb), self.k)
        return self.judge_pairs(sims, idx, query_texts, base_texts)

    def within_source(self, texts: Sequence[str], emb: np.ndarray, order: np.ndarray | None = None
                      ) -> tuple[np.ndarray, Matches]:
        """Reworded near-duplicates among records of one source, decided one at a time in
        `order` (default: as given): a record is dropped only when it rewords a record that
        was *kept*, never through a chain. Returns (dropped mask, matches: for dropped
        records, `index` names the kept record).

        Candidates are each record's 4k nearest others; a record whose candidates were all
        dropped or come later is kept (with k = 5, one record would need 20 closer reworded
        copies for a kept one to be missed)."""
        n = len(texts)
        order = np.arange(n) if order is None else np.asarray(order)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        emb = unit_rows(emb)
        width = min(4 * self.k, max(n - 1, 1))
        sims, idx = NeighbourIndex(emb).search(emb, width, exclude=np.arange(n))
        dropped = np.zeros(n, dtype=bool)
        out = Matches(index=np.full(n, -1), cosine=np.full(n, np.nan),
                      words=np.full(n, np.nan), p=np.ones(n), flagged=np.zeros(n, dtype=bool),
                      test=[None] * n)
        sets: dict[int, frozenset] = {}

        def words_of(i: int) -> frozenset:
            if i not in sets:
                sets[i] = word_set(texts[i])
            return sets[i]

        for i in order.tolist():
            row = idx[i]
            ok = (row >= 0)
            ok[ok] &= (rank[row[ok]] < rank[i]) & ~dropped[row[ok]]
            if not ok.any():
                continue
            cand = row[ok]
            cand_sims = sims[i, ok]
            words = np.array([jaccard(words_of(i), words_of(int(c))) for c in cand])
            t = self._statistic(cand_sims[None, :], words[None, :],
                                np.ones((1, len(cand)), dtype=bool))[0]
            j = int(t.argmax())
            p = float(self.stat_tail_.survival(np.array([t[j]]))[0])
            if p < self.level_:
                dropped[i] = True
                out.index[i], out.cosine[i], out.words[i], out.p[i] = cand[j], cand_sims[j], \
                    words[j], p
                out.flagged[i] = True
                out.test[i] = TEST_COSINE if cand_sims[j] > self.cosine_bar_ else TEST_COMBINED
        return dropped, out


def learn_jaccard_bar(real_texts: Sequence[str], shingles, quantile: float = 0.995,
                      duplicate: float = 1.0, sample: int = 2000, seed: int = 0
                      ) -> tuple[float, np.ndarray]:
    """The Jaccard that distinct real records reach with their lexically nearest other real
    record, at `quantile` (a `SignalTail` beyond the sampled values), and never above
    `duplicate`: the bar a near-duplicate must reach. Pairs at or above `duplicate` are
    duplicates already, not distinct records: real data full of near-copies must not raise
    the bar until nothing is one. `shingles(text)` gives a record's shingle set (the dedup
    stage's shingler). At most `sample` real records (seeded) are the queries, each against
    every other real record, by one sparse product. Returns (bar, the sampled
    nearest-neighbour Jaccards of distinct records)."""
    from scipy import sparse

    n = len(real_texts)
    if n < 3:
        raise ValueError(f"need at least 3 real records to learn a Jaccard bar, got {n}")
    vocab: dict = {}
    rows, cols = [], []
    for i, text in enumerate(real_texts):
        for s in shingles(text):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    x = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                          shape=(n, len(vocab)))
    x.data[:] = 1.0                              # a set: repeated shingles count once
    x.sum_duplicates()
    x.data[:] = 1.0
    sizes = np.asarray(x.sum(axis=1)).ravel()
    queries = np.arange(n)
    if n > sample:
        queries = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    nearest = np.zeros(len(queries))
    for start in range(0, len(queries), 256):
        q = queries[start:start + 256]
        inter = (x[q] @ x.T).toarray()
        union = sizes[q][:, None] + sizes[None, :] - inter
        sim = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        sim[np.arange(len(q)), q] = -1.0          # not itself
        sim[sim >= duplicate] = -1.0              # nor its duplicates
        nearest[start:start + len(q)] = sim.max(axis=1)
    tail = SignalTail.fit(nearest, 0.01)
    bar = min(duplicate, tail.value_at(1.0 - quantile))
    return float(bar), nearest
