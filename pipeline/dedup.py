"""Dedup stage: exact duplicates, MinHash near-duplicates, and copies of real records.

Exact: the same text after Unicode NFKC, case folding and whitespace collapsing.

Near: MinHash-LSH (datasketch) proposes candidate pairs; every candidate is confirmed by the
true Jaccard similarity of the two shingle sets (sets of 64-bit shingle fingerprints) before
anything is dropped, so an LSH collision or a MinHash estimate alone never removes a record.

Who is kept: records are decided one at a time, real records first, then synthetic, each in
input order. A record is dropped only when it is similar to a record already *kept*, never
merely connected to one through a chain of pairs (A~B~C with A and C apart: only B goes).
Within a source the record gets `exact_duplicate` / `near_duplicate`; a synthetic record that
repeats a real one gets `copies_real` (memorization), whatever the input order: the real
record is always the one kept. `dup_of` names the kept record, `dup_similarity` the Jaccard.

Memory: one pass over the texts in batches computes the exact hash and the MinHash signature
of each record and keeps only the hash (16 bytes a record) and the signature's LSH band keys
(8 bytes a record and band), never signatures or texts; the shingle fingerprints go to a
temporary file (8 bytes a shingle, on disk) from which the records that share a bucket read
theirs back for the Jaccard check.

Speed: the batches of the hashing pass are shared among forked worker processes (one per
core, for inputs of 20,000 records or more), which receive the texts of a batch and send back
hashes, band keys and fingerprints in batch order: the results never depend on `workers`.
Grouping the band keys, the Jaccard checks and the decisions run in this process.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import DedupConfig
from .minhash import (CandidateIndex, MinHasher, Shingler, catch_probability,
                      lsh_params, permutations_for)
from .records import ColumnRows, Reason, is_real, reject, scorable, texts_at
from .stage import BaseStage, Progress, RunContext, StageOutcome
from .text import normalize

# Below this many records everything runs in this process, without workers.
MIN_RECORDS_FOR_WORKERS = 20_000
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 120


def text_hash(text: str) -> bytes:
    return _digest(normalize(text))


def _digest(normalized: str) -> bytes:
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).digest()


# --------------------------------------------------------------------------- one pass

# The hasher and index `_hash_batch` uses: set by `_sharing` before worker processes are
# forked, so they inherit them. The texts are sent with each batch instead: a worker reading
# the parent's text objects would copy every page holding one (reference counts are written).
_SHARED: dict = {}


@contextmanager
def _sharing(minhasher: MinHasher | None, index: CandidateIndex | None, workers: int):
    """Makes the hasher visible to `_hash_batch` and yields a `map` that runs it over
    batches of texts, in order: the built-in one, or a pool of forked worker processes. The
    results, and their order, are the same either way."""
    _SHARED.update(minhasher=minhasher, index=index)
    pool = None
    try:
        if workers > 1:
            pool = mp.get_context("fork").Pool(workers)
            yield lambda function, batches: pool.imap(function, batches)
        else:
            yield map
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _SHARED.clear()


def _hash_batch(texts: list[str]) -> tuple:
    """`record_features` with the hasher `_sharing` made visible (in a forked worker)."""
    return record_features(texts, _SHARED["minhasher"], _SHARED["index"])


def record_features(texts: list[str], minhasher: MinHasher | None,
                    index: CandidateIndex | None) -> tuple:
    """The per-record work of dedup, which needs nothing but the text and the fitted hasher
    (both engines run it: the local one over batches of the table, engines/ray in
    `map_batches`): the exact hash of each record, and (for near dedup) the LSH band keys of
    its MinHash signature, whether it is too short to shingle, and its shingle fingerprints
    (`Shingler.fingerprints`)."""
    normalized = [normalize(t) for t in texts]
    digests = [_digest(t) for t in normalized]
    if minhasher is None:
        return digests, None, None, None, None
    shingler = minhasher.shingler
    shingle_texts = [shingler.shingle_text(t) for t in normalized]
    prints, firsts = shingler.fingerprints(shingle_texts)
    keys = index.band_keys(minhasher.of_fingerprints(prints, firsts,
                                                     used=index.bands * index.rows))
    short = np.fromiter((shingler.is_short(t) for t in shingle_texts), bool, len(texts))
    return digests, keys, short, prints, firsts


def near_hasher(cfg: DedupConfig) -> tuple[MinHasher, CandidateIndex]:
    """The MinHash hasher and an empty LSH index for a (learned) dedup config."""
    minhasher = MinHasher(Shingler(cfg.ngram, cfg.shingle), cfg.num_perm, cfg.seed)
    return minhasher, CandidateIndex(*lsh_params(cfg.threshold, cfg.num_perm, cfg.lsh_recall))


class ShingleStore:
    """The shingle fingerprints of the indexed records, written during the hashing pass to an
    unnamed temporary file (8 bytes a shingle on disk, 16 bytes a record in memory) and read
    back for the records that share a bucket, so their texts need no second hashing."""

    def __init__(self, records: int):
        self._file = tempfile.TemporaryFile(prefix="synthgate-shingles-")
        self._start = np.zeros(records, dtype=np.int64)
        self._count = np.zeros(records, dtype=np.int64)
        self._end = 0

    def add(self, records: np.ndarray, prints: np.ndarray, firsts: np.ndarray) -> None:
        """Stores the fingerprints of some records (in `Shingler.fingerprints` layout)."""
        try:
            self._file.write(memoryview(np.ascontiguousarray(prints, dtype=np.uint64)))
        except OSError as exc:   # a full disk: say which (the file itself has no name)
            raise OSError(exc.errno, f"{exc.strerror or exc} (dedup's temporary shingle file "
                                     f"there; TMPDIR chooses another disk)",
                          tempfile.gettempdir()) from None
        self._start[records] = self._end + firsts
        self._count[records] = np.diff(np.r_[firsts, len(prints)])
        self._end += len(prints)

    def fingerprints(self, records: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The stored fingerprints of some records, in `Shingler.fingerprints` layout."""
        self._file.flush()
        fd = self._file.fileno()
        pieces = [os.pread(fd, 8 * int(self._count[r]), 8 * int(self._start[r]))
                  for r in records]
        counts = self._count[records]
        return (np.frombuffer(b"".join(pieces), dtype=np.uint64).copy(),
                np.cumsum(counts) - counts)

    def close(self) -> None:
        self._file.close()


