"""The Ray engine: the same stages on Ray Data, on a local Ray instance or a cluster.

`synthgate run ... --engine ray [--ray-address ADDRESS]` (`[engine]` in the config). Without
an address (and no RAY_ADDRESS) it starts a local Ray instance; with one it joins that cluster,
whose nodes need synthgate installed (`pip install "synthgate[ray]"`).

How a run goes, and who holds what (no process ever holds every record's text):

    read       one Ray task per input file (or DataFrame), with synthgate's own reader and
               ingest (`ingest.ingest(..., require_real=False)`): the same ids, `invalid`
               records and templates as the local engine; blocks of records, each row keyed
               by `records.order_key` (the stages' content order, as bytes)
    ids        duplicate ids across files: records grouped by key over partitions
    dedup bar  the Jaccard bar learned from the real records: the query records drawn by rank
               (`rewording.jaccard_queries`, ranks from a sort of the real keys), their nearest
               real Jaccard per block (`rewording.nearest_jaccard`), maxima reduced
    features   per block: `dedup.record_features` (normalization, exact hash, MinHash band keys)
    exact      records grouped by hash into partitions of whole hash groups; each partition
               decided by `dedup.decide_exact`
    buckets    band keys (with 64-bit record ids, `record_ids`) grouped into partitions; each
               partition's buckets found by `minhash.equal_key_runs`
    components the buckets' records joined into connected components in the driver (scipy's
               connected_components on arrays of ids: 16 bytes a candidate record, never a
               record), shared with the workers through the object store
    near       the candidate records, as shingle fingerprints, grouped by component into
               partitions; each component decided by `dedup.JaccardCheck` +
               `dedup.decide_near`, exactly as the local engine decides all of them at once:
               decisions never cross a component, and inside one the order is the same
               (so one giant component, which LSH can make of a whole corpus, is decided by
               one worker: the price of exact, order-dependent decisions)
    decisions  kept as a Dataset (rejected records only, each with its record's segment:
               input part and block), tallied and sized by groupby, grouped by segment
               and handed to the blocks of records that need them (no record shuffled)
    write      the driver streams the records in blocks into decisions.parquet/ and
               train.parquet/ (Parquet dataset folders; train.jsonl one file, appended to)
               inside output.py's temporary folder and adds up the report's counts,
               examples and diversity samples; output.py swaps the folder in atomically

The stages after dedup (formulaic, embed, mix, measure) and decontamination run in the
driver: when they run, the records (after the distributed dedup) are collected there and the
local engine runs them, the same stage objects (`engines.local.run_stages`), so the decisions
are the same. What they spend most on goes to the cluster: the embedding model, the whole cost
of a CPU run, in a Ray actor pool (`ray_embed.RayEmbedder`: one actor per GPU, else per
`embed_actor_cpus` CPUs), and the independent pieces the stages hand to `ctx.tasks` (runs of
records to count or score, cross-fit folds) as Ray tasks (`ray_tasks.RayTasks`). The rest
(k-NN search, clusters, mix, the collapse checks' subsamples) is the driver's (README,
"Running on a cluster").
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import output
from ..checks import Check
from ..config import Config, DedupConfig
from ..dedup import (MIN_REAL_FOR_BAR, EXAMPLES_PER_REASON, JaccardCheck,
                     bar_skipped, decide_exact, decide_near, example, explain_exact,
                     learned_config, near_details, near_hasher, near_settings,
                     record_features, _explain)
from ..diversity import SAMPLE_WORDS, diversity
from ..ingest import InputError, _id_text, ingest, resolve_paths
from ..measure import QUALITY_REASONS, rejected_share_from
from ..minhash import Shingler, equal_key_runs
from ..records import REAL, SYNTHETIC, Reason, order_key
from ..report import EXAMPLE_CHARS, EXAMPLES_PER_REASON as REPORT_EXAMPLES
from ..stage import Embedder, Progress, RunContext
from ..text import normalize
from . import return_freed_memory

# Records per block the readers yield, and per batch the driver writes.
BLOCK_RECORDS = 20_000
# Derived ids (ingest._derive_id): "r-" or "s-", 16 hex digits, "-k" for the k-th record
# equal to an earlier one in every field.
_DERIVED = re.compile(r"([rs]-[0-9a-f]{16})(?:-(\d+))?")


# --------------------------------------------------------------------------- start

def start(config: Config):
    """Joins the cluster (`ray_address`, else RAY_ADDRESS) or starts a local instance."""
    try:
        import ray
    except ImportError:
        raise InputError('--engine ray needs Ray: pip install "synthgate[ray]"') from None
    if ray.is_initialized():
        return ray
    address = config.engine.ray_address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": "ERROR"}
    if address is None:
        if config.engine.num_cpus:
            kwargs["num_cpus"] = config.engine.num_cpus
        if config.engine.object_store_gib:
            kwargs["object_store_memory"] = int(config.engine.object_store_gib * 2**30)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise InputError(f"--ray-address {address}: cannot join the Ray cluster ({exc})"
                         ) from None
    import logging

    from ray.data import DataContext
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True   # the same shards for the same inputs
    # Sort-based shuffles for groupby: no aggregator actors holding CPUs, and on one
    # machine several times faster than hash shuffles for these compact columns.
    from ray.data.context import ShuffleStrategy
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray


def _partitions(records: int, config: Config, ray) -> int:
    """How many partitions a whole-dataset step cuts its groups into: enough that one holds
    about `partition_records` records, and at least two per CPU."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2 * cpus, -(-records // config.engine.partition_records))


