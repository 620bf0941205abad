"""Data contracts: the input and output promises as Great Expectations 1.x expectations,
evaluated by one of two engines.

The input contract (ids unique per source, text present) and the output contract (synthetic
share within the cap, ids unique, every rejected record has a reason, train = kept, every
input record decided once) are declared once, as `Expectation`s named by their GX class and
keyword arguments, on pandas frames. Their results become gate `Check`s.

Two engines evaluate the same declarations:

* `pandas` (the default): each expectation computed with pandas, the way GX computes it
  (unexpected counts, `mostly`, observed values), in milliseconds;
* `great_expectations` (`[gate] contracts = "great_expectations"`): the declarations become a
  real GX suite validated in an ephemeral context.

Why two: importing Great Expectations costs 2-4 s (it pulls scipy.stats, altair and the data
context machinery), which alone is more than the 1.5 s a 10-record run may take in all, and
no choice of expectations makes the import cheaper. The tests run both engines on the same
frames, passing and failing, and require the same checks, so the default stays faithful to
the suite a GX user can run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .gate import Check

ENGINES = ("pandas", "great_expectations")

_CONTEXT: dict[str, Any] = {}


@dataclass(frozen=True)
class Expectation:
    """One expectation: the gate check it becomes, the GX class and its arguments, the
    check's message (formatted with the observed value) and its threshold."""

    check: str
    kind: str                      # a class of great_expectations.expectations
    kwargs: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    threshold: Any = None


# ----------------------------------------------------------------------------- engines

def _null(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


def _evaluate_pandas(frame: pd.DataFrame, e: Expectation) -> tuple[bool, Any]:
    """(success, observed) as GX reports them: the observed value for table and aggregate
    expectations, the unexpected count for column-map ones (nulls are not unexpected unless
    the expectation is about nulls; `mostly` is the share of non-null values that must pass)."""
    kw = e.kwargs
    if e.kind == "ExpectTableRowCountToEqual":
        return len(frame) == kw["value"], len(frame)
    if e.kind == "ExpectColumnMeanToBeBetween":
        values = frame[kw["column"]].dropna().astype(float)
        if not len(values):
            return False, None
        mean = float(values.mean())
        low, high = kw.get("min_value"), kw.get("max_value")
        return (low is None or mean >= low) and (high is None or mean <= high), mean
    if e.kind == "ExpectColumnValuesToNotBeNull":
        bad = _null(frame[kw["column"]])
        considered, unexpected = len(bad), int(bad.sum())
    elif e.kind == "ExpectColumnValuesToBeInSet":
        column = frame[kw["column"]]
        present = ~_null(column)
        bad = present & ~column.isin(list(kw["value_set"])).to_numpy()
        considered, unexpected = int(present.sum()), int(bad.sum())
    elif e.kind == "ExpectCompoundColumnsToBeUnique":
        cols = frame[list(kw["column_list"])]
        # GX ignores a row only when all its columns are null; every row of a repeated
        # combination is unexpected, the first one too.
        present = ~cols.isna().all(axis=1).to_numpy()
        bad = present & cols.duplicated(keep=False).to_numpy()
        considered, unexpected = int(present.sum()), int(bad.sum())
    elif e.kind == "ExpectColumnPairValuesToBeEqual":
        a, b = frame[kw["column_A"]], frame[kw["column_B"]]
        # GX's default ignore_row_if="both_values_are_missing".
        present = ~(_null(a) & _null(b))
        bad = present & (a.to_numpy() != b.to_numpy())
        considered, unexpected = int(present.sum()), int(bad.sum())
    else:
        raise ValueError(f"contract expectation {e.kind} has no pandas evaluation")
    mostly = kw.get("mostly", 1.0)
    success = considered == 0 or (considered - unexpected) / considered >= mostly
    return bool(success), unexpected


def gx_modules():
    """Imports GX once, quietly (no analytics calls, no progress bars in our output).

    Only here, when a GX suite runs. Importing it in a background thread while the input is
    read was tried and measured: the import is Python byte code that holds the interpreter
    lock, so it slowed ingest by about what it saved (no gain at 50,000 records)."""
    if "gx" not in _CONTEXT:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import logging

        import great_expectations as gx
        import great_expectations.expectations as gxe
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        _CONTEXT["gx"], _CONTEXT["gxe"] = gx, gxe
    return _CONTEXT["gx"], _CONTEXT["gxe"]


def _context():
    """One ephemeral context per process: creating one costs ~0.2 s, and a run (or a test
    session) validates several suites."""
    if "context" not in _CONTEXT:
        gx, _ = gx_modules()
        context = gx.get_context(mode="ephemeral")
        try:
            context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        except Exception:  # older 1.x spell it differently; bars only cost noise
            pass
        context.data_sources.add_pandas("synthgate")
        _CONTEXT["context"] = context
    return _CONTEXT["context"]


def _evaluate_gx(name: str, frame: pd.DataFrame, expectations: list[Expectation]
                 ) -> list[tuple[bool, Any]]:
    """The expectations as one GX suite on one whole-dataframe batch."""
    gx, gxe = gx_modules()
    context = _context()
    # Names are unique within the process-wide context, so repeated runs do not collide.
    _CONTEXT["runs"] = _CONTEXT.get("runs", 0) + 1
    unique = f"{name}_{_CONTEXT['runs']}"
    asset = context.data_sources.get("synthgate").add_dataframe_asset(unique)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name=unique))
    built = [getattr(gxe, e.kind)(**e.kwargs) for e in expectations]
    for expectation in built:
        suite.add_expectation(expectation)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    by_id = {r.expectation_config.id: r for r in batch.validate(suite).results}
    out = []
    for expectation in built:
        result = by_id[expectation.id]
        observed = result.result.get("observed_value")
        if observed is None:
            observed = int(result.result.get("unexpected_count") or 0)
        out.append((bool(result.success), observed))
    return out


