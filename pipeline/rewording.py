"""Rewordings within a source, and the lexical bar of near-duplicates, both learned from how
close distinct real records come to each other.

- `SemanticDuplicates`: a record whose embedding cosine to a record of its own source kept
  before it exceeds what nearly no two distinct real records reach (the `quantile` of the
  held-out real records' cosine to their nearest real record: the bar the paraphrase test of
  copies_real uses too) is a reworded near-duplicate, as NeMo Curator's semantic dedup finds
  them, but with a bar learned from the real data instead of a fixed epsilon. Decided one
  record at a time against *kept* records only, so a chain never wipes itself out.
- `learn_jaccard_bar`: the Jaccard that distinct real records reach with their lexically
  nearest real record, at the same quantile, is the bar MinHash-LSH candidates must be
  confirmed at (issue 10: the fixed 0.8 on word 2-grams caught 13% of 5-15%-edited copies).

Why the cosine alone, and not the cosine joined with word overlap: a generator fitted on the
real data (a Markov chain, a small LM) splices phrases of real records into new ones; such a
splice shares a run of words with a real record, or with another splice, at a cosine real
records also reach. Joining a moderately rare cosine with a moderately rare word overlap
(Fisher's method) took a third of the bundled sample's healthy Markov-chain records for
rewordings. A rewording says the same thing: its cosine alone is rare among real pairs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .formulaic.calibration import SignalTail
from .minhash import Shingler
from .neighbours import NeighbourIndex, unit_rows
from .text import normalize


class SemanticDuplicates:
    """Reworded near-duplicates among the records of one source (see module doc).

    `threshold` is the cosine bar (learned by the caller from the real records); `width` the
    candidates each record is compared with (its nearest others)."""

    def __init__(self, threshold: float, width: int = 20):
        self.threshold = threshold
        self.width = width

    def find(self, emb: np.ndarray, order: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decides the records one at a time in `order` (default: as given): a record is
        dropped when its cosine to a record kept before it exceeds the bar. Returns
        (dropped mask, index of the kept record it rewords or -1, that cosine or NaN).

        A record whose candidates all come later or were dropped is kept: with the 20 nearest
        as candidates, a kept reworded original would need 20 closer records to be missed."""
        n = len(emb)
        order = np.arange(n) if order is None else np.asarray(order)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        dropped = np.zeros(n, dtype=bool)
        matched = np.full(n, -1, dtype=np.int64)
        cosine = np.full(n, np.nan)
        if n < 2:
            return dropped, matched, cosine
        emb = unit_rows(emb)
        sims, idx = NeighbourIndex(emb).search(emb, min(self.width, n - 1),
                                               exclude=np.arange(n))
        for i in order.tolist():
            row, row_sims = idx[i], sims[i]
            ok = (row >= 0) & (row_sims > self.threshold)
            ok[ok] &= (rank[row[ok]] < rank[i]) & ~dropped[row[ok]]
            if ok.any():
                j = int(np.flatnonzero(ok)[0])       # neighbours come best first
                dropped[i], matched[i], cosine[i] = True, row[j], row_sims[j]
        return dropped, matched, cosine


def learn_jaccard_bar(real_texts: Sequence[str], shingler: Shingler, quantile: float = 0.995,
                      duplicate: float = 1.0, sample: int = 2000, seed: int = 0
                      ) -> tuple[float, np.ndarray, np.ndarray]:
    """The Jaccard that distinct real records reach with their lexically nearest other real
    record, at `quantile` (a `SignalTail` beyond the sampled values), and never above
    `duplicate`: the bar a near-duplicate must reach. Pairs at or above `duplicate` are
    duplicates already, not distinct records: real data full of near-copies must not raise
    the bar until nothing is one. `shingler` cuts the records' shingles (the dedup stage's). At most `sample` real records (seeded) are the queries, each against
    every other real record. Returns (bar, the sampled nearest-neighbour Jaccards of
    distinct records, the histogram of every compared pair's Jaccard).

    The three steps are apart so that an engine holding the records in blocks
    (engines/ray) runs the same ones: `jaccard_queries`, `nearest_jaccard` per block (its
    maxima combine by `np.maximum`, its histograms by adding), `jaccard_bar`."""
    n = len(real_texts)
    if n < 3:
        raise ValueError(f"need at least 3 real records to learn a Jaccard bar, got {n}")
    queries = jaccard_queries(n, sample, seed)
    query_sets = ShingleSets.of(_texts(real_texts, queries), shingler)
    nearest = np.full(len(queries), -1.0, dtype=np.float32)
    background = np.zeros(len(BACKGROUND_BINS) - 1, dtype=np.int64)
    for start in range(0, n, NEAREST_BLOCK):
        block = range(start, min(n, start + NEAREST_BLOCK))
        block_nearest, block_background = nearest_jaccard(
            query_sets, queries, ShingleSets.of(_texts(real_texts, block), shingler),
            np.asarray(block), duplicate)
        np.maximum(nearest, block_nearest, out=nearest)
        background += block_background
    nearest = nearest.astype(float)
    return jaccard_bar(nearest, quantile, duplicate), nearest, background


def _texts(texts: Sequence[str], rows) -> list[str]:
    """Some of the texts, converted a block at a time where the sequence can (a
    `records.ColumnRows` of the table's Arrow column: a list of every real text would be
    gigabytes at a million records)."""
    take = getattr(texts, "take", None)
    return take(np.asarray(rows)) if take is not None else [texts[i] for i in rows]


# Real records compared with the queries at once (a queries x block float32 matrix).
NEAREST_BLOCK = 4096
# The bins of the background histogram of pairwise Jaccard (`nearest_jaccard`).
BACKGROUND_BINS = np.linspace(0.0, 1.0, 101)


