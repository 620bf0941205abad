"""Data contracts as Great Expectations 1.x suites, run in an ephemeral context.

The input contract (ids unique per source, text present) and the output contract (synthetic
share within the cap, ids unique, every rejected record has a reason, train = kept, every
input record decided once) are expectations on pandas frames, so they can be read, extended
and run by anyone who knows GX. Their results become gate `Check`s.

Great Expectations costs about 2 s to import, so it is imported here only, when a contract
runs, never at package import.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .gate import Check

_CONTEXT: dict[str, Any] = {}


def _gx():
    """Imports GX once, quietly: no analytics calls, no progress bars in our output."""
    if "gx" not in _CONTEXT:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        import great_expectations.expectations as gxe
        import logging
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        _CONTEXT["gx"], _CONTEXT["gxe"] = gx, gxe
    return _CONTEXT["gx"], _CONTEXT["gxe"]


def _context():
    """One ephemeral context per process: creating one costs ~0.2 s, and a run (or a test
    session) validates several suites."""
    if "context" not in _CONTEXT:
        gx, _ = _gx()
        context = gx.get_context(mode="ephemeral")
        try:
            context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        except Exception:  # older 1.x spell it differently; bars only cost noise
            pass
        context.data_sources.add_pandas("synthgate")
        _CONTEXT["context"] = context
    return _CONTEXT["context"]


def _validate(name: str, frame: pd.DataFrame, expectations: list[tuple[str, Any, str, Any]]
              ) -> list[Check]:
    """Runs one suite on one whole-dataframe batch; returns a Check per expectation.

    `expectations` holds (check name, expectation, message template, threshold); the
    template is formatted with the observed value.
    """
    gx, _ = _gx()
    context = _context()
    # Names are unique within the process-wide context, so repeated runs do not collide.
    _CONTEXT["runs"] = _CONTEXT.get("runs", 0) + 1
    unique = f"{name}_{_CONTEXT['runs']}"
    asset = context.data_sources.get("synthgate").add_dataframe_asset(unique)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name=unique))
    for _, expectation, _, _ in expectations:
        suite.add_expectation(expectation)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    by_id = {r.expectation_config.id: r for r in batch.validate(suite).results}
    results = [by_id[e.id] for _, e, _, _ in expectations]
    checks = []
    for (check_name, _, template, threshold), result in zip(expectations, results):
        observed = result.result.get("observed_value")
        if observed is None:
            observed = int(result.result.get("unexpected_count") or 0)
        if isinstance(observed, (np.floating, np.integer)):
            observed = observed.item()
        if isinstance(observed, float):
            observed = round(observed, 6)
        checks.append(Check(check_name, bool(result.success), observed, threshold,
                            template.format(observed=observed, threshold=threshold)))
    return checks


def input_contract(table: pd.DataFrame, max_invalid_share: float) -> list[Check]:
    """Ids unique per source; in each source, text present for all but max_invalid_share."""
    _, gxe = _gx()
    frame = pd.DataFrame({"source": table["source"].astype(str),
                          "id": table["id"].astype(str)})
    usable = np.array([not r or r[0] != "invalid" for r in table["reasons"]], dtype=bool)
    expectations = [("input.ids_unique_per_source",
                     gxe.ExpectCompoundColumnsToBeUnique(column_list=["source", "id"]),
                     "{observed} records share a (source, id) with another; threshold {threshold}",
                     0)]
    checks = _validate("input", frame, expectations)
    for source in ("real", "synthetic"):
        in_source = (frame["source"] == source).to_numpy()
        if not in_source.any():
            continue
        # Null where the record has no usable text; `mostly` is the share that must have it.
        sub = pd.DataFrame({"text": pd.Series(np.where(usable[in_source], "ok", None),
                                              dtype=object)})
        share_usable = float(usable[in_source].mean())
        checks += _validate(f"input_{source}", sub, [(
            f"input.text_present.{source}",
            gxe.ExpectColumnValuesToNotBeNull(column="text",
                                              mostly=max(0.0, 1.0 - max_invalid_share)),
            f"{source}: {{observed}} records without usable text ({share_usable:.1%} usable; "
            f"at most {max_invalid_share:.0%} of a source may be invalid)",
            max_invalid_share)])
    return checks


def output_contract(decisions: pd.DataFrame, train: pd.DataFrame, n_inputs: int,
                    max_synthetic_share: float | None, cap_applied: bool = True
                    ) -> list[Check]:
    """The promises of the output files, checked on the files' own frames."""
    _, gxe = _gx()
    train_keys = set(zip(train["source"].astype(str), train["id"].astype(str)))
    frame = pd.DataFrame({
        "source": decisions["source"].astype(str),
        "id": decisions["id"].astype(str),
        "kept": decisions["kept"].astype(bool),
        "in_train": [(s, i) in train_keys for s, i in
                     zip(decisions["source"].astype(str), decisions["id"].astype(str))],
        "reason_consistent": [bool(k) != bool(len(r)) for k, r in
                              zip(decisions["kept"], decisions["reasons"])],
    })
    expectations = [
        ("output.every_record_decided_once",
         gxe.ExpectTableRowCountToEqual(value=n_inputs),
         "decisions hold {observed} rows for " + f"{n_inputs} input records", n_inputs),
        ("output.ids_unique", gxe.ExpectCompoundColumnsToBeUnique(column_list=["source", "id"]),
         "{observed} decision rows share a (source, id); threshold {threshold}", 0),
        ("output.rejected_have_reason",
         gxe.ExpectColumnValuesToBeInSet(column="reason_consistent", value_set=[True]),
         "{observed} records are rejected without a reason or kept with one", 0),
        ("output.train_equals_kept",
         gxe.ExpectColumnPairValuesToBeEqual(column_A="kept", column_B="in_train"),
         "{observed} records differ between the kept decisions and the training set", 0),
    ]
    checks = _validate("output", frame, expectations)
    if max_synthetic_share is not None:
        share_frame = pd.DataFrame({"is_synthetic": (train["source"] == "synthetic")
                                    .astype(float).to_numpy()})
        if len(share_frame) == 0:
            share_frame = pd.DataFrame({"is_synthetic": [0.0]})  # an empty output has share 0
        checks += _validate("output_share", share_frame, [(
            "output.synthetic_share",
            # The cap is met exactly by integer counting in the mix stage; the tolerance
            # only absorbs the float of the mean.
            gxe.ExpectColumnMeanToBeBetween(column="is_synthetic", min_value=0.0,
                                            max_value=max_synthetic_share + 1e-12),
            "synthetic share of the output {observed} (cap {threshold})"
            + ("" if cap_applied else "; the mix stage did not run, so the cap was not "
               "applied: add mix to --stages or raise --max-synthetic-share"),
            max_synthetic_share)])
    return checks