def validate(name: str, frame: pd.DataFrame, expectations: list[Expectation],
             engine: str = "pandas") -> list[Check]:
    """Runs one suite on one frame with the chosen engine; a Check per expectation."""
    if engine == "great_expectations":
        results = _evaluate_gx(name, frame, expectations)
    elif engine == "pandas":
        results = [_evaluate_pandas(frame, e) for e in expectations]
    else:
        raise ValueError(f"unknown contracts engine {engine!r}; one of {', '.join(ENGINES)}")
    checks = []
    for e, (success, observed) in zip(expectations, results):
        if isinstance(observed, (np.floating, np.integer)):
            observed = observed.item()
        if isinstance(observed, float):
            observed = round(observed, 6)
        checks.append(Check(e.check, success, observed, e.threshold,
                            e.template.format(observed=observed, threshold=e.threshold)))
    return checks


# ----------------------------------------------------------------------------- contracts

def input_suites(table: pd.DataFrame, max_invalid_share: float
                 ) -> list[tuple[str, pd.DataFrame, list[Expectation]]]:
    """The input contract as (suite name, frame, expectations)."""
    frame = pd.DataFrame({"source": table["source"].astype(str),
                          "id": table["id"].astype(str)})
    usable = np.array([not r or r[0] != "invalid" for r in table["reasons"]], dtype=bool)
    suites = [("input", frame, [Expectation(
        "input.ids_unique_per_source", "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["source", "id"]},
        "{observed} records share a (source, id) with another; threshold {threshold}", 0)])]
    for source in ("real", "synthetic"):
        in_source = (frame["source"] == source).to_numpy()
        if not in_source.any():
            continue
        # Null where the record has no usable text; `mostly` is the share that must have it.
        sub = pd.DataFrame({"text": pd.Series(np.where(usable[in_source], "ok", None),
                                              dtype=object)})
        share_usable = float(usable[in_source].mean())
        suites.append((f"input_{source}", sub, [Expectation(
            f"input.text_present.{source}", "ExpectColumnValuesToNotBeNull",
            {"column": "text", "mostly": max(0.0, 1.0 - max_invalid_share)},
            f"{source}: {{observed}} records without usable text ({share_usable:.1%} usable; "
            f"at most {max_invalid_share:.0%} of a source may be invalid)",
            max_invalid_share)]))
    return suites


