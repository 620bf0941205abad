"""MinHash signatures for many records at once, LSH candidates, and the true Jaccard check.

The dedup stage uses three pieces from here:

- `Shingler`: the shingles of a record (word or character n-grams of its normalized text)
  and, for a whole batch of records at once, their 64-bit fingerprints. Records with fewer
  units than n are one shingle, their whole text, so they are compared exactly instead of
  silently never matching.
- `MinHasher.signatures`: datasketch MinHash signatures (scheme "affine32", permutations drawn
  by datasketch from the seed) computed with numpy for a batch of records: every shingle is
  hashed once, each permutation is one vectorized multiply-add and one segmented minimum.
  The values are the ones datasketch's own `MinHash(hashfunc=...).update_batch` gives; only
  the per-shingle Python loop is gone.
- `CandidateIndex`: LSH with datasketch `MinHashLSH`'s banding, bands and rows chosen for
  recall (`lsh_params`), its band keys computed in numpy a batch at a time and grouped by
  sorting, returning the buckets that hold more than one record. LSH candidates are only
  candidates: the stage confirms each one with `jaccard` on the shingle sets.

Fingerprints are polynomial hashes of byte spans of the batch's normalized texts: after
normalization a word n-gram is a substring ("w1 w2 w3"), so one prefix sum over the bytes of
a batch hashes every shingle of every record without building a Python string per shingle.
A record's set of 64-bit fingerprints stands for its shingle set in the Jaccard check (two
different shingles share a fingerprint with probability about 2**-64, as in Broder's
shingling); MinHash takes their low 32 bits, the width of datasketch's affine32 scheme.
"""

from __future__ import annotations

import numpy as np

from .text import split_unspaced

SCHEME = "affine32"  # datasketch's default scheme: 32-bit values, bijective permutations

# Polynomial hash of a byte span: sum((byte + 1) * P**i) mod 2**64. P is odd, hence
# invertible mod 2**64, so the hash of span [s, e) is (C[e] - C[s]) * P**-s with C the prefix
# sums: one vectorized expression for every shingle of a batch.
_P = np.uint64(0x9E3779B97F4A7C15)
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
_SEPARATOR = 10  # b"\n": never inside a normalized text (whitespace is collapsed to spaces)
_SPACE = 32
_U64 = np.uint64


def fmix64(h: np.ndarray) -> np.ndarray:
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


def shingle_fingerprint(shingle: bytes) -> int:
    """The 64-bit fingerprint of one shingle's UTF-8 bytes, computed alone: the value that
    `Shingler.fingerprints` gives for a whole batch. Its low 32 bits are the hashfunc that
    makes datasketch's own MinHash give our signatures."""
    h = 0
    power = 1
    for byte in shingle:
        h = (h + (byte + 1) * power) & 0xFFFFFFFFFFFFFFFF
        power = (power * int(_P)) & 0xFFFFFFFFFFFFFFFF
    return int(fmix64(np.array([h], dtype=np.uint64))[0])


