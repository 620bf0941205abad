"""MinHash signatures for many records at once, LSH candidates, and the true Jaccard check.

The dedup stage uses three pieces from here:

- `Shingler`: the shingles of a record (word or character n-grams of its normalized text), as
  a Python set for the exact Jaccard check, and as 32-bit hashes for a whole batch of records
  at once. Records with fewer units than n are one shingle, their whole text, so they are
  compared exactly instead of silently never matching.
- `MinHasher.signatures`: datasketch MinHash signatures (scheme "affine32", permutations drawn
  by datasketch from the seed) computed with numpy for a batch of records: every shingle is
  hashed once, each permutation is one vectorized multiply-add and one segmented minimum.
  The values are the ones datasketch's own `MinHash(hashfunc=...).update_batch` gives; only
  the per-shingle Python loop is gone.
- `CandidateIndex`: datasketch `MinHashLSH` with bands and rows chosen for recall
  (`lsh_params`), filled batch by batch (its bands optionally split over worker processes),
  returning the buckets that hold more than one record. LSH candidates are only
  candidates: the stage confirms each one with `jaccard` on the shingle sets.

Shingle hashes are polynomial hashes of byte spans of the batch's normalized texts: after
normalization a word n-gram is a substring ("w1 w2 w3"), so one prefix sum over the bytes of
a batch hashes every shingle of every record without building a Python string per shingle.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import re
import sys

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

SCHEME = "affine32"  # datasketch's default scheme: 32-bit values, bijective permutations

# Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar)
# and emoji: in word mode each such character is a word of its own, so a CJK record has
# shingles instead of being a single "word".
_UNSPACED = re.compile(
    "([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f\u2600-\u27bf\U0001f000-\U0001faff])")

# Polynomial hash of a byte span: sum((byte + 1) * P**i) mod 2**64. P is odd, hence
# invertible mod 2**64, so the hash of span [s, e) is (C[e] - C[s]) * P**-s with C the prefix
# sums: one vectorized expression for every shingle of a batch.
_P = np.uint64(0x9E3779B97F4A7C15)
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
_SEPARATOR = 10  # b"\n": never inside a normalized text (whitespace is collapsed to spaces)
_SPACE = 32
_U64 = np.uint64


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads the polynomial hash over all bits."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, which datasketch's affine32 scheme applies to every
    input hash before its permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle's UTF-8 bytes, one at a time: the same value that
    `Shingler.hashes` computes for a whole batch (the hashfunc to give datasketch's MinHash
    for identical signatures)."""
    h = 0
    power = 1
    for byte in shingle:
        h = (h + (byte + 1) * power) & 0xFFFFFFFFFFFFFFFF
        power = (power * int(_P)) & 0xFFFFFFFFFFFFFFFF
    return int(_fmix64(np.array([h], dtype=np.uint64))[0] & _U64(0xFFFFFFFF))


