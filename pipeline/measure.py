"""The last step: measure what the run keeps, and gate it for collapse.

Runs after every stage, on the final decisions. Always: the model-free diversity of the real
records, the synthetic input and the kept synthetic records (compression ratio, distinct-n,
mean words). With the embed stage's `Embeddings`: the kept synthetic set's fidelity, rare
coverage, Vendi and distinct-2 beside the real hold-out at the same sample size, the collapse
checks of the gate (DESIGN.md section 6), and the rare clusters the kept set reaches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .checks import Check
from .diversity import diversity
from .fidelity import METRIC_SAMPLE, SetMeter, sample_rows, vendi
from .records import REAL, SYNTHETIC, ColumnRows, Reason, is_real, is_synthetic
from .stage import BaseStage, Embeddings, RunContext, StageOutcome

# Vendi of the three sets is compared at a common size, of sets at least this large.
MIN_GATED_SAMPLE = 50
# The collapse checks compare subsamples of this many records at most (half the hold-out at
# most, so its subsamples differ), and gate nothing on fewer.
INTERVAL_SAMPLE = 2000
MIN_INTERVAL_SAMPLE = 20
# The collapse checks: name, what it measures, for the message.
COLLAPSE_CHECKS = (("embed.recall", "recall"), ("embed.coverage", "coverage"),
                   ("embed.rare_coverage", "rare-cluster coverage"),
                   ("embed.vendi", "Vendi score"), ("embed.distinct_2", "distinct-2"))


class MeasureStage(BaseStage):
    """Measures the real, synthetic-input and kept-synthetic sets (diversity; with
    embeddings fidelity, rare coverage and Vendi beside the real hold-out) and gates the kept
    synthetic set for collapse."""

    name = "measure"
    reads = ("text", "source", "kept", "reasons", "cluster")

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        metrics = dataset_diversity(table, ctx.config.seed)
        checks = rejected_share_check(table, ctx.config.gate.max_rejected_share)
        if ctx.embeddings is None or ctx.embeddings.meter is None:
            return StageOutcome(metrics=metrics, checks=checks)
        outcome = measure_kept(table, ctx.embeddings, ctx)
        outcome.checks = checks + outcome.checks
        for key in ("real", "synthetic_in", "synthetic_kept"):
            metrics[key].update(outcome.metrics.pop(key, {}))
        outcome.metrics.update(metrics)
        return outcome


# Rejections that say the generator's output is unusable: repeats, copies, templates, junk.
# (Invalid records have their own check; the share cap and benchmark items say nothing of it.)
QUALITY_REASONS = (Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE, Reason.COPIES_REAL,
                   Reason.FORMULAIC, Reason.OFF_DISTRIBUTION)


def quality_rejections(table: pd.DataFrame) -> tuple[int, int, dict[str, int]]:
    """(valid synthetic records, those rejected for quality, {quality reason: records of
    them carrying it}): what synthetic.rejected_share reads, and report.html says."""
    synth = is_synthetic(table)
    reasons = table["reasons"].tolist()
    valid = synth & np.array([Reason.INVALID.value not in r for r in reasons], dtype=bool)
    wanted = {r.value for r in QUALITY_REASONS}
    rejected = valid & np.array([bool(wanted.intersection(r)) for r in reasons], dtype=bool)
    counts = {r.value: int(sum(r.value in reasons[i] for i in np.flatnonzero(rejected)))
              for r in QUALITY_REASONS}
    return int(valid.sum()), int(rejected.sum()), counts


def rejected_share_check(table: pd.DataFrame, limit: float) -> list[Check]:
    """synthetic.rejected_share: the share of valid synthetic records rejected for quality.

    A generator trained on its own output degenerates into repeats, templates and junk, which
    the stages remove; what they keep can then look healthy beside the real hold-out while
    the generator has collapsed. The share removed is the sign the filtering would hide."""
    return rejected_share_from(*quality_rejections(table), limit)


def rejected_share_from(valid: int, rejected: int, counts: dict[str, int], limit: float
                        ) -> list[Check]:
    """The check from its counts: valid synthetic records, those rejected for quality, and
    how many carry each quality reason (engines/ray adds these up over its blocks)."""
    if not valid:
        return []
    share = float(rejected / valid)
    why = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
    passed = share <= limit
    return [Check("synthetic.rejected_share", passed, round(share, 4), limit,
                  f"{rejected} of {valid} valid synthetic records rejected "
                  f"({share:.1%} {'<=' if passed else '>'} {limit:.0%}): {why}"
                  + ("" if passed else "; a generator this degenerate is collapsing, whatever "
                                       "the records kept look like"))]


def dataset_diversity(table: pd.DataFrame, seed: int) -> dict[str, dict]:
    """metrics.real / synthetic_in / synthetic_kept: the model-free diversity of each set
    (records that are not invalid)."""
    valid = np.array([not r or r[0] != Reason.INVALID.value for r in table["reasons"]])
    real = valid & (table["source"] == REAL).to_numpy()
    synth = valid & (table["source"] == SYNTHETIC).to_numpy()
    kept_synth = synth & table["kept"].to_numpy()
    # Valid records hold text; the sets are measured on samples, whose texts alone are read.
    out = {}
    for key, mask in (("real", real), ("synthetic_in", synth), ("synthetic_kept", kept_synth)):
        out[key] = diversity(ColumnRows(table["text"], np.flatnonzero(mask)), seed=seed)
    return out


def measure_kept(table: pd.DataFrame, emb: Embeddings, ctx: RunContext) -> StageOutcome:
    """The kept synthetic set (after the share cap) beside the real hold-out, its collapse
    checks, the Vendi score of the three sets at one size, and the rare-cluster table."""
    cfg = ctx.config.embed
    synth = is_synthetic(table) & emb.embedded
    kept_rows = np.flatnonzero(synth & table["kept"].to_numpy())
    metrics: dict[str, Any] = {}
    checks: list[Check] = []
    details: dict[str, Any] = {}
    if len(kept_rows):
        measured, base, size = emb.meter.measure(kept_rows)
        metrics["fidelity_kept"] = SetMeter.fidelity_report(measured, base, size)
        metrics["tails"] = {"rare_coverage_kept": round(measured["rare_coverage"], 4)}
        sub = min(len(kept_rows), len(emb.holdout_rows) // 2, INTERVAL_SAMPLE)
        if sub >= MIN_INTERVAL_SAMPLE:
            real = emb.meter.holdout_subsamples(sub, cfg.interval_replicates)
            kept = emb.meter.subsamples(kept_rows, sub, cfg.interval_replicates,
                                        ctx.config.seed + 1)
            checks, intervals = collapse_checks(cfg, kept, real, sub,
                                                len(emb.meter.holdout_rows))
            metrics["fidelity_kept"]["real_holdout_interval"] = {
                k: v for k, v in intervals.items() if k in ("recall", "coverage")}
            metrics["fidelity_kept"]["interval_sample_size"] = sub
            metrics["tails"]["rare_coverage_interval"] = intervals["rare_coverage"]
        else:
            details["collapse_checks"] = (f"not gated: subsamples of {sub} records (half the "
                                          f"real hold-out at most) would be fewer than "
                                          f"{MIN_INTERVAL_SAMPLE}")
    elif synth.any():
        metrics["tails"] = {"rare_coverage_kept": 0.0}   # synthetic records came, none kept

    # Vendi of the three sets at one common size, so the three rows of the table compare.
    sets = {"real": np.flatnonzero(is_real(table) & emb.embedded),
            "synthetic_in": np.flatnonzero(synth), "synthetic_kept": kept_rows}
    sized = [len(r) for r in sets.values() if len(r) >= MIN_GATED_SAMPLE]
    common = min(sized + [METRIC_SAMPLE])
    for name, rows in sets.items():
        if len(rows) >= 2:
            sample = sample_rows(rows, common, ctx.config.seed)
            metrics[name] = {"vendi": round(vendi(emb.vectors[sample]), 4)}
    details["vendi_sample_size"] = common
    details["rare_clusters"] = rare_cluster_table(table, emb, kept_rows, synth)
    return StageOutcome(details=details, metrics=metrics, checks=checks)


def collapse_checks(cfg, kept: list[dict], real: list[dict], size: int, holdout: int
                    ) -> tuple[list[Check], dict[str, list[float]]]:
    """Each collapse sign of the kept synthetic set against the real hold-out, both measured
    on subsamples of `size`: the check fails when the kept set's median falls below the low
    end of the hold-out's interval by more than `collapse_margin` of it. A small or noisy
    hold-out widens the interval, so noise alone does not fail the gate; a set that has lost
    the real data's tails falls below it whatever the noise. Returns (checks, the hold-out's
    interval per metric).

    Subsamples of `size` out of a hold-out of `holdout` records overlap, so they vary less
    than independent real samples of that size would: by the finite-population factor
    sqrt((holdout - size) / (holdout - 1)). The interval is widened about its median by the
    inverse, so that it stands for what an independent real sample of `size` would score."""
    tail = (1.0 - cfg.interval_level) / 2
    widen = math.sqrt((holdout - 1) / max(holdout - size, 1))
    checks, intervals = [], {}
    for name, what in COLLAPSE_CHECKS:
        key = name.split(".", 1)[1]
        ours = np.array([m[key] for m in kept if key in m], dtype=float)
        theirs = np.array([m[key] for m in real if key in m], dtype=float)
        ours, theirs = ours[np.isfinite(ours)], theirs[np.isfinite(theirs)]
        if not len(ours) or not len(theirs):
            continue
        observed, reference = float(np.median(ours)), float(np.median(theirs))
        low, high = (reference + widen * (float(v) - reference)
                     for v in np.quantile(theirs, [tail, 1.0 - tail]))
        intervals[key] = [round(low, 4), round(high, 4)]
        bar = low * (1.0 - cfg.collapse_margin)
        passed = observed >= bar
        fell = 1.0 - observed / reference if reference else 0.0
        checks.append(Check(
            name, bool(passed), round(observed, 4), round(bar, 4),
            f"{what} of kept synthetic {observed:.4g} {'>=' if passed else '<'} {bar:.4g} "
            f"(real hold-out {reference:.4g}, {cfg.interval_level:.0%} interval "
            f"[{low:.4g}, {high:.4g}], less the {cfg.collapse_margin:.0%} margin; "
            + (f"{fell:.0%} below the hold-out" if fell > 0 else "not below the hold-out")
            + f"; medians of {len(ours)} subsamples of {size} records)",
            reference=round(reference, 4), interval=intervals[key]))
    return checks, intervals


def rare_cluster_table(table: pd.DataFrame, emb: Embeddings, kept_rows: np.ndarray,
                       synth: np.ndarray) -> list[dict]:
    """One row per rare cluster: its real size and how many synthetic records reach it."""
    cluster = table["cluster"].to_numpy(dtype=np.int64, na_value=-1)
    k = len(emb.clusters.sizes)
    synth_in = np.bincount(cluster[synth & (cluster >= 0)], minlength=k)
    synth_kept = np.bincount(cluster[kept_rows], minlength=k)
    texts = table["text"].tolist()
    ref_rows = np.setdiff1d(np.flatnonzero(is_real(table) & (cluster >= 0)), emb.holdout_rows)
    rows = []
    for c in emb.clusters.rare:
        members = ref_rows[cluster[ref_rows] == c]
        example = texts[members[0]] if len(members) else ""
        rows.append({"cluster": c, "real": int(emb.clusters.sizes[c]),
                     "synthetic_in": int(synth_in[c]), "synthetic_kept": int(synth_kept[c]),
                     "example": example[:120]})
    return rows