def fingerprint(table: pd.DataFrame, cfg: DedupConfig, index: CandidateIndex | None,
                store: ShingleStore | None, batch_map, progress: Progress) -> tuple[list, int]:
    """One pass over the texts, in batches: each text is normalized once for its exact hash
    and its MinHash signature, and the signature's band keys go straight into the LSH index
    (no signature or shingle is kept). Returns the exact hashes (None for invalid records)
    and how many records were too short to shingle.

    A record certain to be an exact duplicate (a synthetic text seen before, a real text
    seen in a real record before) is not indexed: whatever it resembles, its original does.
    """
    active = np.flatnonzero(scorable(table))
    column = table["text"]   # converted a batch at a time: a million Python strings are GBs
    real = is_real(table).tolist()
    hashes: list[bytes | None] = [None] * len(table)
    seen_any: set[bytes] = set()
    seen_real: set[bytes] = set()
    short = 0
    batches = [active[start:start + cfg.batch_size]
               for start in range(0, len(active), cfg.batch_size)]
    with progress.bar(len(active), "dedup: hashing") as tick:
        for batch, (digests, keys, too_short, prints, firsts) in zip(
                batches, batch_map(_hash_batch, (texts_at(column, batch)
                                                 for batch in batches))):
            fresh = np.ones(len(batch), dtype=bool)
            for k, (i, h) in enumerate(zip(batch.tolist(), digests)):
                hashes[i] = h
                if cfg.exact and ((h in seen_real and cfg.dedup_real) if real[i]
                                  else h in seen_any):
                    fresh[k] = False
                seen_any.add(h)
                if real[i]:
                    seen_real.add(h)
            if index is not None:
                index.add(batch[fresh], keys[fresh])
                if store is not None:
                    store.add(batch, prints, firsts)
                short += int(too_short[fresh].sum())
            tick(len(batch))
    return hashes, short