def output_suites(decisions: pd.DataFrame, train: pd.DataFrame, n_inputs: int,
                  max_synthetic_share: float | None, cap_applied: bool = True
                  ) -> list[tuple[str, pd.DataFrame, list[Expectation]]]:
    """The output contract as (suite name, frame, expectations), on the files' own frames."""
    source = decisions["source"].astype(str)
    ids = decisions["id"].astype(str)
    train_keys = pd.MultiIndex.from_arrays([train["source"].astype(str),
                                            train["id"].astype(str)])
    frame = pd.DataFrame({
        "source": source, "id": ids,
        "kept": decisions["kept"].astype(bool),
        "in_train": pd.MultiIndex.from_arrays([source, ids]).isin(train_keys),
        "reason_consistent": decisions["kept"].astype(bool).to_numpy()
        != (decisions["reasons"].map(len).to_numpy() > 0),
    })
    suites = [("output", frame, [
        Expectation("output.every_record_decided_once", "ExpectTableRowCountToEqual",
                    {"value": n_inputs},
                    "decisions hold {observed} rows for " + f"{n_inputs} input records",
                    n_inputs),
        Expectation("output.ids_unique", "ExpectCompoundColumnsToBeUnique",
                    {"column_list": ["source", "id"]},
                    "{observed} decision rows share a (source, id); threshold {threshold}", 0),
        Expectation("output.rejected_have_reason", "ExpectColumnValuesToBeInSet",
                    {"column": "reason_consistent", "value_set": [True]},
                    "{observed} records are rejected without a reason or kept with one", 0),
        Expectation("output.train_equals_kept", "ExpectColumnPairValuesToBeEqual",
                    {"column_A": "kept", "column_B": "in_train"},
                    "{observed} records differ between the kept decisions and the training "
                    "set", 0),
    ])]
    if max_synthetic_share is not None:
        share_frame = pd.DataFrame({"is_synthetic": (train["source"] == "synthetic")
                                    .astype(float).to_numpy()})
        if len(share_frame) == 0:
            share_frame = pd.DataFrame({"is_synthetic": [0.0]})  # an empty output has share 0
        suites.append(("output_share", share_frame, [Expectation(
            "output.synthetic_share", "ExpectColumnMeanToBeBetween",
            # The cap is met exactly by integer counting in the mix stage; the tolerance
            # only absorbs the float of the mean.
            {"column": "is_synthetic", "min_value": 0.0,
             "max_value": max_synthetic_share + 1e-12},
            "synthetic share of the output {observed} (cap {threshold})"
            + ("" if cap_applied else "; the mix stage did not run, so the cap was not "
               "applied: add mix to --stages or raise --max-synthetic-share"),
            max_synthetic_share)]))
    return suites


def input_contract(table: pd.DataFrame, max_invalid_share: float, engine: str = "pandas"
                   ) -> list[Check]:
    """Ids unique per source; in each source, text present for all but max_invalid_share."""
    return [c for name, frame, exps in input_suites(table, max_invalid_share)
            for c in validate(name, frame, exps, engine)]


def output_contract(decisions: pd.DataFrame, train: pd.DataFrame, n_inputs: int,
                    max_synthetic_share: float | None, cap_applied: bool = True,
                    engine: str = "pandas") -> list[Check]:
    """The promises of the output files, checked on the files' own frames."""
    return [c for name, frame, exps in output_suites(decisions, train, n_inputs,
                                                     max_synthetic_share, cap_applied)
            for c in validate(name, frame, exps, engine)]
