"""Formulaic stage: how templated each record is, and which synthetic records are too much so.

Generated text drifts toward stock openers and closers, numbered-tip templates whose slots
alone change, and repetition loops. `FormulaicScorer` measures three signals, each of which a
user can read back as a reason:

- template: the share of the record's words inside word n-grams that the synthetic records
  use far more often than the real ones. No word list: it learns the templates of *this*
  generator against *this* real data, so a style that the real data shares (riddles,
  recipes, legal boilerplate) cancels out. An n-gram is a template when its document
  frequencies pass either of two tests, both with an effect size of at least `min_ratio`:
  the smoothed log-odds z-score with an informative Dirichlet prior (Monroe et al. 2008,
  "Fightin' Words"), which finds the common templates, or Fisher's exact test with the
  Benjamini-Hochberg false discovery rate 1 - `quantile` over the n-grams whose counts could
  reach it at all (the restriction of Gilbert 2005 for discrete tests), which finds the rare
  ones: 12 of 600 synthetic records sharing a frame that none of 600 real records uses. The
  evidence bar of the second test comes from the counts: how lopsided a split must be, given
  the sizes of the two sets, and how many n-grams were in the running; absence from a real
  set much smaller than the synthetic one says little, and then no rare template passes.
- stock: how many stock phrases of generated text (pipeline/data/stock_phrases.txt plus the
  user's) the record carries, matched on words, case-insensitively; a phrase does not count
  where real records use it at least as often as the synthetic ones.
- repetition: the Gopher repetition statistics (Rae et al. 2021) with the datatrove limits,
  each raised to what the real records reach: duplicate lines, the top 2/3/4-gram and the
  duplicated 5..10-gram character fractions; the signal is the one furthest over its limit,
  as statistic / limit.

Calibration: what real records do is the yardstick (DESIGN.md section 5). Every real record
is scored against the others, leave-one-out: for each record, the n-gram and phrase counts
leave out its own words, so each real record is as independent of the statistics it is
scored with as a held-out one, and all of them calibrate, not a fifth. The synthetic records
of the fitted set are scored the same way (their own contribution to the counts left out), so
a natural synthetic record and a real record meet the same statistics: templates are chosen
from the synthetic records, and without this a natural synthetic record would carry the
chance templates it helped to select. (What chance leaves at the level of the whole set, an
n-gram that happens to be commoner in this synthetic sample, is bounded by the false
discovery rate of the tests, and shows as slightly more natural synthetic records than real
ones over the threshold: benchmarks/formulaic.py prints both.)

Each signal is calibrated on its own: `SignalTail` maps a raw value to the share of real
records expected at or above it (a conformal rank inside the bulk of the real values, an
exponential tail fitted to the top ones above it), so one signal's tail in the real data
cannot lift the bar of the others, the largest of a small sample is not the threshold, and a
signal that no real record shows still has a finite, data-sized bar. A record is formulaic when
some signal is rarer among real records than 1 - quantile**(1/3) (Sidak over the three
signals), which keeps the share of real-like records rejected at or under 1 - quantile. The
score maps that tail probability onto [0, 1] on a log scale: 0 = as common as it gets among
real records, 0.5 = the threshold, 1 = as far again beyond it.

Everything runs on one flat numpy stream of word hashes per chunk of records: n-gram hashes are
a few vector operations, per-record statistics are sorts and bincounts, and the fit merges
per-chunk document frequencies, so 100k records take seconds (benchmarks/formulaic.py).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .records import Reason, is_real, is_synthetic, reject, scorable
from .report import histogram
from .stage import RunContext, StageOutcome

STOCK_PHRASES_FILE = Path(__file__).parent / "data" / "stock_phrases.txt"

# The datatrove GopherRepetitionFilter defaults: a record whose fraction is above the limit
# is repetitive. Top n-gram: characters of the most repeated n-gram times its count.
# Duplicated n-gram: characters inside n-grams that occur earlier in the same record.
TOP_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
GOPHER_LIMITS = {"duplicate lines": 0.30,             # share of lines repeating an earlier one
                 "duplicate line characters": 0.20,   # share of characters in such lines
                 **{f"top {n}-gram": v for n, v in TOP_NGRAM_LIMITS.items()},
                 **{f"duplicated {n}-grams": v for n, v in DUP_NGRAM_LIMITS.items()}}

SIGNALS = ("template", "stock", "repetition")
# The raw column each signal is calibrated on.
RAW = {"template": "template_share", "stock": "stock_phrases", "repetition": "repetition_ratio"}
# Who is being scored: a new text (None), or one of the fitted records, whose own words are
# then left out of the counts it is scored with.
HELD_IN = (None, "synthetic", "real")

# Words: letters and digits, with inner apostrophes kept ("here's" is one word).
_WORD = re.compile(r"\w+(?:'\w+)*")
_SEP = "\x00"                # between texts in the joined corpus string
_MULT = np.uint64(0x9E3779B97F4A7C15)   # odd multiplier of the polynomial n-gram hash
_CHUNK = 100_000             # records tokenized at a time, to bound memory on large inputs
_TOP_TEMPLATES = 20          # rows of the over-represented n-gram table in the report


# ----------------------------------------------------------------------------- tokens

@dataclass
class Tokens:
    """The words of many texts as one flat stream, so corpus statistics are array operations.

    Token t belongs to document `doc[t]`; document d holds tokens starts[d]:starts[d+1].
    """

    vocab: np.ndarray    # distinct words (object)
    word: np.ndarray     # per token: index into vocab
    hash: np.ndarray     # per token: uint64 hash of the word
    chars: np.ndarray    # per token: length of the word
    doc: np.ndarray      # per token: document index
    starts: np.ndarray   # document offsets, n_docs + 1
    # the last n-gram hashes computed (n, hashes): the n+1-gram hashes extend them in one pass
    _last: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_docs(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def text(self, start: int, n: int) -> str:
        return " ".join(self.vocab[self.word[start:start + n]])


def tokenize(texts: Sequence[str]) -> Tokens:
    """Words of each text after NFKC and case folding (as in dedup.normalize)."""
    n = len(texts)
    joined = f"\n{_SEP}\n".join(texts)
    if joined.count(_SEP) != max(n - 1, 0):      # a text holds the separator itself
        joined = f"\n{_SEP}\n".join(t.replace(_SEP, " ") for t in texts)
    joined = unicodedata.normalize("NFKC", joined).casefold().replace("\u2019", "'")
    pieces = np.asarray(joined.split(), dtype=object)
    # Whitespace pieces repeat a lot ("the", "data,"): the word regex runs once per distinct
    # piece and numpy expands every piece into its words.
    piece_codes, distinct = pd.factorize(pieces) if len(pieces) else (np.zeros(0, int), [])
    words_of = [[] if p == _SEP else _WORD.findall(p) for p in distinct]
    per_piece = np.fromiter(map(len, words_of), dtype=np.int64, count=len(words_of))
    flat = np.asarray(list(chain.from_iterable(words_of)), dtype=object)
    word_codes, vocab = pd.factorize(flat) if len(flat) else (np.zeros(0, int),
                                                              np.zeros(0, object))
    vocab = np.asarray(vocab, dtype=object)
    counts = per_piece[piece_codes]
    piece_start = np.concatenate([[0], np.cumsum(per_piece)])[piece_codes]
    # index into `flat` of every token: its piece's first word, plus its rank in the piece
    ends = np.cumsum(counts)
    rank = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - counts, counts)
    word = word_codes[np.repeat(piece_start, counts) + rank].astype(np.int64)
    is_sep = np.fromiter((p == _SEP for p in distinct), dtype=bool, count=len(distinct))
    doc = np.repeat(np.cumsum(is_sep[piece_codes]), counts)
    lengths = np.bincount(doc, minlength=n)[:n] if n else np.zeros(0, np.int64)
    vocab_hash = pd.util.hash_array(vocab) if len(vocab) else np.zeros(0, np.uint64)
    vocab_chars = np.fromiter(map(len, vocab), dtype=np.int64, count=len(vocab))
    return Tokens(vocab=vocab, word=word, hash=vocab_hash[word], chars=vocab_chars[word],
                  doc=doc, starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def ngram_hashes(tokens: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, fits): the uint64 hash of the n words starting at each token, and whether those
    n words lie inside the token's own document. Both have one entry per token.

    A polynomial hash, so the n-gram hashes extend the (n-1)-gram ones with one multiply-add
    over the stream; callers that ask for n = 2, 3, 4... in order pay one pass per n.
    """
    total = len(tokens.hash)
    g = np.zeros(total, dtype=np.uint64)
    fits = np.zeros(total, dtype=bool)
    m = total - n + 1
    if m <= 0:
        return g, fits
    h = tokens.hash
    k, acc = tokens._last if tokens._last is not None and tokens._last[0] <= n else (1, h)
    acc = acc[:total - k + 1]
    for k in range(k + 1, n + 1):
        acc = acc[:-1] * _MULT + h[k - 1:]
    tokens._last = (n, acc)
    g[:m] = acc
    ends = tokens.starts[1:][tokens.doc[:m]]
    fits[:m] = np.arange(m) + n <= ends
    return g, fits