def _part_of(keys, parts: int) -> np.ndarray:
    """A partition number from the first 8 bytes of a hash or key (keys are hashed first)."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(k, digest_size=8).digest()[:8],
                                       "little") % parts for k in keys),
                       dtype=np.int64, count=len(keys))


# --------------------------------------------------------------------------- read

RECORD_COLUMNS = ["key", "id", "source", "text", "generation", "kept", "reasons",
                  "explanation", "part", "row", "derived", "record"]


def _record_schema():
    import pyarrow as pa
    return pa.schema([("key", pa.binary()), ("id", pa.string()), ("source", pa.string()),
                      ("text", pa.string()), ("generation", pa.int64()), ("kept", pa.bool_()),
                      ("reasons", pa.list_(pa.string())), ("explanation", pa.string()),
                      ("part", pa.int32()), ("row", pa.int64()), ("derived", pa.bool_()),
                      ("record", pa.binary())])


def _read_parts(batch: dict, parts: list, config: Config) -> Iterator:
    """One input part (a file or a DataFrame) read by synthgate's own ingest, as blocks of
    records: the same ids, texts and `invalid` reasons as a local run."""
    import pyarrow as pa
    import ray

    schema = _record_schema()
    for part in batch["part"].tolist():
        source, spec = parts[part]
        if not isinstance(spec, str):
            spec = ray.get(spec)
        where = {REAL: "real", SYNTHETIC: "synthetic", None: "mixed"}[source]
        got = ingest(config, require_real=False, **{where: spec})
        table, originals = got.table, got.originals
        if config.id_field in originals.columns:
            derived = [_id_text(v, "", config.id_field) is None
                       for v in originals[config.id_field].tolist()]
        else:
            derived = [True] * len(table)
        # The training set keeps the input's other columns (ours win a clash): only those
        # travel with each record, pickled, and nothing when there are none.
        others = [c for c in originals.columns if c not in ("id", "source", "text")]
        records = originals[others].to_dict("records") if others else None
        ids, sources = table["id"].tolist(), table["source"].tolist()
        for start in range(0, len(table), BLOCK_RECORDS):
            rows = range(start, min(len(table), start + BLOCK_RECORDS))
            gen = table["generation"].iloc[rows.start:rows.stop]
            yield pa.table({
                "key": [order_key(sources[i], ids[i]) for i in rows],
                "id": [ids[i] for i in rows],
                "source": [sources[i] for i in rows],
                "text": [t if isinstance(t, str) else None
                         for t in table["text"].iloc[rows.start:rows.stop].tolist()],
                "generation": [None if v is pd.NA else int(v) for v in gen.tolist()],
                "kept": table["kept"].iloc[rows.start:rows.stop].tolist(),
                "reasons": table["reasons"].iloc[rows.start:rows.stop].tolist(),
                "explanation": [e if isinstance(e, str) else ""
                                for e in table["explanation"].iloc[rows.start:rows.stop]],
                "part": [part] * len(rows),
                "row": list(rows),
                "derived": [derived[i] for i in rows],
                "record": [pickle.dumps(records[i], protocol=5) for i in rows]
                if records is not None else [b""] * len(rows),
            }, schema=schema)
        del got, table, originals, records
        return_freed_memory()   # a worker lives on: what a file needed goes back


def read(ray, real, synthetic, mixed, config: Config):
    """The inputs as a materialized Dataset of records, and the list of parts (source, path
    or DataFrame) its `part` column indexes."""
    import ray.data

    if mixed is not None and not config.source_field:
        raise InputError("--input needs --source-field naming the field that says real or "
                         "synthetic")
    parts: list[tuple[str | None, Any]] = []
    names: list[str] = []
    for source, spec in ((REAL, real), (SYNTHETIC, synthetic), (None, mixed)):
        if spec is None:
            continue
        for item in spec if isinstance(spec, (list, tuple)) else [spec]:
            if not isinstance(item, (str, Path)):
                # A DataFrame, pyarrow Table, `datasets` Dataset...: read by ingest in a task.
                parts.append((source, ray.put(item)))
                names.append(f"<{source or 'input'} {type(item).__name__}>")
                continue
            resolved = resolve_paths([item], config.split)
            if all(isinstance(p, Path) for p in resolved):
                for path in resolved:   # local files: one task each
                    parts.append((source, str(path)))
                    names.append(str(path))
            else:   # URLs and datasets (sources.py): the spec read whole in one task
                parts.append((source, str(item)))
                names.append(str(item))
    ds = ray.data.from_items([{"part": i} for i in range(len(parts))],
                             override_num_blocks=max(1, len(parts)))
    ds = ds.map_batches(_read_parts, batch_size=1, batch_format="numpy",
                        fn_kwargs={"parts": parts, "config": config})
    try:
        return ds.materialize(), names
    except Exception as exc:
        raise _input_error(exc) or exc


def _input_error(exc: BaseException) -> InputError | None:
    """The InputError a Ray task raised, with its own message (Ray wraps it in an error that
    carries the task's traceback), so the CLI exits 2 with one line naming the file."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, InputError):
            return InputError(_without_retry_note(str(cause)))
        if isinstance(exc, InputError) and cause is None:
            return InputError(_without_retry_note(str(exc)))
        exc = cause or exc.__cause__ or exc.__context__
    return None


def _without_retry_note(message: str) -> str:
    """The reader's own message: Ray Data appends to a failed task's error, on new lines,
    how many attempts it made and how to configure its retries."""
    return message.split("\nFailed to ", 1)[0]


# --------------------------------------------------------------------------- ids

def _id_rows(batch: pd.DataFrame, parts: int) -> pd.DataFrame:
    """Each record's id group: (source, id) for a given id, (source, base) for a derived
    one (records equal in every field get base, base-2, ... across files)."""
    group = []
    for src, rid, derived in zip(batch["source"], batch["id"], batch["derived"]):
        m = _DERIVED.fullmatch(rid) if derived else None
        group.append(b"D" + order_key(src, m.group(1)) if m else b"I" + order_key(src, rid))
    return pd.DataFrame({"group": group, "key": batch["key"], "id": batch["id"],
                         "source": batch["source"], "part": batch["part"],
                         "row": batch["row"], "kept": batch["kept"],
                         "gpart": _part_of(group, parts)})


COUNTS = ("real", "synthetic", "kept", "invalid")


def _repeated_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Within a partition: the groups of more than one record, each record once, and a last
    row (id None) counting the partition's records per source, kept and invalid."""
    sizes = df.groupby("group")["key"].transform("size")
    out = df.loc[sizes > 1, ["group", "key", "id", "source", "part", "row"]]
    real = (df["source"] == REAL).to_numpy()
    kept = df["kept"].to_numpy()
    counts = [int(real.sum()), int((~real).sum()), int(kept.sum()), int((~kept).sum())]
    tail = pd.DataFrame({"group": [b""], "key": [b""], "id": [None], "source": [None],
                         "part": [-1], "row": [-1]})
    for name, n in zip(COUNTS, counts):
        tail[name] = n
    out = out.assign(**{name: 0 for name in COUNTS})
    return pd.concat([out, tail], ignore_index=True)


def check_ids(recs, names: list[str], config: Config, parts: int, ray):
    """Refuses a (source, id) given twice across input files (each file was checked by its
    own ingest) and renumbers derived ids of records equal in every field across files, as
    a local run numbers them. Returns the records, renamed where needed, and the counts of
    records per source, kept and invalid (added up in the same pass)."""
    found = (recs.select_columns(["key", "id", "source", "part", "row", "derived", "kept"])
             .map_batches(_id_rows, batch_format="pandas", fn_kwargs={"parts": parts})
             .groupby("gpart").map_groups(_repeated_ids, batch_format="pandas")
             .to_pandas())
    tails = found["part"].to_numpy() < 0
    counts = {name: int(found.loc[tails, name].sum()) for name in COUNTS}
    repeated = found.loc[~tails]
    if repeated.empty:
        return recs, counts
    renames: dict[tuple[int, int], str] = {}   # (part, row) -> id: keys repeat here
    for group, rows in repeated.sort_values(["part", "row"]).groupby("group", sort=True):
        rows = rows.reset_index(drop=True)
        if group[:1] == b"I":
            first, again = rows.iloc[0], rows.iloc[1]
            raise InputError(f"{names[again['part']]}: record {again['row'] + 1}: field "
                             f"'{config.id_field}': duplicate {again['source']} id "
                             f"{again['id']!r} (first seen at {names[first['part']]}: record "
                             f"{first['row'] + 1})")
        base = _DERIVED.fullmatch(rows.loc[0, "id"]).group(1)
        for k, (part, row, rid) in enumerate(zip(rows["part"], rows["row"], rows["id"])):
            new = base if k == 0 else f"{base}-{k + 1}"
            if new != rid:
                renames[(int(part), int(row))] = new
    ref = ray.put(renames)
    return recs.map_batches(_rename, batch_format="pandas", fn_kwargs={"renames": ref}
                            ).materialize(), counts


def _rename(batch: pd.DataFrame, renames) -> pd.DataFrame:
    import ray
    table = ray.get(renames) if not isinstance(renames, dict) else renames
    ids = batch["id"].tolist()
    keys = batch["key"].tolist()
    for i, at in enumerate(zip(batch["part"].tolist(), batch["row"].tolist())):
        if at in table:
            ids[i] = table[at]
            keys[i] = order_key(batch["source"].iat[i], ids[i])
    batch = batch.copy()
    batch["id"], batch["key"] = ids, keys
    return batch


# --------------------------------------------------------------------------- dedup bar

def _real(batch):
    """Real records with usable text (the ones the dedup bar is learned from), filtered in
    Arrow: their texts only become Python strings where they are compared."""
    import pyarrow.compute as pc
    return batch.filter(pc.and_(pc.equal(batch["source"], REAL), batch["kept"]))


def _with_keys(batch, keys):
    """The rows of the given keys (an Arrow filter, no text converted)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray
    wanted = pa.array(sorted(ray.get(keys)), type=pa.binary())
    return batch.filter(pc.is_in(batch["key"], value_set=wanted))


def _nearest_block(batch: pd.DataFrame, queries, cfg: DedupConfig) -> pd.DataFrame:
    import ray

    from ..rewording import ShingleSets, nearest_jaccard
    query_sets, rank_of = ray.get(queries)
    rows = np.array([rank_of.get(k, -1 - i) for i, k in enumerate(batch["key"].tolist())])
    block_sets = ShingleSets.of(batch["text"].tolist(), Shingler(cfg.ngram, cfg.shingle))
    nearest, background = nearest_jaccard(query_sets, np.arange(len(query_sets)), block_sets,
                                          rows, cfg.threshold)
    return pd.DataFrame({"nearest": [nearest.astype(np.float32).tobytes()],
                         "background": [background.astype(np.int64).tobytes()]})


def learn_bar(recs, cfg: DedupConfig, ray, records: int) -> tuple[DedupConfig, dict]:
    """`dedup._learned_threshold` on blocks: the same query records (by rank in the content
    order), the same nearest Jaccards (maxima over blocks) and pair histogram (sums), the
    same bar and permutations (`records`: all the input records, as the local engine
    counts them)."""
    from ..rewording import (BACKGROUND_BINS, NEAREST_BLOCK, ShingleSets, jaccard_bar,
                             jaccard_queries)

    real = recs.select_columns(["key", "text", "source", "kept"]).map_batches(
        _real, batch_format="pyarrow").select_columns(["key", "text"])
    ranked = (recs.select_columns(["key", "source", "kept"])   # the real keys, ranked
              .map_batches(_real, batch_format="pyarrow").select_columns(["key"])
              .sort("key").materialize())
    n = int(ranked.count())
    if n < MIN_REAL_FOR_BAR:
        return cfg, bar_skipped(cfg, n)
    wanted = jaccard_queries(n, 2000, cfg.seed)
    chosen: dict[bytes, int] = {}
    at, seen = 0, 0
    for batch in ranked.iter_batches(batch_format="numpy"):
        keys = batch["key"]
        while at < len(wanted) and wanted[at] < seen + len(keys):
            chosen[bytes(keys[wanted[at] - seen])] = at
            at += 1
        seen += len(keys)
    found = recs.select_columns(["key", "text"]).map_batches(
        _with_keys, batch_format="pyarrow", fn_kwargs={"keys": ray.put(set(chosen))}
    ).to_pandas()
    texts = dict(zip(found["key"].map(bytes), found["text"]))
    query_sets = ShingleSets.of([texts[k] for k in sorted(chosen, key=chosen.get)],
                                Shingler(cfg.ngram, cfg.shingle))
    ref = ray.put((query_sets, chosen))
    nearest = np.full(len(query_sets), -1.0, dtype=np.float32)
    background = np.zeros(len(BACKGROUND_BINS) - 1, dtype=np.int64)
    for row in real.map_batches(_nearest_block, batch_size=NEAREST_BLOCK,
                                batch_format="pandas",
                                fn_kwargs={"queries": ref, "cfg": cfg}).iter_rows():
        np.maximum(nearest, np.frombuffer(row["nearest"], dtype=np.float32), out=nearest)
        background += np.frombuffer(row["background"], dtype=np.int64)
    nearest = nearest.astype(float)
    return learned_config(cfg, jaccard_bar(nearest, cfg.threshold_quantile, cfg.threshold),
                          nearest, background, records)


# --------------------------------------------------------------------------- exact

def _features(batch: pd.DataFrame, cfg: DedupConfig, parts: int) -> pd.DataFrame:
    """Per record, for records still to dedup: the exact hash and the LSH band keys
    (`dedup.record_features`, the local engine's per-record work)."""
    active = np.array([not r for r in batch["reasons"]], dtype=bool)
    batch = batch.loc[active]
    texts = batch["text"].tolist()
    minhasher, index = near_hasher(cfg) if cfg.near else (None, None)
    digests, keys, short, _, _ = record_features(texts, minhasher, index)
    n = len(texts)
    return pd.DataFrame({
        "key": batch["key"].tolist(), "id": batch["id"].tolist(),
        "source": batch["source"].tolist(), "h": digests,
        "bands": [k.tobytes() for k in keys] if keys is not None else [b""] * n,
        "short": short if short is not None else np.zeros(n, dtype=bool),
        "seg": _segment(batch["part"], batch["row"]), "hpart": _part_of(digests, parts)})


def _exact_partition(df: pd.DataFrame, cfg: DedupConfig) -> pd.DataFrame:
    """Whole hash groups in content order, decided by `dedup.decide_exact`: each record's
    exact reason ("" when it stays) and the id of the record it repeats."""
    df = df.sort_values("key", kind="stable").reset_index(drop=True)
    real = (df["source"] == REAL).to_numpy()
    reason = np.full(len(df), "", dtype=object)
    dup_of = np.full(len(df), None, dtype=object)
    if cfg.exact:
        exact, copies, matched = decide_exact(df["h"].tolist(), real, cfg.dedup_real)
        ids = df["id"].to_numpy(dtype=object)
        reason[exact] = Reason.EXACT_DUPLICATE.value
        reason[copies] = Reason.COPIES_REAL.value
        dup_of[matched >= 0] = ids[matched[matched >= 0]]
    return pd.DataFrame({"key": df["key"], "real": real, "reason": reason, "dup_of": dup_of,
                         "bands": df["bands"], "short": df["short"], "seg": df["seg"]})


def _where_reason(batch: pd.DataFrame, decided: bool) -> pd.DataFrame:
    """The records an exact decision rejected (`decided`), or the ones it left (alive)."""
    return batch.loc[(batch["reason"] != "").to_numpy() == decided]


# --------------------------------------------------------------------------- near

def record_ids(keys) -> np.ndarray:
    """64-bit ids of records (a hash of their key): what the LSH steps and the driver hold
    instead of the keys, 8 bytes a record. Two records sharing an id (about 2**-64 a pair)
    would at most join two components, which are then decided together, as the same
    decisions."""
    return np.frombuffer(b"".join(hashlib.blake2b(k, digest_size=8).digest() for k in keys),
                         dtype="<u8").astype(np.uint64)


# Band rows a partition of band keys holds per record a records partition holds.
BAND_ROWS_PER_RECORD = 16


def _band_rows(batch: pd.DataFrame, bands: int, parts: int) -> pd.DataFrame:
    """One row per (alive record, band): the band's key, for grouping into buckets; numeric
    columns only."""
    keys = np.frombuffer(b"".join(batch["bands"].tolist()), dtype=np.uint64
                         ).reshape(len(batch), bands)
    band = np.tile(np.arange(bands, dtype=np.int64), len(batch))
    bkey = keys.ravel()
    # the band in the partition number too, so a bucket's band keys meet in one partition
    mixed = bkey ^ (band.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return pd.DataFrame({"band": band, "bkey": bkey,
                         "rid": np.repeat(record_ids(batch["key"].tolist()), bands),
                         "bpart": (mixed % np.uint64(parts)).astype(np.int64)})


def _buckets(df: pd.DataFrame) -> pd.DataFrame:
    """The buckets of a partition of band keys (`minhash.equal_key_runs` per band, as the
    local `CandidateIndex.groups`), each its sorted record ids as bytes."""
    by_size: dict[int, list[np.ndarray]] = {}
    band, bkey = df["band"].to_numpy(), df["bkey"].to_numpy(dtype=np.uint64)
    rid = df["rid"].to_numpy(dtype=np.uint64)
    for b in np.unique(band).tolist():
        at = band == b
        equal_key_runs(bkey[at], rid[at], by_size)
    found = []
    for buckets in by_size.values():
        found += [row.tobytes() for row in np.unique(np.sort(np.concatenate(buckets), axis=1),
                                                     axis=0)]
    return pd.DataFrame({"members": found}, columns=["members"])


class Components:
    """The connected components of the buckets' records, as arrays the driver builds and
    the workers share through the object store: each candidate's id and component, and the
    buckets grouped by component (16 bytes a candidate, 8 a bucket membership)."""

    def __init__(self, buckets: list[bytes]):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        sizes = np.array([len(b) // 8 for b in buckets], dtype=np.int64)
        members = np.frombuffer(b"".join(buckets), dtype=np.uint64)
        self.ids, node = np.unique(members, return_inverse=True)
        starts = np.cumsum(sizes) - sizes
        first = np.repeat(node[starts], sizes)                 # each bucket a star
        graph = coo_matrix((np.ones(len(node), dtype=np.int8), (first, node)),
                           shape=(len(self.ids), len(self.ids)))
        self.count, self.comp = connected_components(graph, directed=False)
        bucket_comp = self.comp[node[starts]] if len(starts) else np.zeros(0, np.int64)
        order = np.argsort(bucket_comp, kind="stable")
        self.bucket_comp = bucket_comp[order]
        self.bucket_sizes = sizes[order]
        self.bucket_members = np.concatenate([members[starts[i]:starts[i] + sizes[i]]
                                              for i in order]) if len(order) else members
        self.bucket_starts = np.cumsum(self.bucket_sizes) - self.bucket_sizes

    def component_of(self, ids: np.ndarray) -> np.ndarray:
        """Each id's component, -1 for records in no bucket."""
        if not len(self.ids):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.searchsorted(self.ids, ids)
        at[at == len(self.ids)] = 0
        return np.where(self.ids[at] == ids, self.comp[at], -1).astype(np.int64)

    def buckets_of(self, comp: int) -> list[np.ndarray]:
        lo, hi = np.searchsorted(self.bucket_comp, [comp, comp + 1])
        return [self.bucket_members[self.bucket_starts[i]:
                                    self.bucket_starts[i] + self.bucket_sizes[i]]
                for i in range(lo, hi)]


def _trimmed(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`, once the task's freed memory is handed back (a worker runs many tasks: the
    heap of its largest one would stay with it)."""
    return_freed_memory()
    return frame


def _candidates(batch, comps, parts: int, cfg: DedupConfig) -> pd.DataFrame:
    """The records that share a bucket, with their component and their shingle set (sorted
    64-bit fingerprints, `Shingler.fingerprints` of the local engine): what the Jaccard
    check reads, 8 bytes a distinct shingle instead of the text. `batch` is an Arrow table:
    only the candidates' texts become Python strings."""
    import ray
    found: Components = ray.get(comps)
    keys = batch["key"].to_pylist()
    rids = record_ids(keys)
    comp = found.component_of(rids)
    at = np.flatnonzero(comp >= 0)
    batch = batch.take(at)
    shingler = Shingler(cfg.ngram, cfg.shingle)
    texts = batch["text"].to_pylist()
    sets: list[bytes] = []
    if texts:
        prints, firsts = shingler.fingerprints([shingler.shingle_text(normalize(t))
                                                for t in texts])
        for piece in np.split(prints, firsts[1:]):
            sets.append(np.unique(piece).tobytes())
    return pd.DataFrame({"key": [keys[i] for i in at.tolist()],
                         "id": batch["id"].to_pylist(), "source": batch["source"].to_pylist(),
                         "rid": rids[at], "prints": sets, "comp": comp[at],
                         "seg": _segment(batch["part"].to_numpy(), batch["row"].to_numpy()),
                         "cpart": comp[at] % parts}).pipe(_trimmed)


def _decide_components(df: pd.DataFrame, buckets_ref, cfg: DedupConfig) -> pd.DataFrame:
    """The components of a partition decided together, as the local engine decides all
    records at once: `JaccardCheck` + `decide_near` on their buckets, in content order.
    Decisions never cross a component (no bucket does), and inside one the records keep
    their relative order, so these are the decisions of each component alone, without a
    Python pass per component (a few records each: 0.5 ms apiece was most of this step)."""
    import ray
    found: Components = ray.get(buckets_ref)
    rows: dict[str, list] = {c: [] for c in ("kind", "key", "reason", "dup_of",
                                             "similarity", "explanation", "payload", "seg")}

    def emit(kind, key=b"", reason="", dup_of=None, similarity=np.nan, explanation="",
             payload="", seg=-1):
        for c, v in zip(rows, (kind, key, reason, dup_of, similarity, explanation, payload,
                               seg)):
            rows[c].append(v)

    members = df.sort_values("key", kind="stable").reset_index(drop=True)
    del df
    keys, ids = members["key"].tolist(), members["id"].tolist()
    segs = members["seg"].tolist()
    prints = [np.frombuffer(p, dtype=np.uint64) for p in members["prints"].tolist()]
    local = {int(r): i for i, r in enumerate(members["rid"].tolist())}
    groups = sorted({tuple(sorted(local[int(r)] for r in b.tolist()))
                     for comp in np.unique(members["comp"].to_numpy()).tolist()
                     for b in found.buckets_of(int(comp))})
    real = (members["source"] == REAL).to_numpy()
    del members

    def fingerprints_of(records: list[int]):
        sizes = np.array([len(prints[i]) for i in records], dtype=np.int64)
        return (np.concatenate([prints[i] for i in records]) if records
                else np.zeros(0, np.uint64), np.cumsum(sizes) - sizes)

    check = JaccardCheck(list(range(len(keys))), cfg.threshold, cfg.batch_size,
                         fingerprints_of)
    # The check holds its own copy of every set: the column's bytes can go before the walk.
    # (A partition holds the largest LSH component whole: at 1,000,000 benchmark records
    # one of 159,277 records, 3.7M candidate pairs, 173 MB of fingerprints.)
    del prints
    decisions = decide_near(groups, real, check, cfg.dedup_real)
    details = near_details(check.similarities, decisions, real, cfg.threshold)
    near_of = {d.record: d.kept for d in decisions if d.reason is Reason.NEAR_DUPLICATE}
    examples: list[tuple] = []
    for d in decisions:
        kept_dup_of = ids[near_of[d.kept]] if d.kept in near_of else None
        emit("decision", keys[d.record], d.reason.value, ids[d.kept], d.similarity,
             _explain(d, ids[d.kept], kept_dup_of), seg=segs[d.record])
        examples.append((d.reason.value, d.similarity, keys[d.record],
                         [d.reason.value, d.similarity, ids[d.record], ids[d.kept],
                          keys[d.record].hex(), keys[d.kept].hex()]))
    for reason in (Reason.NEAR_DUPLICATE.value, Reason.COPIES_REAL.value):
        chosen = sorted((e for e in examples if e[0] == reason), key=lambda e: e[1:3])
        for _, sim, key, ex in chosen[:EXAMPLES_PER_REASON]:
            emit("example", key, reason, similarity=sim, payload=json.dumps(ex))
    if keys:
        emit("details", payload=json.dumps(details))
    del check, groups
    return_freed_memory()
    return pd.DataFrame(rows)


def example_keys(chosen: list[list]) -> set[bytes]:
    """The records whose texts the report's near pairs show."""
    return {bytes.fromhex(k) for e in chosen for k in e[4:6]}


def near_examples(chosen: list[list], texts: dict[bytes, str]) -> list[dict]:
    """The report's near pairs (`dedup.example`), with the texts of their records (gathered
    by the pass that writes the outputs: no pass of their own)."""
    from ..dedup import NearDecision
    return [example(NearDecision(0, 0, sim, Reason(reason)), rid, kid,
                    texts[bytes.fromhex(rk)], texts[bytes.fromhex(kk)])
            for reason, sim, rid, kid, rk, kk in chosen]


def _add(a: dict | None, b: dict) -> dict:
    """Report details of two partitions added up: numbers add, lists add element-wise;
    anything else (histogram bins) is the same in both."""
    if a is None:
        return b
    out = {}
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = _add(a.get(k), v)
        elif isinstance(v, list) and k != "bins":
            out[k] = [x + y for x, y in zip(a[k], v)]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = a[k] + v
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- dedup

DECISION_SCHEMA_COLUMNS = ["key", "reason", "dup_of", "dup_similarity", "dup_test",
                           "dup_note", "seg"]


class Steps:
    """Seconds of each step of the Ray dedup (the stage row of report.json shows them)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now


def _exact_decisions(batch: pd.DataFrame) -> pd.DataFrame:
    """Decision rows of the records an exact test rejected."""
    batch = batch.loc[(batch["reason"] != "").to_numpy()]
    return pd.DataFrame({
        "key": batch["key"].tolist(), "reason": batch["reason"].tolist(),
        "dup_of": batch["dup_of"].tolist(), "dup_similarity": np.ones(len(batch)),
        "dup_test": ["exact"] * len(batch),
        "dup_note": [explain_exact(r == Reason.COPIES_REAL.value, d)
                     for r, d in zip(batch["reason"], batch["dup_of"])],
        "seg": batch["seg"].to_numpy()},
        columns=DECISION_SCHEMA_COLUMNS)


def _near_decisions(batch: pd.DataFrame) -> pd.DataFrame:
    """Decision rows of the records the component step rejected."""
    batch = batch.loc[(batch["kind"] == "decision").to_numpy()]
    return pd.DataFrame({
        "key": batch["key"].tolist(), "reason": batch["reason"].tolist(),
        "dup_of": batch["dup_of"].tolist(),
        "dup_similarity": batch["similarity"].astype(float).to_numpy(),
        "dup_test": ["jaccard"] * len(batch), "dup_note": batch["explanation"].tolist(),
        "seg": batch["seg"].to_numpy()},
        columns=DECISION_SCHEMA_COLUMNS)


def _notes(batch: pd.DataFrame) -> pd.DataFrame:
    """The component step's report rows (details, examples), without its decisions."""
    return batch.loc[(batch["kind"] != "decision").to_numpy()]


def _reason_tally(batch: pd.DataFrame) -> pd.DataFrame:
    counts = batch.groupby(["reason", "dup_test"]).size()
    return pd.DataFrame({"reason": [r for r, _ in counts.index],
                         "test": [t for _, t in counts.index], "n": counts.to_numpy()})


def tally(decisions) -> dict[tuple[str, str], int]:
    """Decisions per (reason, test), added up over the blocks."""
    frame = decisions.map_batches(_reason_tally, batch_size=None,
                                  batch_format="pandas").to_pandas()
    if not len(frame):
        return {}
    return {(str(r), str(t)): int(n)
            for (r, t), n in frame.groupby(["reason", "test"])["n"].sum().items()}


def deduplicate(recs, config: Config, total: int, ray) -> tuple[Any, dict, dict]:
    """The dedup stage on Ray Data (module docstring): a Dataset of the dedup decisions
    (rejected records only: key, reason, dup_of, dup_similarity, dup_test, note), the
    report details (the same as the local stage's), and the seconds of each step."""
    import ray.data

    cfg = config.dedup
    parts = _partitions(total, config, ray)
    details: dict[str, Any] = {}
    steps = Steps()
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in DECISION_SCHEMA_COLUMNS})
    if not (cfg.exact or cfg.near):
        details["_rejected"] = {}
        return ray.data.from_pandas(empty), details, steps.seconds
    if cfg.near and cfg.learn_threshold:
        cfg, details["learned_threshold"] = learn_bar(recs, cfg, ray, total)
        steps.mark("learn_bar")
    bands = 0
    if cfg.near:
        _, index = near_hasher(cfg)
        bands = index.bands
        details["near"] = near_settings(cfg, index)
    compact = (recs.select_columns(["key", "id", "source", "text", "reasons", "part", "row"])
               .map_batches(_features, batch_size=cfg.batch_size * 8, batch_format="pandas",
                            fn_kwargs={"cfg": cfg, "parts": parts}))
    decided = compact.groupby("hpart").map_groups(
        _exact_partition, batch_format="pandas", fn_kwargs={"cfg": cfg}).materialize()
    steps.mark("features_and_exact")
    decisions = decided.map_batches(_exact_decisions, batch_format="pandas")
    examples: list = []
    if cfg.near:
        alive = decided.map_batches(_where_reason, batch_format="pandas",
                                    fn_kwargs={"decided": False}).materialize()
        short = int(alive.sum("short") or 0) if alive.count() else 0
        # Partitions sized by the bytes they hold: a record has a row per band here, of
        # 32 bytes (a record with its text is a kilobyte or more), so a partition holds
        # the band rows of BAND_ROWS_PER_RECORD partitions' records: more partitions only
        # add shuffle pieces (500 of 3 MB each at 1,000,000 records and 50 bands).
        band_parts = _partitions(total * bands // BAND_ROWS_PER_RECORD, config, ray)
        found = (alive.select_columns(["key", "bands"])
                 .map_batches(_band_rows, batch_format="pandas",
                              fn_kwargs={"bands": bands, "parts": band_parts})
                 .groupby("bpart").map_groups(_buckets, batch_format="pandas"))
        # The driver holds the buckets as arrays of the candidates' 64-bit ids, never the
        # records: 8 bytes a bucket membership.
        distinct: set[bytes] = set()
        for batch in found.iter_batches(batch_format="numpy"):
            distinct.update(bytes(m) for m in batch["members"])
        buckets = sorted(distinct)
        del distinct
        components = Components(buckets) if buckets else None
        steps.mark("lsh_buckets_and_components")
        near: dict[str, Any] = {}
        if components is not None:
            comps = ray.put(components)
            decided_near = (recs.select_columns(["key", "id", "source", "text", "part", "row"])
                            # batches of a bounded size, as _features: the shingling
                            # needs several arrays of 8 bytes per byte of text, which
                            # whole blocks (an input file's) made grow with the file
                            .map_batches(_candidates, batch_format="pyarrow",
                                         batch_size=cfg.batch_size * 8,
                                         fn_kwargs={"comps": comps,
                                                    "parts": parts, "cfg": cfg})
                            .groupby("cpart").map_groups(
                                _decide_components, batch_format="pandas",
                                fn_kwargs={"buckets_ref": comps, "cfg": cfg})
                            .materialize())
            del components, comps
            decisions = decisions.union(decided_near.map_batches(_near_decisions,
                                                                 batch_format="pandas"))
            notes = decided_near.map_batches(_notes, batch_format="pandas").to_pandas()
            for d in notes.loc[notes["kind"] == "details", "payload"]:
                near = _add(near or None, json.loads(d))
            ex = notes[notes["kind"] == "example"]
            examples = [json.loads(p) for _, _, _, p in sorted(
                zip(ex["reason"], ex["similarity"], ex["key"], ex["payload"]),
                key=lambda e: (e[0] != Reason.NEAR_DUPLICATE.value, e[1], e[2]))]
            steps.mark("jaccard_and_decisions")
        if not near:
            near = near_details([], [], np.zeros(0, bool), cfg.threshold)
        details["near"].update(short_records_compared_exactly=short,
                               candidate_buckets=len(buckets), **near)
    details["_examples"] = _pick_examples(examples)
    decisions = decisions.materialize()
    counts = tally(decisions)
    if cfg.exact:
        details["exact"] = {"exact_duplicate": counts.get(("exact_duplicate", "exact"), 0),
                            "copies_real_exact": counts.get(("copies_real", "exact"), 0)}
    details["_rejected"] = {r.value: sum(n for (reason, _), n in counts.items()
                                         if reason == r.value) for r in Reason}
    steps.mark("decisions")
    return decisions, details, steps.seconds


def _dup_of_only(batch: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dup_of": batch["dup_of"].tolist()})


def _sizes(batch: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"size": batch["count()"].to_numpy() + 1})


def group_sizes(decisions) -> dict:
    """`dedup.group_sizes` on the decisions Dataset: records naming each kept record,
    counted by a groupby, then how many groups have each size."""
    from ..dedup import size_histogram
    per_group = (decisions.map_batches(_dup_of_only, batch_format="pandas")
                 .groupby("dup_of").count()
                 .map_batches(_sizes, batch_format="pandas")
                 .groupby("size").count().to_pandas())
    return size_histogram(per_group["size"].to_numpy(), per_group["count()"].to_numpy())


def _pick_examples(examples: list[list]) -> list[list]:
    out = []
    for reason in (Reason.NEAR_DUPLICATE.value, Reason.COPIES_REAL.value):
        out += [e for e in examples if e[0] == reason][:EXAMPLES_PER_REASON]
    return out


def _apply(batch: pd.DataFrame) -> pd.DataFrame:
    """The dedup decisions joined to their records: the reason added, the record no longer
    kept, dup_of / dup_similarity / dup_test set (as `records.reject` and the stage do)."""
    batch = batch.copy()
    hit = batch["reason"].notna().to_numpy() if "reason" in batch else np.zeros(len(batch), bool)
    reasons = batch["reasons"].tolist()
    notes = batch["explanation"].tolist()
    kept = batch["kept"].to_numpy(copy=True)
    dup_of = [None] * len(batch)
    sim = np.full(len(batch), np.nan)
    test = [None] * len(batch)
    if hit.any():
        for i in np.flatnonzero(hit).tolist():
            reasons[i] = list(reasons[i]) + [batch["reason"].iat[i]]
            note = batch["dup_note"].iat[i]
            notes[i] = f"{notes[i]}; {note}" if notes[i] else note
            kept[i] = False
            dup_of[i] = batch["dup_of"].iat[i]
            sim[i] = batch["dup_similarity"].iat[i]
            test[i] = batch["dup_test"].iat[i]
    batch["reasons"], batch["explanation"], batch["kept"] = reasons, notes, kept
    batch["dup_of"], batch["dup_similarity"], batch["dup_test"] = dup_of, sim, test
    return batch.drop(columns=[c for c in ("reason", "dup_note", "seg") if c in batch])


def _segment(part, row) -> np.ndarray:
    """Where a record lies: its input part and its block there (`BLOCK_RECORDS` rows, as
    `_read_parts` cuts them), so that a segment's records are found in one block."""
    return (np.asarray(part, dtype=np.int64) << 32) + np.asarray(row, dtype=np.int64) \
        // BLOCK_RECORDS


def _pack(group: pd.DataFrame) -> pd.DataFrame:
    """One segment's decisions as one row: its number and the rows, pickled."""
    return pd.DataFrame({"seg": [int(group["seg"].iat[0])],
                         "rows": [pickle.dumps(group.drop(columns=["seg"]), protocol=5)]})


def _apply_located(batch: pd.DataFrame, segments) -> pd.DataFrame:
    """A block of records with its segments' decisions merged in on the key, then applied."""
    import ray
    refs = ray.get(segments)
    wanted = [refs[s] for s in np.unique(_segment(batch["part"], batch["row"])).tolist()
              if s in refs]
    if not wanted:
        return _apply(batch)
    found = pd.concat([pickle.loads(b) for b in ray.get(wanted)], ignore_index=True)
    return _apply(batch.merge(found, on="key", how="left", sort=False))


def apply_decisions(recs, decisions, ray):
    """The records with the dedup decisions applied. The records stay where they are: the
    (rejected records') decisions, which carry their record's segment (an input block) from
    the dedup steps, are grouped by segment and handed to the block that needs them, so no
    record's text is shuffled (a join of the records on the key moved every text through
    the object store twice: about 46 of the 61 s of writing 1,000,000 records)."""
    if not decisions.count():
        return recs.map_batches(_apply, batch_format="pandas")
    located = decisions.groupby("seg").map_groups(_pack, batch_format="pandas")
    segments = {}
    for batch in located.iter_batches(batch_format="pandas"):
        for seg, rows in zip(batch["seg"].tolist(), batch["rows"].tolist()):
            segments[int(seg)] = ray.put(rows)   # the driver holds references only
    return recs.map_batches(_apply_located, batch_format="pandas",
                            fn_kwargs={"segments": ray.put(segments)})


# --------------------------------------------------------------------------- the run

def run(real=None, synthetic=None, *, input=None, config: Config,
        embedder: Embedder | None = None, out: str | Path | None = None,
        progress: Progress | None = None, benchmark=None):
    """A run on Ray (see `synthgate.run`)."""
    from ..runner import build_stages, input_names

    inputs = input_names(real=real, synthetic=synthetic, input=input)   # for the card
    ray = start(config)
    progress = progress or Progress(False)
    ctx = RunContext(config=config, progress=progress, embedder=embedder)
    start_time = time.perf_counter()
    progress.note("synthgate: reading the inputs (Ray)")
    recs, names = read(ray, real, synthetic, input, config)
    total = recs.count()
    parts = _partitions(total, config, ray)
    recs, counts = check_ids(recs, names, config, parts, ray)
    if not counts["real"]:
        raise InputError("no real records: the real input holds none (empty files?); the real "
                         "records are the yardstick every threshold is learned from")
    stage_rows = [{"name": "ingest", "seconds": round(time.perf_counter() - start_time, 3),
                   "records_in": total, "records_out": counts["kept"],
                   "rejected": {Reason.INVALID.value: counts["invalid"]}
                   if counts["invalid"] else {}}]
    stages = build_stages(config, benchmark)
    single_node = [s for s in stages if s.name not in ("dedup", "measure")]
    if single_node and single_node[0].name == "decontaminate":
        # Decontamination comes before dedup: everything runs on the driver.
        return _on_driver(recs, stages, stage_rows, ctx, out, ray, inputs=inputs)
    details: dict[str, Any] = {}
    if any(s.name == "dedup" for s in stages):
        progress.note(f"synthgate: dedup on Ray ({total} records)")
        t0 = time.perf_counter()
        before = stage_rows[0]["records_out"]
        decisions, dedup_details, steps = deduplicate(recs, config, total, ray)
        chosen = dedup_details.pop("_examples")
        rejected = dedup_details.pop("_rejected")
        # Not materialized: the join runs as the records stream into the outputs.
        recs = apply_decisions(recs, decisions, ray)
        dedup_details["duplicate_groups"] = group_sizes(decisions)
        if chosen:   # their texts are gathered on the way out
            dedup_details["examples"] = chosen
        details["dedup"] = dedup_details
        stage_rows.append({"name": "dedup", "seconds": round(time.perf_counter() - t0, 3),
                           "setup_seconds": 0.0, "records_in": before,
                           "records_out": before - sum(rejected.values()),
                           "rejected": {r.value: rejected[r.value] for r in Reason
                                        if rejected.get(r.value)},
                           "engine_steps": steps})
    else:
        recs = recs.map_batches(_apply, batch_format="pandas")
    if single_node:
        return _on_driver(recs, [s for s in stages if s.name != "dedup"], stage_rows, ctx,
                          out, ray, details, inputs=inputs)
    return _streamed(recs, total, stage_rows, details, ctx, out, names, inputs)


# --------------------------------------------------------------------------- single node

def _on_driver(recs, stages, stage_rows, ctx: RunContext, out, ray, details=None,
               inputs=None):
    """The stages not split yet, run by the local engine on the records collected in the
    driver (after the distributed dedup, when it ran): the same stage objects, so the same
    decisions; their embedding model runs in a Ray actor pool (`ray_embed.RayEmbedder`)."""
    from .local import finish, run_stages
    from .ray_tasks import RayTasks
    from ..checks.contracts import input_contract

    frame = pd.concat(list(_blocks(recs)), ignore_index=True)
    frame = frame.sort_values("key", kind="stable").reset_index(drop=True)  # content order
    _fill_examples(details, dict(zip(frame["key"].map(bytes), frame["text"])))
    input_rank = np.lexsort((frame["row"].to_numpy(), frame["part"].to_numpy()))
    order = np.empty(len(frame), dtype=np.int64)
    order[input_rank] = np.arange(len(frame))
    originals = _originals(frame["record"].iloc[input_rank])
    table = _table(frame)
    config = ctx.config
    if any(s.name in ("embed", "decontaminate") for s in stages):
        # The model runs in an actor pool; the rest of those stages here (ray_embed).
        from .ray_embed import RayEmbedder
        ctx.embedder = RayEmbedder(config, ray, ctx.embedder)
    # the stages' independent pieces (cross-fit folds, runs of records to score) as tasks
    ctx.tasks = RayTasks(ray)
    # ids, sources and `invalid` (the first reason, before any dedup reason) as at ingest
    checks = input_contract(table, config.gate.max_invalid_share, config.gate.contracts)
    rows, more, metrics, stage_checks = run_stages(stages, table, ctx)
    return finish(table, order, originals, stage_rows + rows, checks + stage_checks,
                  {**(details or {}), **more}, metrics, ctx, out, inputs=inputs)


def _fill_examples(details: dict | None, texts: dict[bytes, str]) -> None:
    """The dedup examples with their texts, once those have gone by."""
    dedup = (details or {}).get("dedup", {})
    if dedup.get("examples"):
        dedup["examples"] = near_examples(dedup["examples"], texts)


def _floats(values: pd.Series) -> np.ndarray:
    """A float column whose blocks may hold NaN, None or NA where nothing was decided (a
    block's Arrow-backed column, or an object column) as float64 with NaN."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    """The local records table from collected records (the columns stages read)."""
    table = pd.DataFrame({
        "id": frame["id"].astype(object), "source": frame["source"].astype(object),
        "text": pd.Series([t if isinstance(t, str) else None for t in frame["text"]],
                          dtype=object),
        "generation": pd.array([None if pd.isna(g) else int(g) for g in frame["generation"]],
                               dtype="Int64"),
        "kept": frame["kept"].astype(bool).to_numpy(),
        "reasons": pd.Series([list(r) for r in frame["reasons"]], dtype=object),
        "dup_of": pd.Series(frame["dup_of"].tolist() if "dup_of" in frame
                            else [None] * len(frame), dtype=object),
        "explanation": frame["explanation"].astype(object),
    })
    if "dup_similarity" in frame:
        table["dup_similarity"] = _floats(frame["dup_similarity"])
        table["dup_test"] = pd.Series(frame["dup_test"].tolist(), dtype=object)
    return table


# --------------------------------------------------------------------------- streamed

class Summary:
    """What report.json needs from the records, added up block by block in the driver:
    counts per source, reasons, the first examples per reason in content order, the
    rejected-share counts, the contract figures, and a bounded diversity sample per set
    (records with the smallest seeded hash of their key, about `SAMPLE_WORDS` words)."""

    def __init__(self, seed: int, wanted: set[bytes] = frozenset()):
        self.seed = seed
        self.wanted = wanted
        self.texts: dict[bytes, str] = {}   # of `wanted` (the dedup examples)
        self.inputs = {REAL: 0, SYNTHETIC: 0}
        self.kept = {REAL: 0, SYNTHETIC: 0}
        self.usable = {REAL: 0, SYNTHETIC: 0}
        self.rejections: dict[str, int] = {}
        self.examples: dict[str, list] = {}
        self.valid_synth = 0
        self.rejected_synth = 0
        self.quality = {r.value: 0 for r in QUALITY_REASONS}
        self.inconsistent = 0
        self.decided = 0
        self.train_rows = 0
        self.sets = {"real": _Sample(), "synthetic_in": _Sample(), "synthetic_kept": _Sample()}

    def add(self, batch: pd.DataFrame) -> None:
        salt = str(self.seed).encode()
        quality = {r.value for r in QUALITY_REASONS}
        for rec in batch.itertuples(index=False):
            if rec.key in self.wanted:
                self.texts[rec.key] = rec.text
            reasons = list(rec.reasons)
            src = rec.source
            self.inputs[src] += 1
            self.decided += 1
            kept = bool(rec.kept)
            if kept:
                self.kept[src] += 1
            if kept == bool(reasons):
                self.inconsistent += 1
            invalid = bool(reasons) and reasons[0] == Reason.INVALID.value
            if not invalid:
                self.usable[src] += 1
            for r in reasons:
                self.rejections[r] = self.rejections.get(r, 0) + 1
            if reasons:
                self._example(rec, reasons)
            if src == SYNTHETIC and Reason.INVALID.value not in reasons:
                self.valid_synth += 1
                hit = quality.intersection(reasons)
                if hit:
                    self.rejected_synth += 1
                    for r in hit:
                        self.quality[r] += 1
            if not invalid:
                rank = hashlib.blake2b(rec.key, digest_size=8, key=salt).digest()
                self.sets["real" if src == REAL else "synthetic_in"].add(rank, rec.key,
                                                                         rec.text)
                if src == SYNTHETIC and kept:
                    self.sets["synthetic_kept"].add(rank, rec.key, rec.text)

    def _example(self, rec, reasons: list[str]) -> None:
        bucket = self.examples.setdefault(reasons[0], [])
        text = rec.text if isinstance(rec.text, str) else ""
        item = (rec.key, {   # report.build lists them in the stages' content order
            "id": rec.id, "source": rec.source, "reasons": reasons, "dup_of": rec.dup_of,
            "explanation": rec.explanation,
            "text": text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else "")})
        bucket.append(item)
        if len(bucket) > REPORT_EXAMPLES:
            bucket.sort(key=lambda e: e[0])
            bucket.pop()

    def report_examples(self) -> dict[str, list[dict]]:
        order = [r.value for r in Reason]
        return {k: [e for _, e in sorted(self.examples[k], key=lambda e: e[0])]
                for k in order if k in self.examples}

    def diversity(self) -> dict[str, dict]:
        out = {}
        for name, sample in self.sets.items():
            texts = sample.texts()
            metrics = diversity(texts, seed=self.seed)
            metrics["records"] = sample.records
            out[name] = metrics
        return out


class _Sample:
    """The records with the smallest ranks until they hold `SAMPLE_WORDS` words: a seeded
    sample of a set that a block-by-block pass can keep, bounded in memory."""

    def __init__(self):
        self.records = 0
        self.heap: list[tuple] = []   # (_Backwards(rank), words, key, text): largest on top
        self.words = 0

    def add(self, rank: bytes, key: bytes, text: str) -> None:
        self.records += 1
        if self.words >= SAMPLE_WORDS and rank > self.heap[0][0].value:
            return   # past the budget already: a larger rank is never in the sample
        words = len(text.split())
        heapq.heappush(self.heap, (_Backwards(rank), words, key, text))
        self.words += words
        while self.words - self.heap[0][1] >= SAMPLE_WORDS:
            _, w, _, _ = heapq.heappop(self.heap)   # the budget holds without it
            self.words -= w

    def texts(self) -> list[str]:
        """The sample in the stages' content order (a set under the budget is then measured
        exactly as the local engine measures it)."""
        return [t for _, _, _, t in sorted(self.heap, key=lambda e: e[2])]


class _Backwards:
    """Bytes ordered backwards, so heapq's smallest is the largest rank."""

    __slots__ = ("value",)

    def __init__(self, value: bytes):
        self.value = value

    def __lt__(self, other: "_Backwards") -> bool:
        return self.value > other.value


def _blocks(recs) -> Iterator[pd.DataFrame]:
    """The records in blocks as plain pandas frames (object strings, numpy numbers): what
    the driver loops over in Python. Ray's pandas batches hold Arrow-backed columns, whose
    element-by-element iteration was a third of the driver's time in the write."""
    for table in recs.iter_batches(batch_size=BLOCK_RECORDS, batch_format="pyarrow"):
        frame = table.to_pandas()
        for name in frame.columns:
            if not isinstance(frame[name].dtype, np.dtype):   # strings: pandas' str dtype
                frame[name] = pd.Series(table.column(name).to_numpy(zero_copy_only=False),
                                        dtype=object, index=frame.index)
        yield frame


def _decision_rows(batch: pd.DataFrame) -> pd.DataFrame:
    """The decision log's rows of a block (`runner.decisions_frame`), each column of one type
    whatever the block holds, so the Parquet shards share one schema."""
    from ..runner import decisions_frame

    out = decisions_frame(batch)
    for col in ("id", "source", "explanation", "dup_of", "dup_test"):
        out[col] = pd.Series([v if isinstance(v, str) else None for v in out[col]],
                             dtype=object, index=out.index)
    out["dup_similarity"] = _floats(out["dup_similarity"])
    out["generation"] = pd.array([None if pd.isna(g) else int(g) for g in batch["generation"]],
                                 dtype="Int64")
    out["reasons"] = [list(r) for r in out["reasons"]]
    return out.reset_index(drop=True)


def _append(path: Path, lines: str) -> None:
    """Adds a block's JSON lines to the end of the training file."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lines if not lines or lines.endswith("\n") else lines + "\n")


def _originals(pickled) -> pd.DataFrame:
    """The input's other columns of some records (unpickled), row-aligned."""
    rows = [pickle.loads(r) if r else {} for r in pickled]
    return pd.DataFrame(rows) if any(rows) else pd.DataFrame(index=range(len(rows)))


def _train_rows(batch: pd.DataFrame) -> pd.DataFrame:
    kept = batch.loc[batch["kept"].to_numpy()]
    others = _originals(kept["record"])
    head = kept[["id", "source", "text"]].astype(object).reset_index(drop=True)
    return pd.concat([head, others.reset_index(drop=True)], axis=1)


def _streamed(recs, total: int, stage_rows: list, details: dict, ctx: RunContext, out,
              names: list[str], inputs: dict[str, list[str]] | None = None):
    """Dedup-only runs: the records never gathered. The driver streams them in blocks into
    the shards and the report's sums."""
    from .. import report as report_mod
    from ..runner import RunResult, __version__

    config = ctx.config
    summary = Summary(config.seed, example_keys(details.get("dedup", {}).get("examples", [])))
    measured: dict[str, Any] = {}

    def build_report() -> dict:
        if "report" in measured:
            return measured["report"]
        t0 = time.perf_counter()
        metrics = summary.diversity()
        checks = _input_checks(summary, config) + rejected_share_from(
            summary.valid_synth, summary.rejected_synth, summary.quality,
            config.gate.max_rejected_share)
        rows = stage_rows + [{"name": "measure",
                              "seconds": round(time.perf_counter() - t0, 3),
                              "setup_seconds": 0.0,
                              "records_in": summary.kept[REAL] + summary.kept[SYNTHETIC],
                              "records_out": summary.kept[REAL] + summary.kept[SYNTHETIC],
                              "rejected": {}}]
        checks += _output_checks(summary, total, config)
        _fill_examples(details, summary.texts)
        measured["report"] = report_mod.assemble(
            inputs=dict(summary.inputs), kept=dict(summary.kept),
            rejections={r.value: summary.rejections[r.value] for r in Reason
                        if summary.rejections.get(r.value)},
            examples=summary.report_examples(), version=__version__,
            config={**config.to_dict(), "hash": config.hash()}, stages=rows,
            metrics=metrics, checks=checks, details=details)
        return measured["report"]

    def write_data(tmp: Path, writing) -> tuple[list[str], Any, int]:
        """The shards; returns (the files, train's Arrow schema, its size) for the card."""
        import pyarrow as pa

        # DESIGN.md's names: decisions.parquet and train.parquet are Parquet dataset folders
        # (pandas, pyarrow, polars and DuckDB read a folder of parts as one table);
        # train.jsonl stays one file, each block's lines appended to it.
        (tmp / "decisions.parquet").mkdir()
        if config.format != "jsonl":
            (tmp / "train.parquet").mkdir()
        files: list[str] = ["train.jsonl"] if config.format == "jsonl" else []
        schema, num_bytes = None, 0
        for n, batch in enumerate(_blocks(recs)):
            summary.add(batch)
            decisions = _decision_rows(batch)
            name = f"decisions.parquet/part-{n:05d}.parquet"
            writing(name, lambda p: decisions.to_parquet(p, index=False))
            files.append(name)
            train = output.arrow_safe(_train_rows(batch))
            summary.train_rows += len(train)
            if config.format == "jsonl":
                train = output.json_safe(train)
                lines = train.to_json(orient="records", lines=True, force_ascii=False,
                                      date_format="iso") if len(train) else ""
                writing("train.jsonl", lambda p: _append(p, lines))
            else:
                name = f"train.parquet/part-{n:05d}.parquet"
                writing(name, lambda p: train.to_parquet(p, index=False))
                files.append(name)
            if len(train):
                table = pa.Table.from_pandas(train, preserve_index=False)
                schema = schema or table.schema
                num_bytes += table.nbytes
        return files, schema, num_bytes

    result = _LazyResult(build_report)
    if out is None:
        # No folder to stream into: the decisions are gathered (the Python API's result).
        frames = []
        for batch in _blocks(recs):
            summary.add(batch)
            frames.append(batch)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        frame = frame.sort_values(["part", "row"], kind="stable").reset_index(drop=True)
        summary.train_rows = int(frame["kept"].sum()) if len(frame) else 0
        return RunResult(kept=_train_rows(frame), decisions=_decision_rows(frame),
                         report=build_report())
    from .. import report_html

    output.write_outputs(result, out, config.format, __version__,
                         html=lambda: report_html.to_html(None, build_report()),
                         inputs=inputs, write_data=write_data)
    return RunResult(kept=pd.DataFrame(), decisions=pd.DataFrame(), report=build_report())


class _LazyResult:
    """What output.write_outputs reads: the report, complete once the shards are written."""

    def __init__(self, build):
        self._build = build

    @property
    def report(self) -> dict:
        return self._build()


def _input_checks(s: Summary, config: Config) -> list[Check]:
    """The input contract (checks/contracts.input_suites) from the sums: ids are unique per
    source (duplicates were refused when read) and each source has usable text."""
    checks = [Check("input.ids_unique_per_source", True, 0, 0,
                    "0 records share a (source, id) with another; threshold 0")]
    limit = config.gate.max_invalid_share
    for source in (REAL, SYNTHETIC):
        n = s.inputs[source]
        if not n:
            continue
        missing = n - s.usable[source]
        share = s.usable[source] / n
        passed = (n - missing) / n >= max(0.0, 1.0 - limit)
        checks.append(Check(f"input.text_present.{source}", passed, missing, limit,
                            f"{source}: {missing} records without usable text ({share:.1%} "
                            f"usable; at most {limit:.0%} of a source may be invalid)"))
    return checks


def _output_checks(s: Summary, total: int, config: Config) -> list[Check]:
    """The output contract (checks/contracts.output_suites) from the sums of what was
    written."""
    kept = s.kept[REAL] + s.kept[SYNTHETIC]
    checks = [
        Check("output.every_record_decided_once", s.decided == total, s.decided, total,
              f"decisions hold {s.decided} rows for {total} input records"),
        Check("output.ids_unique", True, 0, 0,
              "0 decision rows share a (source, id); threshold 0"),
        Check("output.rejected_have_reason", s.inconsistent == 0, s.inconsistent, 0,
              f"{s.inconsistent} records are rejected without a reason or kept with one"),
        Check("output.train_equals_kept", s.train_rows == kept, abs(s.train_rows - kept), 0,
              f"{abs(s.train_rows - kept)} records differ between the kept decisions and "
              f"the training set"),
    ]
    cap = config.max_synthetic_share
    share = s.kept[SYNTHETIC] / kept if kept else 0.0
    applied = "mix" in config.stage_set
    checks.append(Check("output.synthetic_share", share <= cap + 1e-12, round(share, 6), cap,
                        f"synthetic share of the output {round(share, 6)} (cap {cap})"
                        + ("" if applied else "; the mix stage did not run, so the cap was "
                           "not applied: add mix to --stages or raise --max-synthetic-share")))
    return checks