def jaccard_queries(n: int, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Which of `n` real records (positions in the stages' content order) are the queries:
    all, or `sample` of them drawn by the seed, in order."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


class ShingleSets:
    """The shingle sets of some records as 64-bit fingerprints (`Shingler.fingerprints`),
    each record's distinct ones: `record[k]` holds fingerprint `prints[k]`. What the Jaccard
    of two records needs, cut in numpy a batch at a time instead of a Python set of tuples per
    record (building those was half the time of learning the bar)."""

    def __init__(self, record: np.ndarray, prints: np.ndarray, count: int):
        self.record, self.prints, self.count = record, prints, count

    @classmethod
    def of(cls, texts: Sequence[str], shingler: Shingler) -> "ShingleSets":
        if not len(texts):
            return cls(np.zeros(0, np.int64), np.zeros(0, np.uint64), 0)
        prints, firsts = shingler.fingerprints([shingler.shingle_text(normalize(t))
                                                for t in texts])
        record = np.repeat(np.arange(len(texts)), np.diff(np.r_[firsts, len(prints)]))
        order = np.lexsort((prints, record))
        record, prints = record[order], prints[order]
        distinct = np.r_[True, (record[1:] != record[:-1]) | (prints[1:] != prints[:-1])]
        return cls(record[distinct], prints[distinct], len(texts))

    def __len__(self) -> int:
        return self.count

    def sizes(self) -> np.ndarray:
        return np.bincount(self.record, minlength=self.count).astype(np.float32)


# A shingle held by at least this share of the queries is counted by a dense product: the
# sparse product pays per (query, record, shingle) triple, which a common shingle makes
# dense (every query with it times every record with it), while BLAS pays per column
# nq x nb multiply-adds at a fraction of the cost. Where the two meet (about 5%) only moves
# the time, never the counts (exact small integers in float32 either way).
DENSE_SHINGLE_SHARE = 0.05


def _shared_counts(q_row: np.ndarray, q_col: np.ndarray, nq: int, b_row: np.ndarray,
                   b_col: np.ndarray, nb: int, vocab: int) -> np.ndarray:
    """(nq, nb) float32: how many shingles each query shares with each block record, from
    the (row, shingle column) pairs of both sides: common shingles by a dense product,
    the rest by a sparse one."""
    from scipy import sparse

    held = np.bincount(q_col, minlength=vocab)
    common = held >= max(2, DENSE_SHINGLE_SHARE * nq)
    dense_index = np.cumsum(common) - 1        # a common column's place among them
    out = np.zeros((nq, nb), dtype=np.float32)
    n_common = int(common.sum())
    if n_common:
        qd = np.zeros((nq, n_common), dtype=np.float32)
        bd = np.zeros((nb, n_common), dtype=np.float32)
        qc, bc = common[q_col], common[b_col]
        qd[q_row[qc], dense_index[q_col[qc]]] = 1.0
        bd[b_row[bc], dense_index[b_col[bc]]] = 1.0
        out += qd @ bd.T
        q_row, q_col = q_row[~qc], q_col[~qc]
        b_row, b_col = b_row[~bc], b_col[~bc]
    if len(q_row) and len(b_row):
        q = sparse.csr_matrix((np.ones(len(q_row), dtype=np.float32), (q_row, q_col)),
                              shape=(nq, vocab))
        b = sparse.csr_matrix((np.ones(len(b_row), dtype=np.float32), (b_row, b_col)),
                              shape=(nb, vocab))
        out += (q @ b.T).toarray()
    return out


def nearest_jaccard(query_sets: ShingleSets, query_rows: np.ndarray, block_sets: ShingleSets,
                    block_rows: np.ndarray, duplicate: float) -> tuple[np.ndarray, np.ndarray]:
    """((queries,) float32, background): each query's highest Jaccard with a record of the
    block that is not itself (same row) and not its duplicate (>= `duplicate`), -1 where
    none; and the histogram (`BACKGROUND_BINS`) of all those pairs' Jaccard, which blocks add
    up: how similar two records of the data are by chance, which sizes the dedup stage's
    LSH. Counted on the queries' shingles only (a shingle no query has adds to the union
    alone), in float32, so the values are the same whatever the blocks."""
    vocab = np.unique(query_sets.prints)
    q_col = np.searchsorted(vocab, query_sets.prints)
    at = np.minimum(np.searchsorted(vocab, block_sets.prints), max(len(vocab) - 1, 0))
    shared = vocab[at] == block_sets.prints if len(vocab) else \
        np.zeros(len(block_sets.prints), dtype=bool)
    q_sizes, b_sizes = query_sets.sizes(), block_sets.sizes()
    inter = _shared_counts(query_sets.record, q_col, len(query_sets),
                           block_sets.record[shared], at[shared], len(block_sets), len(vocab))
    union = q_sizes[:, None] + b_sizes[None, :] - inter
    sim = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    sim[np.asarray(query_rows)[:, None] == np.asarray(block_rows)[None, :]] = -1.0  # itself
    sim[sim >= duplicate] = -1.0                                                   # duplicates
    background = np.histogram(sim[sim >= 0], BACKGROUND_BINS)[0]
    if sim.shape[1] == 0:
        return np.full(len(query_sets), -1.0, dtype=np.float32), background
    return sim.max(axis=1), background


def jaccard_bar(nearest: np.ndarray, quantile: float, duplicate: float) -> float:
    """The bar from the queries' nearest Jaccards (see `learn_jaccard_bar`)."""
    tail = SignalTail.fit(np.asarray(nearest, dtype=float), 0.01)
    return float(min(duplicate, tail.value_at(1.0 - quantile)))