def _group_within_docs(tokens: Tokens, g: np.ndarray, fits: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fitting n-grams, sorted so that equal n-grams of one document are
    adjacent (in order of position), and a flag on the first of each such group.

    One sort of a packed key (document | hash bits | position) instead of an argsort: the
    document and position come back out of the sorted key itself.
    """
    pos = np.flatnonzero(fits)
    if len(pos) == 0:
        return pos, np.zeros(0, dtype=bool)
    doc = tokens.doc[pos]
    offset = pos - tokens.starts[doc]
    doc_bits = max(1, int(tokens.n_docs - 1).bit_length())
    pos_bits = max(1, int(tokens.lengths.max()).bit_length())
    hash_bits = 64 - doc_bits - pos_bits
    if hash_bits < 24:
        raise ValueError("too many or too long records for one chunk")  # _CHUNK prevents it
    key = (doc.astype(np.uint64) << np.uint64(64 - doc_bits)) \
        | ((g[pos] >> np.uint64(doc_bits + pos_bits)) << np.uint64(pos_bits)) \
        | offset.astype(np.uint64)
    key.sort()
    group = key >> np.uint64(pos_bits)
    first = np.ones(len(key), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    sorted_doc = (key >> np.uint64(64 - doc_bits)).astype(np.int64)
    sorted_pos = tokens.starts[sorted_doc] + (key & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
    return sorted_pos, first


def document_frequencies(tokens: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts): each distinct n-gram and the number of documents that contain it."""
    g, fits = ngram_hashes(tokens, n)
    pos, first = _group_within_docs(tokens, g, fits)
    return np.unique(g[pos[first]], return_counts=True)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[keys == q] for each query (0 where absent); keys sorted."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=values.dtype)
    i = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[i] == queries, values[i], 0)


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values in sorted_set, elementwise. A bitmap on the low bits answers most queries, so
    only the few candidates pay for the binary search."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    bits = 20
    low = np.uint64((1 << bits) - 1)
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[(sorted_set & low).astype(np.int64)] = True
    hit = bitmap[(values & low).astype(np.int64)]
    cand = np.flatnonzero(hit)
    i = np.minimum(np.searchsorted(sorted_set, values[cand]), len(sorted_set) - 1)
    hit[cand] = sorted_set[i] == values[cand]
    return hit


