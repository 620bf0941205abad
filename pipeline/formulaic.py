"""Formulaic stage: how templated each record is, and which synthetic records are too much so.

Generated text drifts toward stock openers and closers, numbered-tip templates whose slots
alone change, and repetition loops. `FormulaicScorer` scores a record from 0 (natural) to 1
(boilerplate) with three signals, each of which a user can read back as a reason:

- template: the share of the record's words inside word n-grams that the synthetic records
  use far more often than the real ones (document frequencies compared by the smoothed
  log-odds ratio with an informative Dirichlet prior of Monroe et al. 2008, "Fightin' Words").
  No word list: it learns the templates of *this* generator against *this* real data, and a
  style that the real data shares (riddles, recipes, legal boilerplate) cancels out.
- stock: stock phrases of generated text (pipeline/data/stock_phrases.txt plus the user's),
  matched on words, case-insensitively; a phrase counts only where the synthetic records use
  it more often than the real ones do. Each phrase found halves what is left of the score.
- repetition: the Gopher repetition statistics (Rae et al. 2021) with the datatrove limits:
  duplicate lines, the top 2/3/4-gram and the duplicated 5..10-gram character fractions. The
  worst one over its limit is the signal: half its limit scores 0, the limit 0.5, 1.5 times
  the limit 1.

They combine as independent evidence, score = 1 - (1 - template)(1 - stock)(1 - repetition).
The threshold is learned like scikit-learn's EllipticEnvelope: a high quantile of the scores
of held-out real records (DESIGN.md §5). Real records get scores for the report, never the
reason.

Everything runs on one flat numpy stream of word hashes per corpus: n-gram hashes are a few
vector operations, per-record statistics are sorts and bincounts, so 100k records take
seconds (benchmarks/formulaic.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .records import Reason, holdout_mask, is_real, is_synthetic, reject, scorable
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

# Words: letters and digits, with inner apostrophes kept ("here's" is one word).
_WORD = re.compile(r"\w+(?:'\w+)*")
_SEP = "\x00"                # between texts in the joined corpus string
_MULT = np.uint64(0x9E3779B97F4A7C15)   # odd multiplier of the polynomial n-gram hash
_CHUNK = 100_000             # records scored at a time, to bound memory on large inputs
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


# ----------------------------------------------------------------------------- log-odds

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


# ----------------------------------------------------------------------------- the scorer

class FormulaicScorer:
    """Formulaicness of texts, 0 natural .. 1 boilerplate, with a threshold learned on real.

    `fit(real, synthetic, holdout)` learns the templates of the synthetic set against the
    reference real records, which stock phrases count, and `threshold_`, the `quantile` of the
    held-out real records' own scores (of `real` itself when no hold-out is given: slightly
    low, since those records helped define what is real). `score_samples(texts)` scores.
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

    def fit(self, real_texts: Sequence[str], synthetic_texts: Sequence[str] = (),
            holdout_texts: Sequence[str] | None = None) -> "FormulaicScorer":
        real_texts, synthetic_texts = list(real_texts), list(synthetic_texts)
        real, synth = tokenize(real_texts), tokenize(synthetic_texts)
        self.n_real_, self.n_synthetic_ = real.n_docs, synth.n_docs
        self._fit_templates(real, synth)
        self._fit_stock_phrases(real, synth)
        self._fit_repetition_limits(real_texts, real)
        calibration = real_texts if holdout_texts is None else list(holdout_texts)
        self.calibration_scores_ = self.score_samples(calibration)
        self.threshold_ = (float(np.quantile(self.calibration_scores_, self.quantile,
                                             method="higher"))
                           if len(calibration) else 1.0)
        return self

    def _fit_templates(self, real: Tokens, synth: Tokens) -> None:
        """The n-grams the synthetic records use far more often than the real ones."""
        self.template_hashes_: dict[int, np.ndarray] = {}
        rows = []
        for n in range(self.min_n, self.max_n + 1):
            found = np.zeros(0, dtype=np.uint64)
            if real.n_docs and synth.n_docs:
                hs, ys = document_frequencies(synth, n)
                hr, yr = document_frequencies(real, n)
                keep = ys >= 2      # one record cannot show a template
                hs, ys = hs[keep], ys[keep]
                yr = _lookup(hr, yr, hs)
                delta, z, ratio = log_odds(ys, synth.n_docs, yr, real.n_docs)
                over = (z >= self.min_z) & (ratio >= self.min_ratio)
                found = hs[over]
                rows.append(pd.DataFrame({"n": n, "hash": found, "synthetic_records": ys[over],
                                          "real_records": yr[over], "log_odds": delta[over],
                                          "z": z[over]}))
            self.template_hashes_[n] = found
        table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["n", "hash", "synthetic_records", "real_records", "log_odds", "z"])
        table["ngram"] = self._ngram_texts(synth, table)
        self.templates_ = table.sort_values(["z", "ngram"], ascending=[False, True],
                                            ignore_index=True)

    def _ngram_texts(self, synth: Tokens, table: pd.DataFrame) -> list[str]:
        """The words of each template n-gram, from its first occurrence in the synthetic set."""
        texts = {}
        for n, hashes in table.groupby("n")["hash"]:
            g, fits = ngram_hashes(synth, int(n))
            pos = np.flatnonzero(fits & _member(g, np.sort(hashes.to_numpy(np.uint64))))
            uniq, first = np.unique(g[pos], return_index=True)
            for h, p in zip(uniq.tolist(), pos[first].tolist()):
                texts[(int(n), h)] = synth.text(p, int(n))
        return [texts.get((int(n), int(h)), "") for n, h in zip(table["n"], table["hash"])]

    def _fit_stock_phrases(self, real: Tokens, synth: Tokens) -> None:
        """Which stock phrases count: those the synthetic records use more often than the real
        ones (all of them when there is no synthetic set to compare)."""
        phrases = list(self.stock_phrases) if self.stock_phrases is not None \
            else load_stock_phrases()
        self.phrases_by_length_ = _phrase_hashes(phrases)
        real_counts = self._phrase_record_counts(real)
        synth_counts = self._phrase_record_counts(synth)
        rows = []
        self.active_phrases_: dict[int, np.ndarray] = {}
        for length, by_hash in self.phrases_by_length_.items():
            active = []
            for h, phrase in by_hash.items():
                r, s = real_counts.get(h, 0), synth_counts.get(h, 0)
                counts = (not synth.n_docs or not real.n_docs
                          or s / synth.n_docs > r / real.n_docs)
                if counts:
                    active.append(h)
                rows.append({"phrase": phrase, "synthetic_records": s, "real_records": r,
                             "counts": bool(counts)})
            self.active_phrases_[length] = np.sort(np.array(active, dtype=np.uint64))
        self.phrases_ = pd.DataFrame(rows, columns=["phrase", "synthetic_records",
                                                    "real_records", "counts"])

    def _fit_repetition_limits(self, real_texts: list[str], real: Tokens) -> None:
        """Each Gopher statistic's limit, raised to what the real records themselves reach
        (their `quantile`): song lyrics with a refrain or forms with repeated lines are the
        real style then, not a generator's loop."""
        stats = repetition(real_texts, real)
        self.repetition_limits_ = {
            name: max(limit, float(np.quantile(stats[name], self.quantile)) if len(stats) else 0)
            for name, limit in GOPHER_LIMITS.items()}

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

    # -- scoring

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """Formulaicness of each text, 0 natural .. 1 boilerplate."""
        return self.score_components(texts)["score"].to_numpy()

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Score minus threshold: positive means formulaic."""
        return self.score_samples(texts) - self.threshold_

    def score_components(self, texts: Sequence[str]) -> pd.DataFrame:
        """One row per text: the raw signals, their [0, 1] scores and the combined score.

        template: share of words inside over-represented n-grams; stock_phrases: how many
        distinct stock phrases that count; repetition_ratio: the Gopher statistic furthest
        over its limit, as statistic / limit, and repetition_kind names it.
        """
        texts = list(texts)
        parts = [self._components(texts[i:i + _CHUNK]) for i in range(0, len(texts), _CHUNK)]
        table = pd.concat(parts, ignore_index=True) if parts else self._components([])
        table["stock"] = 1 - 0.5 ** table["stock_phrases"]
        table["repetition"] = np.clip(table["repetition_ratio"] - 1, 0, 1)
        table["score"] = 1 - (1 - table["template"]) * (1 - table["stock"]) \
            * (1 - table["repetition"])
        return table

    def _components(self, texts: list[str]) -> pd.DataFrame:
        tokens = tokenize(texts)
        lengths = tokens.lengths
        covered = self._template_cover(tokens)
        template = np.divide(_per_doc_sum(tokens, covered), lengths,
                             out=np.zeros(tokens.n_docs), where=lengths > 0)
        stock = np.zeros(tokens.n_docs, dtype=np.int64)
        for doc, _, _ in self._phrase_hits(tokens):
            stock += np.bincount(doc, minlength=tokens.n_docs)
        ratio, kind, _ = self._repetition(texts, tokens)
        return pd.DataFrame({"template": template, "stock_phrases": stock,
                             "repetition_ratio": ratio, "repetition_kind": kind})

    def _template_cover(self, tokens: Tokens) -> np.ndarray:
        """A mask over tokens: True inside an over-represented n-gram."""
        covered = np.zeros(len(tokens.hash), dtype=bool)
        for n, hashes in self.template_hashes_.items():
            g, fits = ngram_hashes(tokens, n)
            covered |= _cover(len(covered), np.flatnonzero(fits & _member(g, hashes)), n)
        return covered

    def _phrase_hits(self, tokens: Tokens):
        """(doc, hash, length) arrays of the distinct stock phrases that count, per record.

        Longest phrases first, and a phrase found only inside a longer one found is not
        counted again: "i hope this helps" is one phrase, not two with "hope this helps".
        """
        covered = np.zeros(len(tokens.hash), dtype=bool)
        for length in sorted(self.active_phrases_, reverse=True):
            g, fits = ngram_hashes(tokens, length)
            pos = np.flatnonzero(fits & _member(g, self.active_phrases_[length]))
            pos = pos[~(covered[pos] & covered[pos + length - 1])]
            covered |= _cover(len(covered), pos, length)
            pairs = np.unique(np.stack([tokens.doc[pos].astype(np.uint64), g[pos]]), axis=1)
            yield pairs[0].astype(np.int64), pairs[1], length

    def _repetition(self, texts: list[str], tokens: Tokens
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ratio, kind, value): the repetition statistic furthest over its limit."""
        stats = repetition(texts, tokens)
        names = list(stats.columns)
        ratios = stats.to_numpy() / np.array([self.repetition_limits_[k] for k in names])
        worst = ratios.argmax(axis=1) if len(stats) else np.zeros(0, dtype=int)
        rows = np.arange(len(stats))
        return (ratios[rows, worst], np.asarray(names, dtype=object)[worst],
                stats.to_numpy()[rows, worst])

    # -- explaining

    def matches(self, texts: Sequence[str], limit: int = 3) -> list[str]:
        """For each text, what made it formulaic: its longest template passages, the stock
        phrases that count, and a repetition statistic over its limit."""
        texts = list(texts)
        if not texts:
            return []
        tokens = tokenize(texts)
        covered = self._template_cover(tokens)
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
        for doc, hashes, length in self._phrase_hits(tokens):
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
        out = []
        for d in range(len(texts)):
            parts = [f"'{f}'" for f in found[d]]
            if ratio[d] >= 1:
                parts.append(f"{kind[d]} {value[d]:.2f} > {self.repetition_limits_[kind[d]]:.2f}")
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
    """The k most over-represented n-grams by z, without the fragments of a longer one:
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
                          "z": round(float(row["z"]), 2)})
        if len(shown) == k:
            break
    return shown


def histogram(series: dict[str, np.ndarray], bins: int = 20) -> dict:
    """{"bins", "counts"}: what report.html draws as an SVG histogram."""
    edges = np.linspace(0, 1, bins + 1)
    return {"bins": [round(float(e), 3) for e in edges],
            "counts": {name: np.histogram(np.clip(v, 0, 1), edges)[0].tolist()
                       for name, v in series.items()}}


# ----------------------------------------------------------------------------- the stage

def run(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Scores every scorable record, rejects the synthetic ones above the threshold learned on
    the real hold-out, and reports the threshold, the score distributions, the
    over-represented n-grams and the stock phrases."""
    cfg = ctx.config.formulaic
    active = scorable(table)
    real, synth = is_real(table) & active, is_synthetic(table) & active
    holdout = holdout_mask(table, ctx.config.embed.holdout_fraction, ctx.config.seed) & real
    reference = real & ~holdout
    if not reference.any():          # too few real records to spare a hold-out
        reference, holdout = holdout, np.zeros(len(table), dtype=bool)
    texts = table["text"].to_numpy(dtype=object)
    phrases = [*load_stock_phrases(), *cfg.stock_phrases] if cfg.builtin_stock_phrases \
        else list(cfg.stock_phrases)
    scorer = FormulaicScorer(quantile=cfg.quantile, min_n=cfg.min_n, max_n=cfg.max_n,
                             min_z=cfg.min_z, min_ratio=cfg.min_ratio, stock_phrases=phrases)
    scorer.fit(texts[reference], texts[synth], texts[holdout] if holdout.any() else None)
    calibrated = bool(real.any())

    scored = real | synth
    components = scorer.score_components(texts[scored])
    scores = np.full(len(table), np.nan)
    scores[scored] = components["score"].to_numpy()
    table["formulaic"] = scores
    rejected = synth & (scores > scorer.threshold_) if calibrated \
        else np.zeros(len(table), dtype=bool)
    matches = np.full(len(table), None, dtype=object)
    matches[rejected] = scorer.matches(texts[rejected])
    table["formulaic_matches"] = matches
    reject(table, rejected, Reason.FORMULAIC,
           [f"formulaic {scores[i]:.2f} > threshold {scorer.threshold_:.2f}: {matches[i]}"
            for i in np.flatnonzero(rejected)])

    on_synth = components[synth[scored]]
    on_holdout = components[(holdout if holdout.any() else reference)[scored]]
    details = {
        "threshold": round(scorer.threshold_, 4) if calibrated else None,
        "quantile": cfg.quantile,
        "calibrated_on": ("real hold-out" if holdout.any() else "real records (no hold-out)")
        if calibrated else "nothing: no real records, no record rejected",
        "real_calibration_records": int(len(on_holdout)),
        "real_reference_records": int(reference.sum()),
        "synthetic_scored": int(synth.sum()),
        "rejected": int(rejected.sum()),
        "synthetic_with_stock_phrase": round(float((on_synth["stock_phrases"] > 0).mean()), 4)
        if len(on_synth) else 0.0,
        "real_with_stock_phrase": round(float((on_holdout["stock_phrases"] > 0).mean()), 4)
        if len(on_holdout) else 0.0,
        "scores": histogram({"real hold-out": on_holdout["score"].to_numpy(),
                             "synthetic": on_synth["score"].to_numpy()}),
        "signals": signal_table(on_synth, on_holdout, scorer.threshold_),
        "over_represented_ngrams": top_templates(scorer.templates_),
        "stock_phrases": scorer.phrases_[scorer.phrases_["synthetic_records"] > 0]
        .sort_values(["synthetic_records", "phrase"], ascending=[False, True])
        .head(_TOP_TEMPLATES).to_dict("records"),
        "repetition_limits": [{"statistic": k, "gopher_limit": GOPHER_LIMITS[k],
                               "limit_used": round(v, 4)}
                              for k, v in scorer.repetition_limits_.items()],
    }
    return StageOutcome(details=details)


def signal_table(synth: pd.DataFrame, real: pd.DataFrame, threshold: float) -> list[dict]:
    """Which signals carry weight here: how often each fires on synthetic and real records,
    and how many synthetic records it alone would push over the threshold."""
    rows = []
    for name in ("template", "stock", "repetition"):
        rows.append({
            "signal": name,
            "synthetic_mean": round(float(synth[name].mean()), 4) if len(synth) else 0.0,
            "real_holdout_mean": round(float(real[name].mean()), 4) if len(real) else 0.0,
            "synthetic_records_with_it": int((synth[name] > 0).sum()),
            "synthetic_over_threshold_alone": int((synth[name] > threshold).sum()),
        })
    return rows
