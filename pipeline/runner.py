"""Runs the stages in order, times them, checks the contracts and writes outputs atomically.

The whole flow, in order:

    ingest -> canonical order -> input contract -> dedup -> formulaic -> embed -> mix
           -> finalize -> input order -> output contract -> report -> write (output.py)

Each stage is `module.run(table, ctx) -> StageOutcome`; which stages run is `config.stages`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from checks import Check
from checks.contracts import input_contract, output_contract

from . import output
from . import report as report_mod
from .config import Config
from .diversity import diversity
from .ingest import InputError, ingest
from .records import DECISION_COLUMNS, REAL, SYNTHETIC, Reason, canonical_order
from .stage import Embedder, Progress, RunContext, StageOutcome

__version__ = "0.1.0"

# Stage name (as in --stages) -> module implementing run(table, ctx) [and finalize].
STAGE_MODULES = {"dedup": "pipeline.dedup", "formulaic": "pipeline.formulaic",
                 "embed": "pipeline.distance", "mix": "pipeline.mix"}


@dataclass
class RunResult:
    """What a run gives back: the training set, the decision log and the QC report."""

    kept: pd.DataFrame
    decisions: pd.DataFrame
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report["gate"]["passed"])


def _kept_count(table: pd.DataFrame) -> int:
    return int(table["kept"].sum())


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


def training_frame(table: pd.DataFrame, originals: pd.DataFrame) -> pd.DataFrame:
    """The kept records: original columns plus `id`, `source`, `text` (ours win a clash)."""
    kept = table["kept"].to_numpy()
    body = originals.loc[kept].reset_index(drop=True) if len(originals.columns) else \
        pd.DataFrame(index=range(int(kept.sum())))
    body = body.drop(columns=[c for c in ("id", "source", "text") if c in body.columns])
    head = table.loc[kept, ["id", "source", "text"]].reset_index(drop=True)
    return pd.concat([head, body], axis=1)


def _run_stage(name: str, fn, table: pd.DataFrame, ctx: RunContext, stages: list[dict]
               ) -> StageOutcome:
    before = _kept_count(table)
    ctx.progress.note(f"synthgate: {name} ({before} records still kept)")
    start = time.perf_counter()
    outcome = fn(table, ctx)
    stages.append({"name": name, "seconds": round(time.perf_counter() - start, 3),
                   "records_in": before, "records_out": _kept_count(table)})
    return outcome


def run(real=None, synthetic=None, *, input=None, config: Config | None = None,
        embedder: Embedder | None = None, out: str | Path | None = None,
        progress: Progress | None = None) -> RunResult:
    """Gates real + synthetic records. Paths (files, directories, globs) or DataFrames.

    Raises InputError (or config.ConfigError) for input that cannot be used, before any
    output is written. With `out`, writes train, decisions and reports atomically.
    """
    config = config or Config()
    if real is None and synthetic is None and input is None:
        raise InputError("no input: give real and synthetic records (or a mixed input)")
    if out is not None:
        output.prepare(out)   # repairs dead runs' leftovers, refuses a bad --out, before work
    ctx = RunContext(config=config, progress=progress or Progress(False), embedder=embedder)
    stages: list[dict] = []
    start = time.perf_counter()
    ingested = ingest(config, real=real, synthetic=synthetic, mixed=input)
    # --- order independence: the stages and the report see the records in an order fixed
    # by their content (records.canonical_order); the outputs are put back in input order.
    order = canonical_order(ingested.table)
    table = ingested.table.iloc[order].reset_index(drop=True)
    # ---
    stages.append({"name": "ingest", "seconds": round(time.perf_counter() - start, 3),
                   "records_in": len(table), "records_out": _kept_count(table)})

    checks: list[Check] = input_contract(table, config.gate.max_invalid_share)
    details: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    modules = []
    for name in (s for s in STAGE_MODULES if s in config.stage_set):
        module = importlib.import_module(STAGE_MODULES[name])
        modules.append((name, module))
        outcome = _run_stage(name, module.run, table, ctx, stages)
        details[name] = outcome.details
        metrics.update(outcome.metrics)
        checks += outcome.checks
    for name, module in modules:
        if hasattr(module, "finalize"):
            outcome = module.finalize(table, ctx)
            details[name].update(outcome.details)
            metrics.update(outcome.metrics)
            checks += outcome.checks

    metrics = {**metrics, **dataset_diversity(table, config, metrics)}
    # --- back to input order for decisions and train (`order` maps canonical -> input row)
    in_input_order = table.set_axis(order).sort_index()
    decisions = decisions_frame(in_input_order)
    train = training_frame(in_input_order, ingested.originals)
    # ---
    checks += output_contract(decisions, train, len(table),
                              config.max_synthetic_share,
                              cap_applied="mix" in config.stage_set)
    config_dict = {**config.to_dict(), "hash": config.hash()}
    report = report_mod.build(table, version=__version__, config=config_dict, stages=stages,
                              metrics=metrics, checks=checks, details=details)
    result = RunResult(kept=train, decisions=decisions, report=report)
    if out is not None:
        output.write_outputs(result, out, config.format, __version__)
    return result


def dataset_diversity(table: pd.DataFrame, config: Config, metrics: dict) -> dict:
    """metrics.real / synthetic_in / synthetic_kept, merged over what stages computed
    (e.g. `vendi` from the embedding stage)."""
    valid = np.array([not r or r[0] != Reason.INVALID.value for r in table["reasons"]])
    real = valid & (table["source"] == REAL).to_numpy()
    synth = valid & (table["source"] == SYNTHETIC).to_numpy()
    kept_synth = synth & table["kept"].to_numpy()
    texts = table["text"].tolist()
    words = np.array([len(t.split()) if isinstance(t, str) else 0 for t in texts])
    out = {}
    for key, mask in (("real", real), ("synthetic_in", synth), ("synthetic_kept", kept_synth)):
        rows = np.flatnonzero(mask)
        div = diversity([texts[i] for i in rows], seed=config.seed, word_counts=words[rows])
        out[key] = {**div, **metrics.get(key, {})}
    return out