# --------------------------------------------------------------------------- exact

def exact_duplicates(table: pd.DataFrame, dedup_real: bool = True,
                     hashes: list[bytes | None] | None = None) -> dict[str, int]:
    """Marks exact duplicates and exact copies of real records; returns counts.

    `hashes` (one per row, None to skip) saves normalizing again when the caller has them.
    """
    if hashes is None:
        active = scorable(table)
        hashes = [text_hash(t) if a else None for t, a in zip(table["text"].tolist(), active)]
    ids = table["id"].tolist()
    exact, copies, matched = decide_exact(hashes, is_real(table), dedup_real)
    dup_of: list[str | None] = list(table["dup_of"])
    for i in np.flatnonzero(matched >= 0).tolist():
        dup_of[i] = ids[matched[i]]
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    sim = table["dup_similarity"].to_numpy(copy=True)
    sim[exact | copies] = 1.0
    table["dup_similarity"] = sim
    test = _tests(table)
    test[exact | copies] = "exact"
    table["dup_test"] = test
    dup_ids = table["dup_of"].tolist()
    reject(table, exact, Reason.EXACT_DUPLICATE,
           [explain_exact(False, dup_ids[i]) for i in np.flatnonzero(exact)])
    reject(table, copies, Reason.COPIES_REAL,
           [explain_exact(True, dup_ids[i]) for i in np.flatnonzero(copies)])
    return {"exact_duplicate": int(exact.sum()), "copies_real_exact": int(copies.sum())}