class Shingler:
    """Word or character n-grams of normalized text, as sets or as batch fingerprints."""

    def __init__(self, n: int, unit: str = "word"):
        if unit not in ("word", "char"):
            raise ValueError(f"shingle unit must be 'word' or 'char', got {unit!r}")
        self.n = n
        self.unit = unit

    def shingle_text(self, normalized: str) -> str:
        """The text the shingles are cut from, given the text after `text.normalize` (the
        normalization exact dedup uses): in word mode characters of unspaced scripts and
        emoji become words of their own."""
        return normalized if self.unit == "char" else split_unspaced(normalized)

    def shingles(self, shingle_text: str) -> set:
        """The shingle set of one record (from `shingle_text`): n-word tuples or
        n-character strings; a record shorter than n units is one shingle, itself. The
        definition the fingerprints hash; building it is slow, so it serves as reference."""
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

    def fingerprints(self, shingle_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(fingerprints, firsts): the uint64 fingerprint of every shingle of every record,
        grouped by record in order, and the index of each record's first shingle. Every
        record has at least one shingle (a short record's whole text), so `firsts` is
        strictly increasing.
        """
        n = self.n
        data = ("\n".join(shingle_texts) + "\n").encode("utf-8")
        buf = np.frombuffer(data, dtype=np.uint8)
        if self.unit == "word":
            # A word ends at each space or separator and starts just after the previous one.
            ends = np.flatnonzero((buf == _SPACE) | (buf == _SEPARATOR))
            starts = np.r_[0, ends[:-1] + 1]
            last_units = np.flatnonzero(buf[ends] == _SEPARATOR)  # each record's last word
            units = np.diff(last_units, prepend=-1)
        else:
            # A character starts at every byte that is not a UTF-8 continuation byte; the
            # separators are among those starts, one after each record's characters.
            bounds = np.flatnonzero((buf & 0xC0) != 0x80)
            is_char = buf[bounds[:-1]] != _SEPARATOR
            starts, ends = bounds[:-1][is_char], bounds[1:][is_char]
            units = np.diff(np.flatnonzero(buf[bounds] == _SEPARATOR), prepend=-1) - 1
        first_unit = np.cumsum(units) - units

        # A record of u >= n units has u - n + 1 shingles, the windows of n units starting
        # at its units 0 .. u - n; a shorter one has one shingle, its whole text.
        windows = np.maximum(units - n + 1, 0)
        first_window = np.cumsum(windows) - windows
        window_start = np.arange(int(windows.sum())) + np.repeat(first_unit - first_window,
                                                                 windows)
        span_start = starts[window_start]
        span_end = ends[window_start + n - 1]
        per_record = np.maximum(windows, 1)
        firsts = np.cumsum(per_record) - per_record
        short = np.flatnonzero(windows == 0)
        if len(short):
            separators = np.flatnonzero(buf == _SEPARATOR)
            record_starts = np.r_[0, separators[:-1] + 1]
            at = firsts[short] - np.arange(len(short))  # where they go among the windows
            span_start = np.insert(span_start, at, record_starts[short])
            span_end = np.insert(span_end, at, separators[short])

        powers, inverse, power_sums = self._powers(len(buf) + 1)
        prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
        np.cumsum(buf * powers[:len(buf)], out=prefix[1:])  # wraps mod 2**64, as intended
        # (byte + 1) * P**i: the + 1, summed apart, keeps zero bytes from vanishing
        h = (prefix[span_end] - prefix[span_start] + power_sums[span_end]
             - power_sums[span_start]) * inverse[span_start]
        return fmix64(h), firsts

    def _powers(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P**i, P**-i and the sum of P**j for j < i, mod 2**64, for i < length: computed
        once and grown on demand."""
        cached = getattr(self, "_power_cache", None)
        if cached is None or len(cached[0]) < length:
            size = max(length, 2 * len(cached[0]) if cached else 0)
            powers = np.full(size, _P, dtype=np.uint64)
            inverse = np.full(size, _P_INV, dtype=np.uint64)
            powers[0] = inverse[0] = 1
            np.cumprod(powers, out=powers)
            np.cumprod(inverse, out=inverse)
            power_sums = np.zeros(size, dtype=np.uint64)
            np.cumsum(powers[:-1], out=power_sums[1:])
            cached = self._power_cache = (powers, inverse, power_sums)
        return cached


def affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of datasketch's `MinHash(num_perm, seed, scheme="affine32").permutations`,
    drawn the way datasketch draws them (tests/test_dedup.py holds them equal), so the
    signatures are datasketch's own without importing it: datasketch imports scipy, about
    0.3-0.5 s of every run's start-up."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


class MinHasher:
    """datasketch MinHash signatures for a batch of records at once."""

    def __init__(self, shingler: Shingler, num_perm: int = 128, seed: int = 1):
        self.shingler = shingler
        self.num_perm = num_perm
        self.seed = seed
        self._a, self._b = affine32_permutations(num_perm, seed)

    def signatures(self, shingle_texts: list[str], used: int | None = None) -> np.ndarray:
        """(records, used) uint32: the first `used` values (all by default) of each
        record's MinHash signature; LSH with bands x rows < num_perm reads no more."""
        used = self.num_perm if used is None else used
        out = np.empty((used, len(shingle_texts)), dtype=np.uint32)
        if not shingle_texts:
            return out.T
        return self.of_fingerprints(*self.shingler.fingerprints(shingle_texts), used=used)

    def of_fingerprints(self, fingerprints: np.ndarray, firsts: np.ndarray,
                        used: int | None = None) -> np.ndarray:
        """`signatures` from the records' shingle fingerprints (`Shingler.fingerprints`)."""
        used = self.num_perm if used is None else used
        out = np.empty((used, len(firsts)), dtype=np.uint32)
        if not len(firsts):
            return out.T
        hv = _fmix32((fingerprints & _U64(0xFFFFFFFF)).astype(np.uint32))
        permuted = np.empty_like(hv)
        # One permutation at a time over all shingles of the batch: a contiguous 1-D pass
        # that stays in cache, then a segmented minimum per record.
        for k in range(used):
            np.multiply(hv, self._a[k], out=permuted)  # wraps mod 2**32, as datasketch's
            permuted += self._b[k]
            np.minimum.reduceat(permuted, firsts, out=out[k])
        return np.ascontiguousarray(out.T)


def catch_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that LSH with `bands` x `rows` makes a pair of this Jaccard a candidate."""
    return 1.0 - (1.0 - similarity ** rows) ** bands


def lsh_params(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """(bands, rows): LSH that makes a pair exactly at the threshold a candidate with
    probability >= recall, with the longest rows that can (the steepest curve: the fewest
    candidates below the threshold) and, for those rows, the fewest bands (each band costs
    8 bytes a record in the index and one sort). Permutations beyond bands x rows are left
    unused.

    datasketch's default balances false positives against false negatives and, for 0.8 with
    128 permutations, picks 9 x 13, which catches a pair at 0.8 only 40% of the time. Here
    the true Jaccard check removes false candidates, so recall is bought with more bands and
    paid for only by verifying more candidates.
    """
    for rows in range(num_perm // 2, 0, -1):
        for bands in range(2, num_perm // rows + 1):
            if catch_probability(threshold, bands, rows) >= recall:
                return bands, rows
    return num_perm, 1  # the most recall 1-row bands can give (threshold near 0)


# What checking one false candidate pair costs, in MinHash permutations of one record: the true
# Jaccard of two word sets (~5.9 us a pair) against a permutation of a record's shingles
# (~0.054 us), both for records of ~175 words, measured on the dedup stage at 200,000 records.
# Both grow with the records' length, so their ratio holds across corpora.
PAIR_COST_IN_PERMUTATIONS = 100


def permutations_for(threshold: float, num_perm: int, recall: float, background: np.ndarray,
                     edges: np.ndarray, records: int, most: int = 1024) -> tuple[int, float]:
    """(permutations, expected false candidates per record): of num_perm, 2 x, 4 x ... (at
    most `most`), the one whose LSH (`lsh_params`) costs least in hashing plus checking the
    pairs it is expected to propose below the threshold, and that expectation.

    `background` counts the Jaccard of pairs of the data's records in bins with these
    `edges` (the learned bar's sample gives it): a pair of that Jaccard becomes a candidate
    with `catch_probability`, and there are records x (records - 1) / 2 pairs. Word sets share
    the common words, so most pairs sit at 0.1-0.3: with 128 permutations and a bar of 0.74,
    LSH's 5-value bands proposed 77 million such pairs at a million records, and the true
    Jaccard check rejected every one. Longer bands cut that steeply; they need more
    permutations to keep the recall at the bar. Counted at each bin's upper edge."""
    share = background / max(int(background.sum()), 1)
    below = edges[:-1] < threshold
    upper = np.minimum(edges[1:][below], threshold)
    best = None
    perms = num_perm
    while perms <= max(most, num_perm):
        bands, rows = lsh_params(threshold, perms, recall)
        per_record = (records - 1) / 2 * float(
            np.sum(share[below] * catch_probability(upper, bands, rows)))
        cost = bands * rows + PAIR_COST_IN_PERMUTATIONS * per_record
        if best is None or cost < best[0]:
            best = (cost, perms, per_record)
        perms *= 2
    return best[1], best[2]


class CandidateIndex:
    """LSH over the records' signatures, with datasketch MinHashLSH's banding, filled batch
    by batch: band i is values [i * rows, (i + 1) * rows) of the signature, and two records
    share a bucket of band i when those values are equal, as in MinHashLSH(params=(bands,
    rows)) (tests/test_dedup.py checks that the buckets are the same).

    Instead of a Python insert per record and band, each batch's band values are reduced in
    numpy to one 64-bit key per band (`band_keys`) and kept in arrays, 8 bytes per record and
    band; `groups` sorts each band's keys once and reads the runs of equal keys. Two different
    band values share a key with probability about 2**-64: such a collision could only add a
    candidate, which the true Jaccard check then rejects, never lose one.
    """

    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows
        self._positions: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []  # (records, bands) uint64 per batch
        # A distinct tag per signature column, so equal values in different columns (or in
        # a different order within a band) give different keys.
        self._tags = (np.arange(bands * rows, dtype=np.uint64) + _U64(1)) << _U64(32)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(records, bands) uint64: for each band, a hash of its `rows` signature values."""
        used = self.bands * self.rows
        mixed = fmix64(signatures[:, :used].astype(np.uint64) | self._tags)
        return mixed.reshape(len(signatures), self.bands, self.rows).sum(axis=2,
                                                                         dtype=np.uint64)

    def insert(self, positions: np.ndarray, signatures: np.ndarray) -> None:
        """Adds records (positions in the table) with their signatures, (len, >= bands x rows)."""
        self.add(positions, self.band_keys(signatures))

    def add(self, positions: np.ndarray, keys: np.ndarray) -> None:
        """Adds records (positions in the table) with their `band_keys`."""
        if len(positions):
            self._positions.append(np.asarray(positions, dtype=np.int64))
            self._keys.append(keys)

    def groups(self) -> list[tuple[int, ...]]:
        """The distinct buckets holding two or more records, each a sorted tuple of
        positions, in a fixed order."""
        if not self._positions:
            return []
        positions = np.concatenate(self._positions)
        keys = np.concatenate(self._keys)
        self._positions, self._keys = [], []
        by_size: dict[int, list[np.ndarray]] = {}  # (buckets, size) member arrays
        for band in range(self.bands):
            equal_key_runs(keys[:, band], positions, by_size)
        return distinct_buckets(by_size)

    def close(self) -> None:
        self._positions, self._keys = [], []

    def __enter__(self) -> "CandidateIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def equal_key_runs(keys: np.ndarray, members: np.ndarray,
                   by_size: dict[int, list[np.ndarray]]) -> None:
    """Adds the buckets of one band to `by_size` (size -> (buckets, size) arrays of
    members): the runs of equal keys holding two or more members. Both engines find buckets
    with it: the local one per band of the whole index, engines/ray per band within a
    partition of the band keys."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    # runs of equal keys: a run starts where a key differs from the one before
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    ordered_members = members[order]
    for size in np.unique(sizes[sizes > 1]).tolist():
        first = starts[sizes == size]
        by_size.setdefault(size, []).append(ordered_members[first[:, None] + np.arange(size)])


def distinct_buckets(by_size: dict[int, list[np.ndarray]]) -> list[tuple[int, ...]]:
    """The buckets as sorted tuples of members, each once (the same bucket found in several
    bands counts once), in a fixed order."""
    found: list[tuple[int, ...]] = []
    for buckets in by_size.values():
        distinct = np.unique(np.sort(np.concatenate(buckets), axis=1), axis=0)
        found.extend(map(tuple, distinct.tolist()))
    return sorted(found)


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity of two sets (of shingles, or of their fingerprints)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)