def _cover(total: int, starts: np.ndarray, n: int) -> np.ndarray:
    """A mask over tokens: True on the n tokens from each start."""
    covered = np.zeros(total, dtype=bool)
    for k in range(n):
        covered[starts + k] = True
    return covered


def _per_doc_sum(tokens: Tokens, weights: np.ndarray) -> np.ndarray:
    return np.bincount(tokens.doc, weights=weights, minlength=tokens.n_docs)[:tokens.n_docs]


def _chunks(texts: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(texts), _CHUNK):
        yield list(texts[i:i + _CHUNK])


def _merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(keys, summed counts) of per-chunk (sorted keys, counts): records never span chunks,
    so document frequencies add up."""
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)


# ----------------------------------------------------------------------------- evidence

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


# ----------------------------------------------------------------------------- calibration

@dataclass
class SignalTail:
    """How rare a signal value is among real records: `survival(x)` estimates the share of
    real-like records at or above x.

    Inside the bulk of the real values it is the conformal rank, (1 + #{real >= x}) / (n + 1),
    which counts the record being judged as one more draw. Above the (m+1)-th largest value,
    m = ceil(sqrt(n)) (above 0 when fewer values are positive), it is an exponential tail
    fitted to the values over it (their mean excess, with one pseudo-excess of `unit` so that
    a tail with no spread still has one): the largest of a small sample is then not a wall,
    a value twice as far out is rarer still, and a signal that no real record shows (all 0)
    starts at 1 / (n + 1) and falls by e every `unit`. 80 real records then cannot put the bar
    of a 1-in-300 event at "any trace"; 2000 can.
    """

    values: np.ndarray     # the real records' raw values, sorted
    start: float           # where the fitted tail starts (u)
    scale: float           # its mean excess (beta)
    level: float           # the survival just above `start`: (1 + #{real > u}) / (n + 1)

    @classmethod
    def fit(cls, values: np.ndarray, unit: float) -> "SignalTail":
        values = np.sort(np.asarray(values, dtype=float))
        n = len(values)
        m = math.ceil(math.sqrt(n)) if n else 0
        positive = int((values > 0).sum())
        start = float(values[n - m - 1]) if 0 < m < positive else 0.0
        start = max(start, 0.0)
        over = values[values > start]
        scale = (float((over - start).sum()) + unit) / (len(over) + 1)
        return cls(values=values, start=start, scale=scale, level=(len(over) + 1) / (n + 1))

    def survival(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        n = len(self.values)
        at_or_above = n - np.searchsorted(self.values, x, side="left")
        bulk = (at_or_above + 1) / (n + 1)
        tail = self.level * np.exp(-(x - self.start) / self.scale)
        return np.where(x > self.start, tail, np.minimum(bulk, 1.0))

    def value_at(self, p: float) -> float:
        """The raw value above which the survival falls under p: the signal's own threshold."""
        if p < self.level:
            return self.start + self.scale * math.log(self.level / p)
        n = len(self.values)       # inside the bulk: a real value with few enough above it
        if n == 0:
            return self.start
        i = min(n - 1, max(0, int(math.floor(n + 1 - p * (n + 1)))))
        return min(float(self.values[i]), self.start)


def tail_to_score(p: np.ndarray, quantile: float, signals: int = len(SIGNALS)) -> np.ndarray:
    """[0, 1] score of a signal whose survival among real records is p. Sidak-adjusted over
    the signals, the chance that a real-like record is this rare on some signal; on a log
    scale, 0.5 where that chance is 1 - quantile and 1 where it is (1 - quantile) ** 2."""
    p = np.clip(np.asarray(p, dtype=float), 1e-300, 1.0)
    adjusted = -np.expm1(signals * np.log1p(-np.minimum(p, 1 - 1e-16)))
    adjusted = np.clip(adjusted, 1e-300, 1.0)
    budget = -math.log(max(1.0 - quantile, 1e-300))
    return np.clip(-np.log(adjusted) / (2 * budget), 0.0, 1.0) + 0.0   # no -0.0


def per_signal_level(quantile: float, signals: int = len(SIGNALS)) -> float:
    """The survival under which one signal alone makes a record formulaic (Sidak)."""
    return 1.0 - quantile ** (1.0 / signals)


# ----------------------------------------------------------------------------- stock phrases

def load_stock_phrases(path: str | Path = STOCK_PHRASES_FILE) -> list[str]:
    """The phrases of a stock-phrase file: one a line, # comments and blank lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def _phrase_hashes(phrases: Sequence[str]) -> dict[int, dict[int, str]]:
    """{length in words: {hash of the phrase's words: phrase}}, hashed like ngram_hashes."""
    out: dict[int, dict[int, str]] = {}
    if not phrases:
        return out
    tokens = tokenize(list(phrases))
    for d, phrase in enumerate(phrases):
        a, b = tokens.starts[d], tokens.starts[d + 1]
        if b - a < 1:
            continue
        acc = tokens.hash[a]
        with np.errstate(over="ignore"):     # the hash wraps around by design
            for k in range(a + 1, b):
                acc = acc * _MULT + tokens.hash[k]
        out.setdefault(int(b - a), {})[int(acc)] = phrase
    return out


def phrase_counts(s: np.ndarray, n_s: int, r: np.ndarray, n_r: int) -> np.ndarray:
    """Whether a stock phrase in s of n_s synthetic and r of n_r real records counts against a
    record: unless real records use it, and at least as often as the synthetic ones do."""
    s = np.asarray(s, dtype=float)
    r = np.asarray(r, dtype=float)
    synth_rate = s / n_s if n_s > 0 else np.zeros_like(s)
    real_rate = r / n_r if n_r > 0 else np.zeros_like(r)
    return (r == 0) | (synth_rate > real_rate)


# ----------------------------------------------------------------------------- the scorer

class FormulaicScorer:
    """Formulaicness of texts, 0 natural .. 1 boilerplate, calibrated on real records.

    `fit(real, synthetic)` learns the templates of the synthetic set against the real
    records, which stock phrases count, the repetition limits, and each signal's tail among
    the real records, every real record scored leave-one-out (`calibration_`, with the scores
    in `calibration_scores_`). `threshold_` is 0.5, where the rarest signal of a record is
    as rare among real records as the `quantile` allows (see tail_to_score);
    `signal_thresholds_` gives that bar in each signal's own units.

    `score_samples(texts)` scores new texts against the fitted counts. The fitted records
    themselves are scored with `score_components(texts, held_in="synthetic")` (or "real"):
    their own words are then left out of the counts, as a new text's would be, like the
    training scores of scikit-learn's LocalOutlierFactor (`negative_outlier_factor_`).
    """

    def __init__(self, quantile: float = 0.99, min_n: int = 2, max_n: int = 5,
                 min_z: float = 3.0, min_ratio: float = 2.0,
                 stock_phrases: Sequence[str] | None = None):
        self.quantile = quantile
        self.min_n = min_n
        self.max_n = max_n
        self.min_z = min_z
        self.min_ratio = min_ratio
        self.stock_phrases = stock_phrases

    # -- fitting

    def fit(self, real_texts: Sequence[str], synthetic_texts: Sequence[str] = ()
            ) -> "FormulaicScorer":
        real_texts, synthetic_texts = list(real_texts), list(synthetic_texts)
        self.n_real_, self.n_synthetic_ = len(real_texts), len(synthetic_texts)
        phrases = list(self.stock_phrases) if self.stock_phrases is not None \
            else load_stock_phrases()
        self.phrases_by_length_ = _phrase_hashes(phrases)
        real = self._corpus_counts(real_texts, real=True)
        synth = self._corpus_counts(synthetic_texts)
        self._fit_repetition_limits(real["repetition"])
        self._fit_templates(real["df"], synth["df"], synthetic_texts)
        self._fit_stock_phrases(real["phrases"], synth["phrases"])
        if real["tokens"] is not None:     # one chunk: its words and statistics are at hand
            raw = self._chunk_components(real_texts, "real", real["tokens"], real["repetition"])
        else:
            raw = self._raw_components(real_texts, held_in="real")
        self._fit_tails(raw, real["lengths"])
        return self

    def _corpus_counts(self, texts: list[str], real: bool = False) -> dict:
        """Per corpus, chunk by chunk: the document frequency of every n-gram, the records
        holding each stock phrase and the words per record; for real records the Gopher
        statistics too, and the tokens when they fit in one chunk (they are scored next)."""
        df: dict[int, list] = {n: [] for n in range(self.min_n, self.max_n + 1)}
        phrases: dict[int, int] = {}
        stats, lengths = [], []
        tokens = None
        for chunk in _chunks(texts):
            tokens = tokenize(chunk)
            for n in df:
                df[n].append(document_frequencies(tokens, n))
            for h, c in self._phrase_record_counts(tokens).items():
                phrases[h] = phrases.get(h, 0) + c
            if real:
                stats.append(repetition(chunk, tokens))
            lengths.append(tokens.lengths)
        return {"df": {n: _merge_counts(parts) for n, parts in df.items()},
                "phrases": phrases,
                "repetition": pd.concat(stats, ignore_index=True) if stats else None,
                "lengths": np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
                "tokens": tokens if real and len(texts) <= _CHUNK else None}

    def _fit_repetition_limits(self, stats: pd.DataFrame | None) -> None:
        """Each Gopher statistic's limit, raised to what the real records themselves reach
        (their `quantile`): song lyrics with a refrain or forms with repeated lines are the
        real style then, not a generator's loop. The limits put the statistics on one scale;
        the repetition signal is then calibrated on the real records like the others."""
        self.repetition_limits_ = {
            name: max(limit, float(np.quantile(stats[name], self.quantile))
                      if stats is not None and len(stats) else 0)
            for name, limit in GOPHER_LIMITS.items()}

    def _fit_templates(self, real_df: dict, synth_df: dict, synthetic_texts: list[str]) -> None:
        """The n-grams the synthetic records use far more often than the real ones, for a new
        text and, leave-one-out, for a synthetic and for a real record of the fitted sets."""
        n_s, n_r = self.n_synthetic_, self.n_real_
        self.template_hashes_: dict = {held: {n: np.zeros(0, np.uint64) for n in real_df}
                                       for held in HELD_IN}
        self.log_p_cut_ = -math.inf
        self.log_p_cuts_ = {held: -math.inf for held in HELD_IN}
        self.testable_ngrams_ = 0
        columns = ["n", "hash", "synthetic_records", "real_records", "log_odds", "z",
                   "p_value"]
        if n_s < 2 or n_r < 1:
            self.templates_ = pd.DataFrame({c: pd.Series(dtype=object if c == "ngram" else float)
                                            for c in [*columns, "ngram"]})
            return
        lf = log_factorials(n_s + n_r)
        lengths, hashes, y_s, y_r = [], [], [], []
        for n, (hs, ys) in synth_df.items():
            keep = ys >= 2                       # one record cannot show a template
            hr, yr = real_df[n]
            lengths.append(np.full(int(keep.sum()), n))
            hashes.append(hs[keep])
            y_s.append(ys[keep])
            y_r.append(_lookup(hr, yr, hs[keep]))
        n_of, hashes = np.concatenate(lengths), np.concatenate(hashes)
        y_s, y_r = np.concatenate(y_s), np.concatenate(y_r)

        # Each record is judged on the others' counts (leave-one-out): a synthetic record of
        # the fitted set on the other synthetic records, a real one on the other real ones.
        versions = {None: (y_s, n_s, y_r, n_r),
                    "synthetic": (y_s - 1, n_s - 1, y_r, n_r),
                    "real": (y_s, n_s, np.maximum(y_r - 1, 0), n_r - 1)}
        self.log_p_cuts_ = {}
        chosen = {}
        for held, counts in versions.items():
            chosen[held], self.log_p_cuts_[held], tests = self._templates_among(*counts, lf)
            if held is None:
                self.testable_ngrams_ = tests
        self.log_p_cut_ = self.log_p_cuts_[None]
        for held in HELD_IN:
            for n in self.template_hashes_[held]:
                self.template_hashes_[held][n] = np.sort(hashes[chosen[held] & (n_of == n)])

        full = chosen[None]
        delta, z, _ = log_odds(y_s[full], n_s, y_r[full], n_r)
        exact = fisher_log_p(y_s[full], n_s, y_r[full], n_r, lf)
        table = pd.DataFrame({"n": n_of[full], "hash": hashes[full],
                              "synthetic_records": y_s[full], "real_records": y_r[full],
                              "log_odds": delta, "z": z, "p_value": np.exp(exact)})
        table["ngram"] = pd.Series(self._ngram_texts(synthetic_texts, table), dtype=object)
        table["_log_p"] = exact
        self.templates_ = table.sort_values(["_log_p", "z", "ngram"],
                                            ascending=[True, False, True],
                                            ignore_index=True).drop(columns="_log_p")

    def _templates_among(self, y_s: np.ndarray, n_s: int, y_r: np.ndarray, n_r: int,
                         lf: np.ndarray) -> tuple[np.ndarray, float, int]:
        """(is template, log p-value bar, tests) for n-grams in y_s of n_s synthetic and y_r of
        n_r real records. Common templates pass the log-odds z-test; rare ones Fisher's exact
        test at the Benjamini-Hochberg bar, the false discovery rate being 1 - quantile, over
        the n-grams whose total count could reach it at all (Gilbert 2005): in 3 records
        split 3 to 0 between sets of the same size, an n-gram cannot, however lopsided. Both
        need the effect size `min_ratio`, and two records."""
        none = np.zeros(len(y_s), dtype=bool)
        if n_s < 2 or n_r < 1 or len(y_s) == 0:
            return none, -math.inf, 0
        _, z, ratio = log_odds(y_s, n_s, y_r, n_r)
        over = (y_s >= 2) & (ratio >= self.min_ratio)
        alpha = 1.0 - self.quantile
        if alpha <= 0:
            return over & (z >= self.min_z), -math.inf, 0
        testable = (fisher_log_p_min(y_s, n_s, y_r, n_r, lf) <= math.log(alpha)) & (y_s >= 2)
        log_p = np.zeros(len(y_s))
        log_p[testable] = fisher_log_p(y_s[testable], n_s, y_r[testable], n_r, lf,
                                       stop_above=alpha)
        cut = benjamini_hochberg(log_p[testable], alpha)
        return over & ((z >= self.min_z) | (log_p <= cut)), cut, int(testable.sum())

    def _ngram_texts(self, texts: list[str], table: pd.DataFrame) -> list[str]:
        """The words of each template n-gram, from its first occurrence in the synthetic set:
        read in growing slices until every one is found, which is early for n-grams that
        many records share."""
        found: dict[tuple[int, int], str] = {}
        wanted = {int(n): np.sort(h.to_numpy(np.uint64)) for n, h in table.groupby("n")["hash"]}
        start, size = 0, 2_000
        while len(found) < len(table) and start < len(texts):
            chunk = list(texts[start:start + size])
            start, size = start + size, min(2 * size, _CHUNK)
            tokens = tokenize(chunk)
            for n, hashes in wanted.items():
                g, fits = ngram_hashes(tokens, n)
                pos = np.flatnonzero(fits & _member(g, hashes))
                uniq, first = np.unique(g[pos], return_index=True)
                for h, p in zip(uniq.tolist(), pos[first].tolist()):
                    found.setdefault((n, h), tokens.text(p, n))
        return [found.get((int(n), int(h)), "") for n, h in zip(table["n"], table["hash"])]

    def _fit_stock_phrases(self, real_counts: dict[int, int], synth_counts: dict[int, int]
                           ) -> None:
        """Which stock phrases count, for a new text and, leave-one-out, for a synthetic and
        a real record of the fitted sets (see phrase_counts)."""
        n_s, n_r = self.n_synthetic_, self.n_real_
        rows = []
        self.active_phrases_: dict = {held: {} for held in HELD_IN}
        for length, by_hash in self.phrases_by_length_.items():
            keys = np.array(sorted(by_hash), dtype=np.uint64)
            s = np.array([synth_counts.get(int(h), 0) for h in keys], dtype=np.int64)
            r = np.array([real_counts.get(int(h), 0) for h in keys], dtype=np.int64)
            full = phrase_counts(s, n_s, r, n_r)
            loo_synth = phrase_counts(np.maximum(s - 1, 0), n_s - 1, r, n_r)
            loo_real = phrase_counts(s, n_s, np.maximum(r - 1, 0), n_r - 1)
            for held, chosen in ((None, full), ("synthetic", loo_synth), ("real", loo_real)):
                self.active_phrases_[held][length] = keys[chosen]
            rows += [{"phrase": by_hash[int(h)], "synthetic_records": int(a),
                      "real_records": int(b), "counts": bool(c)}
                     for h, a, b, c in zip(keys, s, r, full)]
        self.phrases_ = pd.DataFrame(rows, columns=["phrase", "synthetic_records",
                                                    "real_records", "counts"])

    def _phrase_record_counts(self, tokens: Tokens) -> dict[int, int]:
        """{phrase hash: number of records containing it}."""
        out: dict[int, int] = {}
        for length, by_hash in self.phrases_by_length_.items():
            wanted = np.sort(np.array(list(by_hash), dtype=np.uint64))
            g, fits = ngram_hashes(tokens, length)
            pos = np.flatnonzero(fits & _member(g, wanted))
            pairs = np.unique(np.stack([tokens.doc[pos].astype(np.uint64), g[pos]]), axis=1)
            hashes, counts = np.unique(pairs[1], return_counts=True)
            out.update(zip(hashes.tolist(), counts.tolist()))
        return out

    def _fit_tails(self, raw: pd.DataFrame, real_lengths: np.ndarray) -> None:
        """Each signal's tail among the real records (scored leave-one-out), and the bar."""
        words = float(np.median(real_lengths)) if len(real_lengths) else 0.0
        # the unit of the tail where the real records give it no spread: one n-gram of a
        # typical record, one phrase, one repetition limit
        units = {"template": min(1.0, self.min_n / max(words, 1.0)), "stock": 1.0,
                 "repetition": 1.0}
        self.tails_ = {s: SignalTail.fit(raw[RAW[s]].to_numpy(), units[s]) for s in SIGNALS}
        level = per_signal_level(self.quantile)
        self.signal_thresholds_ = {s: self.tails_[s].value_at(level) for s in SIGNALS}
        self.threshold_ = 0.5
        self.calibration_ = self._calibrate(raw)
        self.calibration_scores_ = self.calibration_["score"].to_numpy()

    # -- scoring

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """Formulaicness of each new text, 0 natural .. 1 boilerplate."""
        return self.score_components(texts)["score"].to_numpy()

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Score minus threshold: positive means formulaic."""
        return self.score_samples(texts) - self.threshold_

    def score_components(self, texts: Sequence[str], held_in: str | None = None
                         ) -> pd.DataFrame:
        """One row per text: the raw signals, each signal's calibrated [0, 1] score and the
        combined score (the largest of them).

        template_share: share of words inside templates; stock_phrases: how many distinct
        stock phrases that count; repetition_ratio: the Gopher statistic furthest over its
        limit, as statistic / limit, and repetition_kind names it. `held_in`: "synthetic" or
        "real" when the texts are records of that fitted set (each one's own words are then
        left out of the counts), None for new texts.
        """
        return self._calibrate(self._raw_components(list(texts), held_in))

    def _calibrate(self, raw: pd.DataFrame) -> pd.DataFrame:
        table = raw.copy()
        for s in SIGNALS:
            table[s] = tail_to_score(self.tails_[s].survival(table[RAW[s]].to_numpy()),
                                     self.quantile)
        table["score"] = table[list(SIGNALS)].max(axis=1) if len(table) else 0.0
        return table

    def _raw_components(self, texts: list[str], held_in: str | None) -> pd.DataFrame:
        if held_in not in HELD_IN:
            raise ValueError(f"held_in must be one of {HELD_IN}, not {held_in!r}")
        parts = [self._chunk_components(chunk, held_in) for chunk in _chunks(texts)]
        return pd.concat(parts, ignore_index=True) if parts \
            else self._chunk_components([], held_in)

    def _chunk_components(self, texts: list[str], held_in: str | None,
                          tokens: Tokens | None = None, stats: pd.DataFrame | None = None
                          ) -> pd.DataFrame:
        tokens = tokenize(texts) if tokens is None else tokens
        lengths = tokens.lengths
        covered = self._template_cover(tokens, held_in)
        share = np.divide(_per_doc_sum(tokens, covered), lengths,
                          out=np.zeros(tokens.n_docs), where=lengths > 0)
        stock = np.zeros(tokens.n_docs, dtype=np.int64)
        for doc, _, _ in self._phrase_hits(tokens, held_in):
            stock += np.bincount(doc, minlength=tokens.n_docs)
        ratio, kind, _ = self._repetition(texts, tokens, stats)
        return pd.DataFrame({"template_share": share, "stock_phrases": stock,
                             "repetition_ratio": ratio, "repetition_kind": kind})

    def _template_cover(self, tokens: Tokens, held_in: str | None) -> np.ndarray:
        """A mask over tokens: True inside a template n-gram."""
        covered = np.zeros(len(tokens.hash), dtype=bool)
        for n, hashes in self.template_hashes_[held_in].items():
            if len(hashes) == 0:
                continue
            g, fits = ngram_hashes(tokens, n)
            covered |= _cover(len(covered), np.flatnonzero(fits & _member(g, hashes)), n)
        return covered

    def _phrase_hits(self, tokens: Tokens, held_in: str | None):
        """(doc, hash, length) arrays of the distinct stock phrases that count, per record.

        Longest phrases first, and a phrase found only inside a longer one found is not
        counted again: "i hope this helps" is one phrase, not two with "hope this helps".
        """
        covered = np.zeros(len(tokens.hash), dtype=bool)
        active = self.active_phrases_[held_in]
        for length in sorted(active, reverse=True):
            g, fits = ngram_hashes(tokens, length)
            pos = np.flatnonzero(fits & _member(g, active[length]))
            pos = pos[~(covered[pos] & covered[pos + length - 1])]
            covered |= _cover(len(covered), pos, length)
            pairs = np.unique(np.stack([tokens.doc[pos].astype(np.uint64), g[pos]]), axis=1)
            yield pairs[0].astype(np.int64), pairs[1], length

    def _repetition(self, texts: list[str], tokens: Tokens, stats: pd.DataFrame | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ratio, kind, value): the repetition statistic furthest over its limit."""
        stats = repetition(texts, tokens) if stats is None else stats
        names = list(stats.columns)
        ratios = stats.to_numpy() / np.array([self.repetition_limits_[k] for k in names])
        worst = ratios.argmax(axis=1) if len(stats) else np.zeros(0, dtype=int)
        rows = np.arange(len(stats))
        return (ratios[rows, worst], np.asarray(names, dtype=object)[worst],
                stats.to_numpy()[rows, worst])

    # -- explaining

    def matches(self, texts: Sequence[str], limit: int = 3, held_in: str | None = None
                ) -> list[str]:
        """For each text, what made it formulaic: its longest template passages, the stock
        phrases that count, and the repetition statistic when that signal is over its bar."""
        texts = list(texts)
        out: list[str] = []
        for chunk in _chunks(texts):
            out += self._chunk_matches(chunk, limit, held_in)
        return out

    def _chunk_matches(self, texts: list[str], limit: int, held_in: str | None) -> list[str]:
        tokens = tokenize(texts)
        covered = self._template_cover(tokens, held_in)
        total = len(covered)
        found: list[list[str]] = [[] for _ in texts]
        # runs of covered tokens, cut at record boundaries; the longest first in each record
        boundary = np.zeros(total + 1, dtype=bool)
        boundary[tokens.starts] = True
        padded = np.concatenate([[False], covered, [False]])
        run_starts = np.flatnonzero(covered & (~padded[:-2] | boundary[:-1]))
        run_ends = np.flatnonzero(covered & (~padded[2:] | boundary[1:])) + 1
        for d, minus_len, a in sorted(zip(tokens.doc[run_starts].tolist(),
                                          (run_starts - run_ends).tolist(),
                                          run_starts.tolist())):
            if len(found[d]) < limit:
                found[d].append(tokens.text(a, -minus_len))
        phrases = []
        for doc, hashes, length in self._phrase_hits(tokens, held_in):
            by_hash = self.phrases_by_length_[length]
            phrases += [(d, -length, by_hash[int(h)]) for d, h in zip(doc.tolist(),
                                                                     hashes.tolist())]
        for d, _, phrase in sorted(phrases):   # longest first
            inside = [i for i, f in enumerate(found[d]) if f in phrase]
            if any(phrase in f for f in found[d]):
                continue                        # already said by a longer passage
            if inside:                          # the phrase says more than a passage in it
                found[d][inside[0]] = phrase
            elif len(found[d]) < limit:
                found[d].append(phrase)
        ratio, kind, value = self._repetition(texts, tokens)
        bar = self.signal_thresholds_["repetition"]
        out = []
        for d in range(len(texts)):
            parts = [f"'{f}'" for f in found[d]]
            if ratio[d] > bar:
                parts.append(f"{kind[d]} {value[d]:.2f} > "
                             f"{self.repetition_limits_[kind[d]] * bar:.2f}")
            out.append(", ".join(parts))
        return out


# ----------------------------------------------------------------------------- repetition

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
        pos, first = _group_within_docs(tokens, g, fits)
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
            repeated = _cover(total, pos[~first], n)
            stats[f"duplicated {n}-grams"] = _per_doc_sum(tokens, repeated * tokens.chars) \
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


# ----------------------------------------------------------------------------- report helpers

def top_templates(templates: pd.DataFrame, k: int = _TOP_TEMPLATES) -> list[dict]:
    """The k most over-represented n-grams (by Fisher's p-value, as templates_ is sorted),
    without the fragments of a longer one:
    "always remember" adds nothing beside "always remember to" found in as many records."""
    candidates = templates.head(10 * k).to_dict("records")
    shown = []
    for row in candidates:
        inside = any(other["n"] > row["n"] and f" {row['ngram']} " in f" {other['ngram']} "
                     and other["synthetic_records"] >= 0.8 * row["synthetic_records"]
                     for other in candidates)
        if not inside:
            shown.append({"ngram": row["ngram"], "n": row["n"],
                          "synthetic_records": row["synthetic_records"],
                          "real_records": row["real_records"],
                          "log_odds": round(float(row["log_odds"]), 3),
                          "z": round(float(row["z"]), 2),
                          "p_value": float(f"{row['p_value']:.3g}")})
        if len(shown) == k:
            break
    return shown


# ----------------------------------------------------------------------------- the stage

def run(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Scores every scorable record, rejects the synthetic ones above the threshold learned on
    the real records, and reports the threshold, each signal's bar, the score distributions,
    the over-represented n-grams and the stock phrases."""
    cfg = ctx.config.formulaic
    active = scorable(table)
    real, synth = is_real(table) & active, is_synthetic(table) & active
    texts = table["text"].to_numpy(dtype=object)
    phrases = [*load_stock_phrases(), *cfg.stock_phrases] if cfg.builtin_stock_phrases \
        else list(cfg.stock_phrases)
    scorer = FormulaicScorer(quantile=cfg.quantile, min_n=cfg.min_n, max_n=cfg.max_n,
                             min_z=cfg.min_z, min_ratio=cfg.min_ratio, stock_phrases=phrases)
    scorer.fit(texts[real], texts[synth])
    calibrated = bool(real.any())

    on_real = scorer.calibration_
    on_synth = scorer.score_components(texts[synth], held_in="synthetic")
    scores = np.full(len(table), np.nan)
    scores[real] = on_real["score"].to_numpy()
    scores[synth] = on_synth["score"].to_numpy()
    table["formulaic"] = scores
    rejected = synth & (scores > scorer.threshold_) if calibrated \
        else np.zeros(len(table), dtype=bool)
    matches = np.full(len(table), None, dtype=object)
    matches[rejected] = scorer.matches(texts[rejected], held_in="synthetic")
    table["formulaic_matches"] = matches
    reject(table, rejected, Reason.FORMULAIC,
           [f"formulaic {scores[i]:.2f} > threshold {scorer.threshold_:.2f}: {matches[i]}"
            for i in np.flatnonzero(rejected)])

    details = {
        "threshold": round(scorer.threshold_, 4) if calibrated else None,
        "quantile": cfg.quantile,
        "calibrated_on": "real records, each scored leave-one-out" if calibrated
        else "nothing: no real records, no record rejected",
        "real_calibration_records": int(real.sum()),
        "synthetic_scored": int(synth.sum()),
        "rejected": int(rejected.sum()),
        "synthetic_with_stock_phrase": round(float((on_synth["stock_phrases"] > 0).mean()), 4)
        if len(on_synth) else 0.0,
        "real_with_stock_phrase": round(float((on_real["stock_phrases"] > 0).mean()), 4)
        if len(on_real) else 0.0,
        "scores": histogram({"real": on_real["score"].to_numpy(),
                             "synthetic": on_synth["score"].to_numpy()},
                            bins=20, bounds=(0.0, 1.0)),
        "signals": signal_table(scorer, on_synth, on_real),
        "rare_template_p_value_bar": float(f"{math.exp(scorer.log_p_cut_):.3g}")
        if scorer.log_p_cut_ > -math.inf else None,      # None: no rare template passed
        "template_tests": scorer.testable_ngrams_,
        "over_represented_ngrams": top_templates(scorer.templates_),
        "stock_phrases": scorer.phrases_[scorer.phrases_["synthetic_records"] > 0]
        .sort_values(["synthetic_records", "phrase"], ascending=[False, True])
        .head(_TOP_TEMPLATES).to_dict("records"),
        "repetition_limits": [{"statistic": k, "gopher_limit": GOPHER_LIMITS[k],
                               "limit_used": round(v, 4)}
                              for k, v in scorer.repetition_limits_.items()],
    }
    return StageOutcome(details=details)


def signal_table(scorer: FormulaicScorer, synth: pd.DataFrame, real: pd.DataFrame
                 ) -> list[dict]:
    """Which signals carry weight here: each one's bar in its own units (the raw value above
    which it alone makes a record formulaic), how its raw values sit on real and synthetic
    records, and how many synthetic records it alone puts over the threshold."""
    rows = []
    for name in SIGNALS:
        raw = RAW[name]
        rows.append({
            "signal": name,
            "raw": raw,
            "bar": round(float(scorer.signal_thresholds_[name]), 4),
            "real_mean": round(float(real[raw].mean()), 4) if len(real) else 0.0,
            "real_max": round(float(real[raw].max()), 4) if len(real) else 0.0,
            "synthetic_mean": round(float(synth[raw].mean()), 4) if len(synth) else 0.0,
            "synthetic_records_with_it": int((synth[raw] > 0).sum()),
            "synthetic_over_threshold_alone": int((synth[name] > scorer.threshold_).sum()),
        })
    return rows