def decide_exact(hashes: list[bytes | None], real, dedup_real: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact decisions for records in the stages' content order, given any set of whole
    hash groups (all records, in the local engine; one hash partition, in engines/ray):
    (exact_duplicate mask, copies_real mask, index of the record each one repeats or -1).
    The first real record of a group is kept; later real ones are duplicates (with
    `dedup_real`); a synthetic one copies the group's first real record if it has one, and
    is otherwise a duplicate of the group's first synthetic one."""
    real = np.asarray(real, dtype=bool)
    first_real: dict[bytes, int] = {}
    first_synth: dict[bytes, int] = {}
    n = len(hashes)
    exact = np.zeros(n, dtype=bool)
    copies = np.zeros(n, dtype=bool)
    matched = np.full(n, -1, dtype=np.int64)
    # Real records first, so a synthetic record is matched to a real one whatever the order.
    for i, h in enumerate(hashes):
        if h is None or not real[i]:
            continue
        if h in first_real:
            if dedup_real:
                exact[i] = True
                matched[i] = first_real[h]
        else:
            first_real[h] = i
    for i, h in enumerate(hashes):
        if h is None or real[i]:
            continue
        if h in first_real:
            copies[i] = True
            matched[i] = first_real[h]
        elif h in first_synth:
            exact[i] = True
            matched[i] = first_synth[h]
        else:
            first_synth[h] = i
    return exact, copies, matched


def explain_exact(copies: bool, dup_id: str) -> str:
    return f"exact copy of real record {dup_id}" if copies else f"exact duplicate of {dup_id}"


def _tests(table: pd.DataFrame) -> np.ndarray:
    """A copy of the `dup_test` column (which test matched: exact, jaccard, cosine...)."""
    if "dup_test" in table:
        return table["dup_test"].to_numpy(dtype=object, copy=True)
    return np.full(len(table), None, dtype=object)


# --------------------------------------------------------------------------- near

class JaccardCheck:
    """Confirms LSH candidates by the Jaccard of their shingle sets, and keeps the tally of
    every pair it checked for the report.

    The shingle sets are the records' sets of 64-bit shingle fingerprints, computed for all
    records that share a bucket in batches and kept as sorted arrays without repeats (8
    bytes a shingle); the size of the intersection of two of them is one binary search of
    one array's values in the other.
    """

    def __init__(self, records: list[int], threshold: float, batch_size: int,
                 fingerprints_of):
        """`fingerprints_of(records)` gives their fingerprints (`Shingler.fingerprints`)."""
        self.threshold = threshold
        self.similarities: list[float] = []   # every candidate pair checked
        self._sets: dict[int, np.ndarray] = {}
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            prints, firsts = fingerprints_of(batch)
            for piece in np.split(prints, firsts[1:]):
                piece.sort()  # in place, within the record's own span
            # without repeats: a value equal to the one before it in the same record goes
            keep = np.ones(len(prints), dtype=bool)
            keep[1:] = prints[1:] != prints[:-1]
            keep[firsts] = True
            counts = np.add.reduceat(keep, firsts, dtype=np.int64)
            self._sets.update(zip(batch, np.split(prints[keep], np.cumsum(counts)[:-1])))

    def similarity(self, a: int, b: int) -> float:
        """The Jaccard similarity of two records' shingle sets."""
        small, large = sorted((self._sets[a], self._sets[b]), key=len)
        at = np.searchsorted(large, small)
        at[at == len(large)] = 0
        inter = int(np.count_nonzero(large[at] == small))
        return inter / (len(small) + len(large) - inter)

    def most_similar(self, record: int, candidates: set[int]) -> tuple[int, float] | None:
        """The candidate most similar to `record` at or above the threshold (the earliest
        on a tie), with its Jaccard; None when no candidate reaches the threshold."""
        best = None
        for other in sorted(candidates):
            sim = self.similarity(record, other)
            self.similarities.append(sim)
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (other, sim)
        return best


@dataclass
class NearDecision:
    record: int
    kept: int           # the record it duplicates
    similarity: float
    reason: Reason
    kept_is_duplicate: bool = False  # copies a real record that is itself a near-duplicate


def decide_near(groups: list[tuple[int, ...]], real: np.ndarray, check: JaccardCheck,
                dedup_real: bool) -> list[NearDecision]:
    """Walks the records that share a bucket, real first then synthetic, in input order,
    and drops each one only if it is confirmed similar to a record already kept.

    Per bucket we remember who was kept, so a record is compared with the kept records of
    its buckets only: a cluster of a thousand near-copies costs a thousand checks against
    its one kept record, not half a million pairs.
    """
    buckets_of: dict[int, list[int]] = defaultdict(list)
    for g, members in enumerate(groups):
        for record in members:
            buckets_of[record].append(g)
    kept_real: list[list[int]] = [[] for _ in groups]
    dropped_real: list[list[int]] = [[] for _ in groups]
    kept_synthetic: list[list[int]] = [[] for _ in groups]

    def members(lists: list[list[int]], buckets: list[int], record: int) -> set[int]:
        return {m for g in buckets for m in lists[g] if m != record}

    decisions: list[NearDecision] = []
    for record in sorted(buckets_of, key=lambda r: (not real[r], r)):
        buckets = buckets_of[record]
        if real[record]:
            best = check.most_similar(record, members(kept_real, buckets, record)) \
                if dedup_real else None
            if best:
                decisions.append(NearDecision(record, *best, Reason.NEAR_DUPLICATE))
            for g in buckets:
                (dropped_real if best else kept_real)[g].append(record)
            continue
        best = check.most_similar(record, members(kept_real, buckets, record))
        if best:
            decisions.append(NearDecision(record, *best, Reason.COPIES_REAL))
            continue
        # Copying a real record is leakage even when that record was itself dropped as a
        # near-duplicate of another real one that this record is not close to.
        best = check.most_similar(record, members(dropped_real, buckets, record))
        if best:
            decisions.append(NearDecision(record, *best, Reason.COPIES_REAL,
                                          kept_is_duplicate=True))
            continue
        best = check.most_similar(record, members(kept_synthetic, buckets, record))
        if best:
            decisions.append(NearDecision(record, *best, Reason.NEAR_DUPLICATE))
        else:
            for g in buckets:
                kept_synthetic[g].append(record)
    return decisions


def near_duplicates(table: pd.DataFrame, cfg: DedupConfig, shingler: Shingler,
                    groups: list[tuple[int, ...]], store: ShingleStore | None = None
                    ) -> tuple[dict, list[NearDecision]]:
    """Marks near-duplicates and near copies of real records among the records that share
    an LSH bucket; returns the report details and the decisions (for examples). The shingle
    fingerprints come from `store`, or without one are computed again from the texts."""
    alive = scorable(table)  # exact duplicates found after indexing are out too
    groups = sorted({kept for g in groups if len(kept := tuple(m for m in g if alive[m])) > 1})
    if store is None:
        column = table["text"]

        def fingerprints_of(records: list[int]) -> tuple[np.ndarray, np.ndarray]:
            return shingler.fingerprints([shingler.shingle_text(normalize(text))
                                          for text in texts_at(column, records)])
    else:
        fingerprints_of = store.fingerprints
    check = JaccardCheck(sorted({m for g in groups for m in g}), cfg.threshold,
                         cfg.batch_size, fingerprints_of)
    decisions = decide_near(groups, is_real(table), check, cfg.dedup_real)

    ids = table["id"].tolist()
    dup_of = table["dup_of"].to_numpy(copy=True)
    sim = table["dup_similarity"].to_numpy(copy=True)
    test = _tests(table)
    for reason in (Reason.NEAR_DUPLICATE, Reason.COPIES_REAL):
        chosen = sorted((d for d in decisions if d.reason is reason), key=lambda d: d.record)
        mask = np.zeros(len(table), dtype=bool)
        notes = []
        for d in chosen:
            mask[d.record] = True
            dup_of[d.record] = ids[d.kept]
            sim[d.record] = d.similarity
            test[d.record] = "jaccard"
            notes.append(_explain(d, ids[d.kept], dup_of[d.kept]))
        reject(table, mask, reason, notes)
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    table["dup_similarity"] = sim
    table["dup_test"] = test

    details = {"candidate_buckets": len(groups),
               **near_details(check.similarities, decisions, is_real(table), cfg.threshold)}
    return details, decisions


SIMILARITY_BINS = [i / 20 for i in range(21)]


def near_details(similarities, decisions: list[NearDecision], real, threshold: float
                 ) -> dict:
    """What the near-duplicate step reports, from the Jaccard of every candidate pair it
    checked and its decisions (engines/ray adds these up over its partitions)."""
    checked = np.asarray(similarities, dtype=float)
    confirmed = int((checked >= threshold).sum())
    near = [d for d in decisions if d.reason is Reason.NEAR_DUPLICATE]
    return {
        "candidate_pairs_checked": int(len(checked)),
        "confirmed_by_jaccard": confirmed,
        "rejected_by_jaccard": int(len(checked)) - confirmed,
        "near_duplicate_real": sum(1 for d in near if real[d.record]),
        "near_duplicate_synthetic": sum(1 for d in near if not real[d.record]),
        "copies_real_near": sum(1 for d in decisions if d.reason is Reason.COPIES_REAL),
        "copies_real_of_dropped_real": sum(1 for d in decisions if d.kept_is_duplicate),
        "candidate_similarity": {"bins": SIMILARITY_BINS, "counts": {
            "confirmed": np.histogram(checked[checked >= threshold],
                                      SIMILARITY_BINS)[0].tolist(),
            "rejected by true Jaccard": np.histogram(checked[checked < threshold],
                                                     SIMILARITY_BINS)[0].tolist()}},
    }


def _explain(d: NearDecision, kept_id: str, kept_dup_of) -> str:
    if d.reason is Reason.NEAR_DUPLICATE:
        return f"near-duplicate of {kept_id} (Jaccard {d.similarity:.3f})"
    note = f"copies real record {kept_id} (Jaccard {d.similarity:.3f})"
    if d.kept_is_duplicate:
        note += f", itself a near-duplicate of {kept_dup_of}"
    return note


# --------------------------------------------------------------------------- report

def group_sizes(table: pd.DataFrame) -> dict:
    """Histogram of duplicate-group sizes: a kept record plus the records naming it."""
    dropped = ~table["kept"].to_numpy() & table["dup_of"].notna().to_numpy()
    sizes = np.array(sorted(Counter(table["dup_of"].to_numpy()[dropped]).values()),
                     dtype=int) + 1
    return size_histogram(sizes, np.ones(len(sizes), dtype=int))


def size_histogram(sizes: np.ndarray, groups: np.ndarray) -> dict:
    """The report's duplicate-group histogram from group sizes and how many groups have
    each (engines/ray counts them by a groupby)."""
    sizes, groups = np.asarray(sizes, dtype=int), np.asarray(groups, dtype=int)
    edges = [2, 3, 4, 5]
    while edges[-1] <= (sizes.max() if len(sizes) else 2):
        edges.append(2 * edges[-1] - 1)  # 5, 9, 17, 33, ...: doubling beyond 4
    return {"groups": int(groups.sum()), "largest": int(sizes.max()) if len(sizes) else 0,
            "sizes": {"bins": edges, "counts": {"duplicate groups":
                                                np.histogram(sizes, edges, weights=groups)[0]
                                                .astype(int).tolist()}}}


def examples(table: pd.DataFrame, decisions: list[NearDecision]) -> list[dict]:
    """The near pairs closest to the threshold, per reason: the ones worth a look. The texts
    start a little before their first difference, so the change is in view."""
    ids, texts = table["id"].tolist(), ColumnRows(table["text"])
    out = []
    for reason in (Reason.NEAR_DUPLICATE, Reason.COPIES_REAL):
        chosen = sorted((d for d in decisions if d.reason is reason),
                        key=lambda d: (d.similarity, d.record))[:EXAMPLES_PER_REASON]
        out += [example(d, ids[d.record], ids[d.kept], texts[d.record], texts[d.kept])
                for d in chosen]
    return out


def example(d: NearDecision, rid: str, kept_id: str, text: str, kept_text: str) -> dict:
    """One near pair for the report, its texts from a little before their first difference."""
    start = max(0, len(os.path.commonprefix([text, kept_text])) - EXAMPLE_CHARS // 3)
    return {"reason": d.reason.value, "id": rid, "dup_of": kept_id,
            "similarity": round(d.similarity, 4), "text": _excerpt(text, start),
            "dup_of_text": _excerpt(kept_text, start)}


def _excerpt(text: str, start: int) -> str:
    end = start + EXAMPLE_CHARS
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


# --------------------------------------------------------------------------- stage

class DedupStage(BaseStage):
    """Drops exact duplicates and MinHash-LSH near-duplicates (each confirmed by its true
    Jaccard, at a bar learned from the real records) within each source, and synthetic
    records that repeat a real one."""

    name = "dedup"
    reads = ("text", "source", "id", "reasons")
    writes = ("dup_of", "dup_similarity", "dup_test")
    reasons = (Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE, Reason.COPIES_REAL)

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        return deduplicate(table, ctx)


def deduplicate(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Marks exact and near duplicates and copies of real records; returns the report."""
    cfg = ctx.config.dedup
    if "dup_similarity" not in table:
        table["dup_similarity"] = np.full(len(table), np.nan)
    if "dup_test" not in table:
        table["dup_test"] = pd.Series([None] * len(table), dtype=object, index=table.index)
    if not (cfg.exact or cfg.near):
        return StageOutcome(details={})
    details: dict = {}
    minhasher = index = None
    if cfg.near and cfg.learn_threshold:
        cfg, details["learned_threshold"] = _learned_threshold(table, cfg)
    if cfg.near:
        minhasher, index = near_hasher(cfg)
        details["near"] = near_settings(cfg, index)
    decisions: list[NearDecision] = []
    shingler = minhasher.shingler if minhasher is not None else None
    store = ShingleStore(len(table)) if index is not None else None
    try:
        with _sharing(minhasher, index, _workers(cfg, len(table))) as batch_map:
            hashes, short = fingerprint(table, cfg, index, store, batch_map, ctx.progress)
        if cfg.exact:
            details["exact"] = exact_duplicates(table, cfg.dedup_real, hashes)
        if index is not None:
            found, decisions = near_duplicates(table, cfg, shingler, index.groups(), store)
            details["near"].update(short_records_compared_exactly=short, **found)
    finally:
        if store is not None:
            store.close()
    details["duplicate_groups"] = group_sizes(table)
    if decisions:
        details["examples"] = examples(table, decisions)
    return StageOutcome(details=details)



# Fewer real records than this and the Jaccard bar is not learned: `threshold` is used.
MIN_REAL_FOR_BAR = 20


def _learned_threshold(table: pd.DataFrame, cfg: DedupConfig) -> tuple[DedupConfig, dict]:
    """The config with `threshold` set to the Jaccard bar learned from the real records
    (`rewording.learn_jaccard_bar`), and what was learned, for the report. The configured
    threshold stays the upper bound: the real data can lower the bar to where its distinct
    records stop, never raise it."""
    from .rewording import learn_jaccard_bar

    # The real texts as a lazy sequence: the bar reads them a block at a time.
    real = ColumnRows(table["text"], np.flatnonzero(is_real(table) & scorable(table)))
    if len(real) < MIN_REAL_FOR_BAR:
        return cfg, bar_skipped(cfg, len(real))
    null_bar, nearest, background = learn_jaccard_bar(
        real, Shingler(cfg.ngram, cfg.shingle), cfg.threshold_quantile,
        duplicate=cfg.threshold, seed=cfg.seed)
    return learned_config(cfg, null_bar, nearest, background, len(table))


def bar_skipped(cfg: DedupConfig, real: int) -> dict:
    return {"skipped": f"{real} real records, fewer than {MIN_REAL_FOR_BAR}: "
                       f"the configured threshold {cfg.threshold} is used"}


def learned_config(cfg: DedupConfig, null_bar: float, nearest: np.ndarray,
                   background: np.ndarray, records: int) -> tuple[DedupConfig, dict]:
    """The config with the learned bar, from the real records' nearest Jaccards, and the
    MinHash permutations LSH needs at that bar for the `background` Jaccard of the data's
    pairs (histogram) among `records` records (both engines compute the Jaccards with
    `rewording.nearest_jaccard`)."""
    import dataclasses

    from .rewording import BACKGROUND_BINS

    # What a copy with `edit_share` of its words substituted keeps of its shingle set: each
    # substitution changes up to `ngram` shingles, (1 - n e) / (1 + n e). The bar sits there
    # unless distinct real records come closer than that, and never above `threshold`.
    spread = min(cfg.ngram * cfg.edit_share, 1.0) if cfg.shingle == "word" else 1.0
    edit_bar = (1.0 - spread) / (1.0 + spread)
    bar = round(min(cfg.threshold, max(edit_bar, null_bar)), 4)
    num_perm, false_candidates = permutations_for(
        bar, cfg.num_perm, cfg.lsh_recall, background, BACKGROUND_BINS, records)
    return dataclasses.replace(cfg, threshold=bar, num_perm=num_perm), {
        "threshold": bar, "edit_share_bar": round(edit_bar, 4),
        "real_distinct_bar": round(null_bar, 4), "quantile": cfg.threshold_quantile,
        "real_records_sampled": int(len(nearest)),
        "real_nearest_jaccard_median": round(float(np.median(nearest)), 4),
        "real_pairs_compared": int(background.sum()),
        "num_perm": num_perm,
        "expected_false_candidates_per_record": round(false_candidates, 4)}


def near_settings(cfg: DedupConfig, index: CandidateIndex) -> dict:
    """The near-duplicate settings the report states."""
    bands, rows = index.bands, index.rows
    return {"shingles": f"{cfg.shingle} {cfg.ngram}-grams", "threshold": cfg.threshold,
            "num_perm": cfg.num_perm, "bands": bands, "rows": rows,
            "permutations_used": bands * rows,
            "candidate_probability_at_threshold":
                round(catch_probability(cfg.threshold, bands, rows), 4)}


def _workers(cfg: DedupConfig, records: int) -> int:
    """Processes that hash (1: this one alone). Below a few tens of thousands of records
    starting them costs more than they save; forking is Linux-only here."""
    if records < MIN_RECORDS_FOR_WORKERS or sys.platform != "linux":
        return 1
    return cfg.workers or len(os.sched_getaffinity(0))
