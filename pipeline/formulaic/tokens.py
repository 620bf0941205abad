"""Words of many texts as one flat numpy stream, and the n-gram arithmetic on it.

Every formulaic signal reads the same stream: n-gram hashes are a few vector operations over
it, per-record statistics are sorts and bincounts, and corpus counts merge per chunk, so 100k
records take seconds (benchmarks/formulaic.py).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ..text import LEXICAL_WORD

_SEP = "\x00"                # between texts in the joined corpus string
MULT = np.uint64(0x9E3779B97F4A7C15)   # odd multiplier of the polynomial n-gram hash
CHUNK = 100_000              # records tokenized at a time, to bound memory on large inputs


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
    words_of = [[] if p == _SEP else LEXICAL_WORD.findall(p) for p in distinct]
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
        acc = acc[:-1] * MULT + h[k - 1:]
    tokens._last = (n, acc)
    g[:m] = acc
    ends = tokens.starts[1:][tokens.doc[:m]]
    fits[:m] = np.arange(m) + n <= ends
    return g, fits


def group_within_docs(tokens: Tokens, g: np.ndarray, fits: np.ndarray
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
        raise ValueError("too many or too long records for one chunk")  # CHUNK prevents it
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
    pos, first = group_within_docs(tokens, g, fits)
    return np.unique(g[pos[first]], return_counts=True)


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[keys == q] for each query (0 where absent); keys sorted."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=values.dtype)
    i = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[i] == queries, values[i], 0)


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
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


def cover(total: int, starts: np.ndarray, n: int) -> np.ndarray:
    """A mask over tokens: True on the n tokens from each start."""
    covered = np.zeros(total, dtype=bool)
    for k in range(n):
        covered[starts + k] = True
    return covered


def per_doc_sum(tokens: Tokens, weights: np.ndarray) -> np.ndarray:
    return np.bincount(tokens.doc, weights=weights, minlength=tokens.n_docs)[:tokens.n_docs]


def chunks(texts: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(texts), CHUNK):
        yield list(texts[i:i + CHUNK])


def merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
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
