"""Config: every threshold of the pipeline, loaded from TOML, validated.

One dataclass per stage section, each field documented in its metadata; `init-config` prints
the defaults with those docs as comments, so the config file documents itself. Thresholds
here are *quantiles* or *relative* margins: the absolute cut-offs are learned from the real
data at run time (DESIGN.md §5), so the defaults are not tuned to one corpus.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STAGES = ("dedup", "formulaic", "embed", "mix")
# The stages a run does by default, in pipeline order.
DEFAULT_STAGES = ("dedup", "formulaic", "embed", "mix")


class ConfigError(ValueError):
    """A config file or option that cannot be used; the message names the key (`key` holds
    it, dotted, so the command line can name the flag instead)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def opt(default, help: str, *, min=None, max=None, choices=None, factory=None):
    """A documented config field; bounds are checked when the config is validated."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class IngestConfig:
    min_words: int = opt(3, "records with fewer words than this are `invalid`", min=0)
    min_chars: int = opt(1, "records with fewer non-space characters than this are `invalid`",
                         min=0)


@dataclass
class DedupConfig:
    exact: bool = opt(True, "drop exact duplicates (NFKC, case-folded, whitespace-collapsed)")
    near: bool = opt(True, "drop MinHash-LSH near-duplicates confirmed by true Jaccard")
    dedup_real: bool = opt(True, "also deduplicate real records among themselves")
    threshold: float = opt(0.8, "Jaccard similarity at or above which two records are near-duplicates",
                           min=0.0, max=1.0)
    learn_threshold: bool = opt(True, "set the Jaccard bar from the data: what a copy with "
                                      "`edit_share` of its words changed keeps, raised to the "
                                      "threshold_quantile quantile of the Jaccard distinct real "
                                      "records reach with their lexically nearest real record "
                                      "(pairs at `threshold` or above count as duplicates, not "
                                      "distinct records), never above `threshold`; `threshold` "
                                      "alone with fewer than 20 real records")
    edit_share: float = opt(0.15, "with learn_threshold: a record with up to this share of its "
                                  "words substituted, inserted, deleted or swapped is a "
                                  "near-duplicate", min=0.0, max=0.5)
    threshold_quantile: float = opt(0.995, "the quantile of real nearest-neighbour Jaccard "
                                           "that is the learned bar", min=0.5, max=1.0)
    num_perm: int = opt(128, "MinHash permutations; with learn_threshold, this or 2x, 4x ... "
                             "(up to 1024), whichever costs least in hashing plus checking the "
                             "false LSH candidates the real pairs' Jaccard predicts (word sets "
                             "share the common words: at a million records 128 permutations "
                             "proposed 77 million false pairs)", min=16, max=1024)
    ngram: int = opt(1, "shingle size in words (characters when shingle = 'char'); 1 (sets "
                         "of words) keeps 0.76+ of a short record with 15% of its words edited "
                         "where distinct real records stay under 0.5; 2 keeps 0.4-0.5 and 3 "
                         "and more miss most (benchmarks/signals_corpus.py, "
                         "benchmarks/dedup.py --choose-ngram)", min=1, max=20)
    shingle: str = opt("word", "shingle unit: word (each CJK, Thai... character and emoji counts "
                               "as a word) or char", choices=("word", "char"))
    seed: int = opt(1, "MinHash seed", min=0, max=2**32 - 1)
    lsh_recall: float = opt(0.99, "probability that LSH proposes a pair whose Jaccard is exactly "
                                  "the threshold; the longest rows, then the fewest bands, that "
                                  "reach it are used (every candidate is then confirmed by its "
                                  "true Jaccard)",
                            min=0.5, max=0.99999)
    batch_size: int = opt(512, "records hashed at once (a few hundred keep the arrays in cache); "
                               "bounds memory, never changes results", min=1)
    workers: int = opt(0, "processes that hash the records and their shingle sets, batches "
                          "shared among them (0 = one per CPU core; 1 = all in this process, "
                          "as for inputs under 20,000 records); never changes results", min=0)


@dataclass
class FormulaicConfig:
    quantile: float = opt(0.99, "a synthetic record is formulaic when one of its signals "
                                "(template share, stock phrases, repetition) is rarer among "
                                "the real records, each scored leave-one-out, than "
                                "1 - quantile**(1/3): at most 1 - quantile of real-like "
                                "records are; 1 - quantile is also the false discovery rate "
                                "of the rare-template test", min=0.5, max=1.0)
    min_n: int = opt(2, "shortest word n-gram compared between synthetic and real records",
                     min=1, max=10)
    max_n: int = opt(5, "longest word n-gram compared between synthetic and real records",
                     min=1, max=10)
    min_z: float = opt(3.0, "an n-gram is a template when its log-odds z-score (synthetic vs "
                            "real, Monroe et al. 2008) is at least this, or when Fisher's exact "
                            "test passes the Benjamini-Hochberg bar (rare templates)", min=0.0)
    min_ratio: float = opt(2.0, "... and, either way, the synthetic records use it at least "
                                "this many times as often as the real ones", min=1.0)
    builtin_stock_phrases: bool = opt(True, "match the stock phrases shipped in "
                                            "pipeline/data/stock_phrases.txt")
    stock_phrases: list[str] = opt(None, "more stock phrases to match (case-insensitive, on "
                                         "words); they count only where synthetic records use "
                                         "them more often than real ones", factory=list)


@dataclass
class EmbedConfig:
    model: str | None = opt(None, "sentence-transformers model name or path; unset = the "
                                  "bundled all-MiniLM-L6-v2 (offline)")
    device: str = opt("auto", "cpu, cuda or auto", choices=("auto", "cpu", "cuda"))
    backend: str = opt("auto", "how the model runs: auto (ONNX Runtime fp32 on CPU where the "
                               "model's pipeline allows, torch fp16 with large batches on a "
                               "GPU), torch (sentence-transformers fp32), onnx (ONNX Runtime "
                               "fp32, same vectors as torch to ~1e-7) or onnx-int8 (faster, "
                               "but its neighbours differ: see README Performance)",
                       choices=("auto", "torch", "onnx", "onnx-int8"))
    batch_size: int = opt(64, "encoding batch size (at least 256 on a GPU with backend auto)",
                          min=1)
    cache_dir: str | None = opt(None, "embedding cache directory; unset = ~/.cache/synthgate")
    k: int = opt(5, "neighbours for k-NN distances and fidelity metrics", min=1, max=100)
    holdout_fraction: float = opt(0.2, "share of real records held out to calibrate thresholds",
                                  min=0.05, max=0.5)
    off_distribution_quantile: float = opt(0.99, "a synthetic record is off-distribution when its "
                                                 "k-NN distance exceeds this quantile of the "
                                                 "held-out real records' own", min=0.5, max=1.0)
    signals: bool = opt(True, "judge off-distribution on several calibrated signals (text "
                              "make-up, language, script, character n-gram model, k-NN distance, "
                              "local density), any one of which can fire; false = the k-NN "
                              "distance alone")
    semantic_dedup: bool = opt(True, "reworded near-duplicates among the synthetic records: "
                                     "a record whose cosine to one kept before it exceeds "
                                     "what real records reach with their nearest real record "
                                     "(semantic_dedup_quantile of the held-out records') is "
                                     "`near_duplicate`")
    semantic_dedup_quantile: float = opt(0.995, "the quantile of held-out real records' "
                                                "nearest-real cosine that a reworded "
                                                "near-duplicate must exceed", min=0.5, max=1.0)
    copy_quantile: float = opt(0.99, "a synthetic record paraphrases a real one when its "
                                      "cosine to the nearest real record exceeds this quantile "
                                      "of real records' own (or it sits closer to a real "
                                      "record, relative to that record's nearest real "
                                      "neighbour, than all but 1 - this of real records do)",
                               min=0.5, max=1.0)
    collapse_margin: float = opt(0.3, "the gate fails a collapse check (recall, coverage, "
                                      "rare-cluster coverage, Vendi, distinct-2) when the kept "
                                      "synthetic set falls below the real hold-out's interval "
                                      "by more than this share of its lower end",
                                 min=0.0, max=1.0)
    interval_level: float = opt(0.9, "coverage of the real hold-out's interval: the spread of "
                                     "each metric over subsamples of the hold-out",
                                min=0.5, max=0.999)
    interval_replicates: int = opt(20, "subsamples of the hold-out (and of the kept "
                                       "synthetic set) the intervals are measured on",
                                   min=5, max=1000)


@dataclass
class MixConfig:
    min_per_cluster: int = opt(1, "with embeddings: each real cluster that has acceptable "
                                  "synthetic records keeps at least this many under the cap",
                               min=0)
    quality_weight: float = opt(0.3, "inside a cluster, weight of quality (low formulaic, "
                                     "in-distribution) against spread (1 = quality only)",
                                min=0.0, max=1.0)
    max_share_per_generation: float | None = opt(None, "cap on the output share of each "
                                                       "self-training generation >= 1",
                                                 min=0.0, max=1.0)


# --- issue 11: benchmark decontamination (pipeline/decontaminate.py) -----------------------
@dataclass
class BenchmarkConfig:
    paths: list[str] = opt(None, "evaluation sets to decontaminate against (files, directories, "
                                 "globs, read like any input); any turns the stage on",
                           factory=list)
    text_field: str = opt("text", "field holding a benchmark item's text (else a 'messages' list)")
    text_template: str | None = opt(None, "build an item's text from fields, e.g. "
                                          "\"{question}\\n{answer}\"")
    id_field: str = opt("id", "field holding the item id; absent = its 0-based position")
    ngram: int = opt(8, "word n-gram length of the overlap test: a shared 6-word phrase, even "
                        "with a word beside it that matches by chance, holds no n-gram, and 94% "
                        "of items with 10% of words edited are still found "
                        "(benchmarks/decontamination.py --choose-ngram)", min=4, max=20)
    min_coverage: float = opt(0.5, "a record carries an item when the item's words inside "
                                   "n-grams found in the record cover this share of it...",
                              min=0.05, max=1.0)
    min_span: int = opt(25, "... or when they form a common span of at least this many words",
                        min=8)
    semantic: bool = opt(True, "also catch reworded items: passages closer to an item passage "
                               "than nearly any real passage is (embeds every record)")
    quantile: float = opt(0.999, "the semantic bar: this (robust) quantile of real passages' "
                                 "similarity to their nearest item passage", min=0.9, max=1.0)
    window: int = opt(0, "sentences per passage; 0 = as many as the median item has (1-4)",
                      min=0, max=20)
    max_passage_words: int = opt(128, "longest passage in words (longer sentences are cut)",
                                 min=16)
# --- end issue 11 ---------------------------------------------------------------------------


@dataclass
class GateConfig:
    max_invalid_share: float = opt(0.5, "the gate fails when more than this share of a source "
                                        "is invalid", min=0.0, max=1.0)
    max_rejected_share: float = opt(0.3, "the gate fails when more than this share of the "
                                         "valid synthetic records is rejected as duplicates, "
                                         "copies of real records, formulaic or "
                                         "off-distribution: the generator is degenerating, "
                                         "whatever the kept remainder looks like (in the "
                                         "self-training series of benchmarks/detection.py the "
                                         "share went from 3-13% at the first generation to "
                                         "35-44% by the third)", min=0.0, max=1.0)
    contracts: str = opt("pandas", "engine of the input/output data contracts (Great "
                                   "Expectations expectations): pandas computes them as GX "
                                   "does, in milliseconds; great_expectations validates them "
                                   "as a GX suite (adds 2-4 s to import GX)",
                         choices=("pandas", "great_expectations"))


@dataclass
class EngineConfig:
    name: str = opt("local", "what runs the stages: local (one process, pandas) or ray (Ray "
                             "Data: the same stages on a local Ray instance or a cluster; "
                             "pip install \"synthgate[ray]\"); never changes decisions",
                    choices=("local", "ray"))
    ray_address: str | None = opt(None, "with ray: the cluster to join (ray://HOST:10001 or "
                                        "HOST:6379; RAY_ADDRESS too); unset and no "
                                        "RAY_ADDRESS = start a local Ray instance")
    num_cpus: int = opt(0, "with ray and a local instance: the CPUs it may use (0 = all)",
                        min=0)
    object_store_gib: float = opt(0.0, "with ray and a local instance: object store size in "
                                       "GiB; what does not fit spills to disk (0 = Ray's "
                                       "default, 30% of memory)", min=0.0)
    partition_records: int = opt(100_000, "with ray: records per partition of a "
                                          "whole-dataset step (exact groups, LSH buckets, "
                                          "components): what one worker holds at once", min=1)
    embed_actor_cpus: int = opt(1, "with ray: CPUs (model threads) of each embedding actor "
                                   "where there is no GPU; the pool has one actor per this "
                                   "many CPUs of the cluster, or one per GPU", min=1)


@dataclass
class Config:
    text_field: str = opt("text", "field holding the record text")
    text_template: str | None = opt(None, "build the text from fields, e.g. "
                                          "\"{instruction}\\n\\n{response}\"")
    id_field: str = opt("id", "field holding the record id; absent ids are derived from the text")
    source_field: str | None = opt(None, "with --input: field whose value is real or synthetic")
    max_synthetic_share: float = opt(0.5, "largest share of synthetic records in the output",
                                     min=0.0, max=1.0)
    stages: list[str] = opt(None, "stages to run, a subset of dedup, formulaic, embed, mix",
                            choices=STAGES, factory=lambda: list(DEFAULT_STAGES))
    format: str = opt("parquet", "training-set format: train.parquet, train.jsonl, or hf (a "
                                 "datasets save_to_disk folder train/, needs synthgate[hf])",
                      choices=("parquet", "jsonl", "hf"))
    split: str | None = opt(None, "the split to read from an input holding several (a "
                                  "DatasetDict save_to_disk folder, hf:NAME without @SPLIT)")
    seed: int = opt(0, "seed for every random choice (hold-out split, k-means, selection)",
                    min=0, max=2**32 - 2)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    formulaic: FormulaicConfig = field(default_factory=FormulaicConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)  # issue 11
    gate: GateConfig = field(default_factory=GateConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        # The engine runs the same stages to the same decisions: it is not part of the hash.
        data = self.to_dict()
        data.pop("engine", None)
        canonical = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_overrides(self, **overrides: Any) -> "Config":
        """A copy with dotted keys replaced, e.g. {"embed.model": "x"}; None means keep."""
        data = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            section, _, name = key.rpartition(".")
            target = data[section] if section else data
            target[name] = value
        return from_dict(data, where="options")

    @property
    def stage_set(self) -> frozenset[str]:
        return frozenset(self.stages)


def _is_section(f: dataclasses.Field) -> bool:
    return dataclasses.is_dataclass(f.default_factory) if f.default_factory is not dataclasses.MISSING else False


def validate(obj: Any, prefix: str = "") -> None:
    """The one validation layer for config values, from a file, flags or the Python API.

    Every field is checked against its annotation (str, int, float, bool, list[str], optional),
    every number must be finite (a NaN compares false with every bound and would silently
    switch a check off), bounds and choices come from the field's metadata, then the checks
    that span fields. Whole floats given as ints (`max_synthetic_share = 1`) become floats so
    the config hash does not depend on how a number was written. Raises ConfigError naming
    the key.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{key}.")
            continue
        value = _check_type(value, hints[f.name], key)
        setattr(obj, f.name, value)
        if value is None:
            continue
        meta = f.metadata
        if meta.get("min") is not None and value < meta["min"]:
            raise ConfigError(f"config key '{key}': {value} is below the minimum {meta['min']}",
                              key=key)
        if meta.get("max") is not None and value > meta["max"]:
            raise ConfigError(f"config key '{key}': {value} is above the maximum {meta['max']}",
                              key=key)
        choices = meta.get("choices")
        if choices:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in choices]
            if bad:
                raise ConfigError(f"config key '{key}': {bad[0]!r} is not one of "
                                  f"{', '.join(choices)}", key=key)
    if isinstance(obj, Config):
        _check_across_fields(obj)


