"""Runs the pipeline: a straight loop over the stage list, timed and counted.

    ingest -> content order -> input contract -> [decontaminate] -> dedup -> formulaic
           -> embed -> mix -> measure -> input order -> output contract -> report
           -> write (output.py: temp folder, manifest, atomic swap)

`build_stages(config)` is the list: the stages `config.stages` names, in pipeline order, then
the measurement of what was kept. `run` hands the list to an engine (engines/): the local one
(`engines.local.run_stages`, the loop that times every `setup` and `run`, counts the records
each stage rejected per reason and merges what the stages report) or, with `[engine] name =
"ray"`, engines/ray, which runs the same stage functions on Ray Data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import output
from .config import Config
from .decontaminate import Decontaminate
from .dedup import DedupStage
from .distance import EmbedStage
from .formulaic import FormulaicStage
from .engines import local as local_engine
from .engines.local import merge_metrics, run_stages  # noqa: F401 - the loop, re-exported
from .ingest import InputError
from .measure import MeasureStage
from .mix import MixStage
from .records import DECISION_COLUMNS, take_rows
from .stage import Embedder, Progress, Stage

__version__ = "0.1.0"

# Every stage --stages can name, in pipeline order.
STAGE_CLASSES = (DedupStage, FormulaicStage, EmbedStage, MixStage)


def build_stages(config: Config, benchmark=None) -> list[Stage]:
    """The pipeline for a config: decontamination first when evaluation sets are given
    (`benchmark`, or `config.benchmark.paths`), the chosen stages in pipeline order, then the
    measurement of the kept set (always: it is what the gate reads)."""
    chosen = config.stage_set
    stages: list[Stage] = []
    if benchmark is not None or config.benchmark.paths:
        stages.append(Decontaminate(benchmarks=benchmark))
    stages += [cls() for cls in STAGE_CLASSES if cls.name in chosen]
    return stages + [MeasureStage()]


def describe(config: Config | None = None) -> list[dict[str, Any]]:
    """Each stage of the pipeline in order: what it reads, writes and which reasons it gives
    (decontamination listed first: it runs whenever evaluation sets are given)."""
    return [stage.describe() for stage in build_stages(config or Config(), benchmark=[])]


@dataclass
class RunResult:
    """What a run gives back: the training set, the decision log and the QC report."""

    kept: pd.DataFrame
    decisions: pd.DataFrame
    report: dict[str, Any]
    # The `datasets` features the inputs declared for the kept table's original columns
    # (ClassLabel names...), as dicts: `datasets.Features.from_dict(result.features)`.
    features: dict[str, dict] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.report["gate"]["passed"])


def decisions_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The decision log: one row per input record, the contract's columns first."""
    out = pd.DataFrame(index=table.index)
    for col in DECISION_COLUMNS:
        if col in table:
            out[col] = table[col]
        elif col in ("formulaic", "real_nn_sim", "distance_pctl", "dup_similarity"):
            out[col] = np.full(len(table), np.nan)
        elif col == "cluster":
            out[col] = pd.array([pd.NA] * len(table), dtype="Int64")
        else:
            out[col] = pd.Series([None] * len(table), dtype=object, index=table.index)
    out["kept"] = out["kept"].astype(bool)
    return out.reset_index(drop=True)


def training_frame(table: pd.DataFrame, originals: pd.DataFrame,
                   back: np.ndarray | None = None) -> pd.DataFrame:
    """The kept records in input order: original columns plus `id`, `source`, `text` (ours
    win a clash). `back[r]` is the table row of input record r (the stages' content order;
    None: the same order)."""
    back = np.arange(len(table)) if back is None else back
    kept = table["kept"].to_numpy()[back]          # per input record
    # Columns before rows: copying every text only to drop most of them cost a quarter of a
    # second at 50,000 records, and gigabytes at a million.
    others = originals.drop(columns=[c for c in ("id", "source", "text")
                                     if c in originals.columns])
    train = take_rows(table[["id", "source", "text"]], back[kept])
    # Column by column: a concat of two frames copied the texts once more.
    for col in others.columns:
        train[col] = others[col].loc[kept].reset_index(drop=True)
    return train


def input_names(**specs: Any) -> dict[str, list[str]]:
    """What each source was read from, as the dataset card lists it: paths and URLs (without
    credentials), hf: names, or the kind of object the API was given."""
    from .sources import public_name

    names: dict[str, list[str]] = {}
    for role, spec in specs.items():
        if spec is None:
            continue
        items = spec if isinstance(spec, (list, tuple)) else [spec]
        names[role] = [public_name(str(i)) if isinstance(i, (str, Path))
                       else f"<{type(i).__name__}>" for i in items]
    return names


def run(real=None, synthetic=None, *, input=None, config: Config | None = None,
        embedder: Embedder | None = None, out: str | Path | None = None,
        progress: Progress | None = None, benchmark=None) -> RunResult:
    """Gates real + synthetic records. Each of real, synthetic and input is a spec or a list:
    paths (files, directories, globs), fsspec URLs, `hf:OWNER/NAME[:CONFIG][@SPLIT]`,
    `datasets` save_to_disk folders, or objects (pandas or polars DataFrames, pyarrow Tables,
    `datasets` Datasets).

    `benchmark` (paths, a DataFrame, or {name: DataFrame or paths}) or
    `config.benchmark.paths` turns on decontamination against those evaluation sets.

    Raises InputError (or config.ConfigError) for input that cannot be used, before any
    output is written. With `out`, writes train, decisions and reports atomically.
    """
    config = config or Config()
    if real is None and synthetic is None and input is None:
        raise InputError("no input: give real and synthetic records (or a mixed input)")
    if out is not None:
        output.prepare(out)   # repairs dead runs' leftovers, refuses a bad --out, before work
        if config.format == "hf":   # a missing extra is said now, not after the work
            from .sources import need
            need("datasets", "--format hf")
    if config.engine.name == "ray":
        # Imported only here: the local engine never imports Ray.
        from .engines import ray as ray_engine
        return ray_engine.run(real=real, synthetic=synthetic, input=input, config=config,
                              embedder=embedder, out=out, progress=progress,
                              benchmark=benchmark)
    return local_engine.run(real=real, synthetic=synthetic, input=input, config=config,
                            embedder=embedder, out=out, progress=progress,
                            benchmark=benchmark)