class Shingler:
    """Word or character n-grams of normalized text, as sets or as batch hashes."""

    def __init__(self, n: int, unit: str = "word"):
        if unit not in ("word", "char"):
            raise ValueError(f"shingle unit must be 'word' or 'char', got {unit!r}")
        self.n = n
        self.unit = unit

    def shingle_text(self, normalized: str) -> str:
        """The text the shingles are cut from, given the text after `dedup.normalize` (the
        normalization exact dedup uses): in word mode characters of unspaced scripts and
        emoji become words of their own."""
        if self.unit == "char" or normalized.isascii():
            return normalized
        return " ".join(_UNSPACED.sub(r" \1 ", normalized).split())

    def shingles(self, shingle_text: str) -> set:
        """The shingle set of one record (from `shingle_text`): n-word tuples or
        n-character strings; a record shorter than n units is one shingle, itself."""
        n = self.n
        units: list | str = shingle_text.split(" ") if self.unit == "word" else shingle_text
        if len(units) < n:
            return {tuple(units) if self.unit == "word" else shingle_text}
        if self.unit == "word":
            return set(zip(*(units[i:] for i in range(n))))
        return {shingle_text[i:i + n] for i in range(len(shingle_text) - n + 1)}

    def is_short(self, shingle_text: str) -> bool:
        units = shingle_text.count(" ") + 1 if self.unit == "word" else len(shingle_text)
        return units < self.n

    def hashes(self, shingle_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, firsts): the uint32 hash of every shingle of every record, grouped by
        record in order, and the index of each record's first shingle. Every record has at
        least one shingle (a short record's whole text), so `firsts` is strictly increasing.
        """
        n = self.n
        data = ("\n".join(shingle_texts) + "\n").encode("utf-8")
        buf = np.frombuffer(data, dtype=np.uint8)
        separators = np.flatnonzero(buf == _SEPARATOR)  # one per record, at its end
        doc_starts = np.r_[0, separators[:-1] + 1]
        if self.unit == "word":
            # A word ends at each space or separator and starts just after the previous one.
            ends = np.flatnonzero((buf == _SPACE) | (buf == _SEPARATOR))
            starts = np.r_[0, ends[:-1] + 1]
            units = np.fromiter((t.count(" ") + 1 for t in shingle_texts), dtype=np.int64,
                                count=len(shingle_texts))
        else:
            # A character starts at every byte that is not a UTF-8 continuation byte.
            bounds = np.flatnonzero((buf & 0xC0) != 0x80)
            is_char = buf[bounds[:-1]] != _SEPARATOR
            starts, ends = bounds[:-1][is_char], bounds[1:][is_char]
            units = np.fromiter(map(len, shingle_texts), dtype=np.int64,
                                count=len(shingle_texts))
        unit_doc = np.repeat(np.arange(len(shingle_texts)), units)

        # Each record has units - n + 1 shingles, or one (its whole text) when shorter than n.
        # The n-grams of all records in order are the windows that stay inside one record.
        first = np.arange(max(len(starts) - n + 1, 0))
        first = first[unit_doc[first] == unit_doc[first + n - 1]]
        short = units < n
        per_doc = np.where(short, 1, units - n + 1)
        firsts = np.cumsum(per_doc) - per_doc
        span_start = np.empty(int(per_doc.sum()), dtype=np.int64)
        span_end = np.empty_like(span_start)
        in_short = np.zeros(len(span_start), dtype=bool)
        in_short[firsts[short]] = True
        span_start[in_short], span_end[in_short] = doc_starts[short], separators[short]
        span_start[~in_short], span_end[~in_short] = starts[first], ends[first + n - 1]

        powers, inverse = self._powers(len(buf) + 1)
        prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
        terms = buf.astype(np.uint64)
        terms += _U64(1)  # so that a zero byte still changes the hash
        terms *= powers[:len(buf)]
        np.cumsum(terms, out=prefix[1:])  # wraps mod 2**64, as intended
        del terms
        h = (prefix[span_end] - prefix[span_start]) * inverse[span_start]
        return (_fmix64(h) & _U64(0xFFFFFFFF)).astype(np.uint32), firsts

    def _powers(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """P**i and P**-i mod 2**64 for i < length, computed once and grown on demand."""
        cached = getattr(self, "_power_cache", None)
        if cached is None or len(cached[0]) < length:
            size = max(length, 2 * len(cached[0]) if cached else 0)
            powers = np.full(size, _P, dtype=np.uint64)
            inverse = np.full(size, _P_INV, dtype=np.uint64)
            powers[0] = inverse[0] = 1
            np.cumprod(powers, out=powers)
            np.cumprod(inverse, out=inverse)
            cached = self._power_cache = (powers, inverse)
        return cached


class MinHasher:
    """datasketch MinHash signatures for a batch of records at once."""

    def __init__(self, shingler: Shingler, num_perm: int = 128, seed: int = 1):
        self.shingler = shingler
        self.num_perm = num_perm
        self.seed = seed
        # datasketch draws the permutations, so the signatures are its own.
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
        self._a = np.asarray(a, dtype=np.uint32)
        self._b = np.asarray(b, dtype=np.uint32)

    def signatures(self, shingle_texts: list[str]) -> np.ndarray:
        """(records, num_perm) uint32: the MinHash signature of each record."""
        out = np.empty((self.num_perm, len(shingle_texts)), dtype=np.uint32)
        if not shingle_texts:
            return out.T
        hashes, firsts = self.shingler.hashes(shingle_texts)
        hv = _fmix32(hashes)
        permuted = np.empty_like(hv)
        # One permutation at a time over all shingles of the batch: a contiguous 1-D pass
        # that stays in cache, then a segmented minimum per record.
        for k in range(self.num_perm):
            np.multiply(hv, self._a[k], out=permuted)  # wraps mod 2**32, as datasketch's
            permuted += self._b[k]
            out[k] = np.minimum.reduceat(permuted, firsts)
        return np.ascontiguousarray(out.T)

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def catch_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that LSH with `bands` x `rows` makes a pair of this Jaccard a candidate."""
    return 1.0 - (1.0 - similarity ** rows) ** bands


def lsh_params(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """(bands, rows): the fewest bands (longest rows) that make a pair exactly at the
    threshold a candidate with probability >= recall.

    datasketch's default optimizes a false-positive/false-negative balance and, for 0.8 with
    128 permutations, picks 9 x 13, which catches a pair at 0.8 only 40% of the time. Here
    the true Jaccard check removes false candidates, so we buy recall with more bands and
    pay only for verifying more candidates. Fewer bands keep the index and the false
    candidates small, hence the longest rows that reach the recall.
    """
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if catch_probability(threshold, bands, rows) >= recall:
            return bands, rows
    return num_perm, 1  # the most recall 1-row bands can give (threshold near 0)


class _BandRange:
    """A datasketch MinHashLSH over bands [first, first + count) of the signatures."""

    def __init__(self, first: int, count: int, rows: int, seed: int):
        self.columns = slice(first * rows, (first + count) * rows)
        self.seed = seed
        self.lsh = MinHashLSH(num_perm=count * rows, params=(count, rows))

    def insert(self, positions: list[int], signatures: np.ndarray) -> None:
        """`signatures` holds this range's columns only, one row per position."""
        for position, signature in zip(positions, signatures):
            self.lsh.insert(position, LeanMinHash(seed=self.seed, hashvalues=signature,
                                                  scheme=SCHEME), check_duplication=False)

    def groups(self) -> set[tuple[int, ...]]:
        """Every bucket holding two or more records, as a sorted tuple of positions."""
        found = set()
        for table in self.lsh.hashtables:
            for key, count in table.itemcounts().items():
                if count > 1:
                    found.add(tuple(sorted(table.get(key))))
        return found


def _serve_bands(conn, first: int, count: int, rows: int, seed: int) -> None:
    """Worker process: fills its band range from the batches it receives, answers with
    the buckets. It allocates millions of small acyclic containers and nothing else, so the
    cyclic garbage collector would only rescan them again and again: it stays off."""
    gc.disable()
    bands = _BandRange(first, count, rows, seed)
    try:
        while (batch := conn.recv()) is not None:
            bands.insert(*batch)
        conn.send(bands.groups())
    except (EOFError, BrokenPipeError):  # the stage stopped early (an error, ^C): just end
        pass
    conn.close()


class CandidateIndex:
    """datasketch MinHashLSH over the records' signatures, filled batch by batch.

    Inserting into MinHashLSH is a Python loop over bands for every record, the slowest
    part of dedup. With `workers` > 1 the bands are split over worker processes, each with
    its own MinHashLSH over its band range, filled while this process hashes the next
    batch. A pair is a candidate when it shares a bucket in any band, so the union of the
    ranges' buckets is exactly what one MinHashLSH over all bands would give: the result
    does not depend on `workers`. The index lives only until `groups()` returns.
    """

    def __init__(self, num_perm: int, bands: int, rows: int, seed: int = 1, workers: int = 1):
        self.num_perm, self.bands, self.rows = num_perm, bands, rows
        workers = max(1, min(workers, bands))
        sizes = [bands // workers + (i < bands % workers) for i in range(workers)]
        firsts = np.cumsum([0] + sizes[:-1]).tolist()
        self._local: _BandRange | None = None
        self._workers: list[tuple] = []
        self._gc_was_enabled = gc.isenabled()
        if workers == 1:
            gc.disable()  # see _serve_bands; restored by groups() or close()
            self._local = _BandRange(0, bands, rows, seed)
            return
        context = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        for first, count in zip(firsts, sizes):
            here, there = context.Pipe()
            process = context.Process(target=_serve_bands, args=(there, first, count, rows,
                                                                 seed), daemon=True)
            process.start()
            there.close()
            self._workers.append((here, process, slice(first * rows, (first + count) * rows)))

    def insert(self, positions: np.ndarray, signatures: np.ndarray) -> None:
        """Adds records (positions in the table) with their (len, num_perm) signatures."""
        keys = [int(p) for p in positions]
        if self._local is not None:
            self._local.insert(keys, signatures[:, self._local.columns])
        for conn, _, columns in self._workers:
            conn.send((keys, np.ascontiguousarray(signatures[:, columns])))

    def groups(self) -> list[tuple[int, ...]]:
        """The distinct buckets holding two or more records, in a fixed order."""
        found: set[tuple[int, ...]] = set()
        if self._local is not None:
            found = self._local.groups()
        for conn, _, _ in self._workers:
            conn.send(None)
        for conn, _, _ in self._workers:
            found |= conn.recv()
        self.close()
        return sorted(found)

    def close(self) -> None:
        self._local = None
        for conn, process, _ in self._workers:
            conn.close()
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        self._workers = []
        if self._gc_was_enabled:
            gc.enable()

    def __enter__(self) -> "CandidateIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def jaccard(a: set, b: set) -> float:
    """True Jaccard similarity of two shingle sets."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)