_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """`value` checked against the annotation `hint`; returns it (ints as floats for float)."""
    args = typing.get_args(hint)
    if type(None) in args:   # X | None
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    elif value is None:
        raise ConfigError(f"config key '{key}': expected {_describe(hint)}, got nothing",
                          key=key)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected {_describe(hint)}, got "
                              f"{value!r}", key=key)
        return [_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:   # a bool is an int to Python, never to a config file's reader
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        value = int(value) if ok else value
    elif hint is float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) \
            and not isinstance(value, (bool, np.bool_))
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"config key '{key}': expected a finite number, got "
                                  f"{value}", key=key)
    elif hint is str:
        ok = isinstance(value, str)
        if ok and not _utf8_encodable(value):
            raise ConfigError(f"config key '{key}': {value!r} is not valid text (it holds a "
                              f"lone surrogate or undecodable bytes)", key=key)
    else:  # pragma: no cover - a new annotation without a check here
        raise TypeError(f"config key '{key}': no check for the annotation {hint!r}")
    if not ok:
        raise ConfigError(f"config key '{key}': expected {_describe(hint)}, got {value!r}",
                          key=key)
    return value


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        return f"a list of {_KIND[typing.get_args(hint)[0]].split(' ', 1)[1]}s"
    return _KIND[hint]


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_across_fields(config: "Config") -> None:
    if not config.stages:
        raise ConfigError(f"config key 'stages': no stage given (choose from "
                          f"{', '.join(STAGES)})", key="stages")
    dup = next((s for i, s in enumerate(config.stages) if s in config.stages[:i]), None)
    if dup is not None:
        raise ConfigError(f"config key 'stages': {dup!r} is listed twice", key="stages")
    if config.engine.name == "ray" and config.format == "hf":
        # engines/ray streams train/ and decisions/ as Parquet or JSON Lines shards; a
        # save_to_disk folder is written from one table in one process.
        raise ConfigError("config key 'format': hf is not written by engine ray (it writes "
                          "train/ as parquet or jsonl shards); use --format parquet or jsonl, "
                          "or --engine local", key="format")
    f = config.formulaic
    if f.min_n > f.max_n:
        raise ConfigError(f"config key 'formulaic.min_n': {f.min_n} is above formulaic.max_n "
                          f"= {f.max_n}", key="formulaic.min_n")


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Builds a Config from nested dicts, refusing unknown keys (a typo must not be ignored)."""

    def build(cls, values: dict[str, Any], prefix: str):
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: '{prefix.rstrip('.')}' must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{where}: unknown key '{prefix}{key}'")
            f = fields[key]
            if _is_section(f):
                kwargs[key] = build(f.default_factory, value, f"{prefix}{key}.")
            else:
                kwargs[key] = value
        obj = cls.__new__(cls)
        for name, f in fields.items():
            setattr(obj, name, kwargs[name] if name in kwargs else _default_of(f))
        return obj

    try:
        config = build(Config, data, "")
        validate(config)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config key", f"{where}: key", 1),
                          key=exc.key) from None
    return config


def load(path: str | Path) -> Config:
    """Reads a TOML config file; errors name the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, where=str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def default_toml() -> str:
    """The default config as commented TOML (what `synthgate init-config` prints)."""
    lines = ["# synthgate configuration. Every key is optional; command-line flags win.",
             "# Absolute thresholds are learned from the real data at run time; these are the",
             "# quantiles and margins they are learned with.", ""]

    def emit(obj: Any, header: str | None) -> None:
        if header:
            lines.append(f"[{header}]")
        sections = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                sections.append((f.name, value))
                continue
            lines.append(f"# {f.metadata.get('help', '')}")
            if value is None:
                lines.append(f"# {f.name} = ")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
        for name, section in sections:
            emit(section, name)

    emit(Config(), None)
    return "\n".join(lines)
