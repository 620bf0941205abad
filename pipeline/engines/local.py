"""The local engine: one process, the records as one pandas table, the stages in a loop.

`run_stages` is the loop (each stage set up, run and timed, its rejections counted); `run` is
a whole local run: ingest, the content order, the input contract, the loop, then `finish`
(input order, the output contract, the report, the atomic write), which the Ray engine uses
too for the stages it still runs on one node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import output
from .. import report as report_mod
from .. import report_html
from ..checks import Check
from ..checks.contracts import input_contract, output_contract
from ..config import Config
from ..ingest import ingest
from ..records import canonical_order, reason_counts, take_rows
from ..stage import Embedder, Progress, RunContext, Stage


def merge_metrics(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Adds a stage's metrics: a block two stages both fill (e.g. `tails`, whose input
    coverage the embed stage measures and whose kept coverage the last step does) is merged
    key by key."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        else:
            into[key] = value


def run_stages(stages: list[Stage], table: pd.DataFrame, ctx: RunContext
               ) -> tuple[list[dict], dict, dict, list[Check]]:
    """The loop: each stage set up, run and timed; the records it rejected counted per
    reason. Returns (stage rows for report.json, details, metrics, checks)."""
    rows: list[dict] = []
    details: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    checks: list[Check] = []
    for stage in stages:
        before_kept = int(table["kept"].sum())
        before = reason_counts(table)
        ctx.progress.note(f"synthgate: {stage.name} ({before_kept} records still kept)")
        start = time.perf_counter()
        stage.setup(ctx)
        set_up = time.perf_counter()
        outcome = stage.run(table, ctx)
        end = time.perf_counter()
        after = reason_counts(table)
        rows.append({"name": stage.name, "seconds": round(end - start, 3),
                     "setup_seconds": round(set_up - start, 3),
                     "records_in": before_kept, "records_out": int(table["kept"].sum()),
                     "rejected": {r: n - before.get(r, 0) for r, n in after.items()
                                  if n > before.get(r, 0)}})
        if outcome.details:
            details[stage.name] = outcome.details
        merge_metrics(metrics, outcome.metrics)
        checks += outcome.checks
    return rows, details, metrics, checks


def run(real=None, synthetic=None, *, input=None, config: Config,
        embedder: Embedder | None = None, out: str | Path | None = None,
        progress: Progress | None = None, benchmark=None):
    """A local run (see `synthgate.run`, which checks the arguments first)."""
    from ..runner import build_stages, input_names
    from . import return_freed_memory

    ctx = RunContext(config=config, progress=progress or Progress(False), embedder=embedder)
    start = time.perf_counter()
    ingested = ingest(config, real=real, synthetic=synthetic, mixed=input)
    # Order independence: the stages and the report see the records in an order fixed by
    # their content (records.canonical_order); the outputs go back to input order.
    order = canonical_order(ingested.table)
    table = take_rows(ingested.table, order)
    # The input-order copies go: the table's texts are in `table` now, and the outputs take
    # the input's other columns only (ours win a clash), so its id/source/text are not kept.
    ingested.table = None
    ingested.originals = ingested.originals.drop(
        columns=[c for c in ("id", "source", "text") if c in ingested.originals.columns])
    stage_rows = [{"name": "ingest", "seconds": round(time.perf_counter() - start, 3),
                   "records_in": len(table), "records_out": int(table["kept"].sum()),
                   "rejected": reason_counts(table)}]
    checks: list[Check] = input_contract(table, config.gate.max_invalid_share,
                                         config.gate.contracts)

    rows, details, metrics, stage_checks = run_stages(build_stages(config, benchmark), table,
                                                      ctx)
    stage_rows += rows
    # What the stages freed goes back to the system before the outputs copy the kept texts:
    # glibc keeps freed heap pages (0.6 GB after dedup at a million records) unless asked.
    return_freed_memory()
    checks += stage_checks
    return finish(table, order, ingested.originals, stage_rows, checks, details, metrics,
                  ctx, out, features=ingested.features,
                  inputs=input_names(real=real, synthetic=synthetic, input=input))


def finish(table: pd.DataFrame, order: np.ndarray, originals: pd.DataFrame,
           stage_rows: list[dict], checks: list[Check], details: dict, metrics: dict,
           ctx: RunContext, out: str | Path | None, features: dict | None = None,
           inputs: dict[str, list[str]] | None = None):
    """After the stages: the records back in input order (`order`: table row -> input row),
    the decision log and the training set, the output contract, the report, and with `out`
    the atomic write (`features`: the input's `datasets` features; `inputs`: the names the
    dataset card lists)."""
    from ..runner import RunResult, __version__, decisions_frame, training_frame

    config = ctx.config
    # Back to input order, the decision columns and the kept rows only: the whole table
    # reordered would copy every text once more.
    back = np.argsort(order)
    decisions = decisions_frame(table).iloc[back].reset_index(drop=True)
    train = training_frame(table, originals, back)
    checks += output_contract(decisions, train, len(table),
                              config.max_synthetic_share,
                              cap_applied="mix" in config.stage_set,
                              engine=config.gate.contracts)
    config_dict = {**config.to_dict(), "hash": config.hash()}
    report = report_mod.build(table, version=__version__, config=config_dict,
                              stages=stage_rows, metrics=metrics, checks=checks,
                              details=details)
    result = RunResult(kept=train, decisions=decisions, report=report,
                       features=features or {})
    if out is not None:
        # The page people read needs the records and the embeddings, not only the report.
        emb = ctx.embeddings
        html = report_html.to_html(table, report, emb.vectors if emb else None,
                                   emb.embedded if emb else None,
                                   emb.clusters if emb else None)
        output.write_outputs(result, out, config.format, __version__, html=html,
                             features=features or {}, inputs=inputs)
    return result
