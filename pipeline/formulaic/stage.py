"""Formulaic stage: how templated each record is, and which synthetic records are too much so.

Generated text drifts toward stock openers and closers, numbered-tip templates whose slots
alone change, and repetition loops. `FormulaicScorer` measures three signals, each a small
scorer of its own that a user can read back as a reason: template (templates.py), stock
(stock.py) and repetition (repetition.py), each calibrated on the real records
(calibration.py). This stage turns the combined score into decisions and the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..records import Reason, is_real, is_synthetic, reject, scorable
from ..report import histogram
from ..stage import BaseStage, RunContext, StageOutcome
from .repetition import GOPHER_LIMITS
from .scorer import RAW, SIGNALS, FormulaicScorer
from .stock import load_stock_phrases

_TOP_TEMPLATES = 20          # rows of the over-represented n-gram table in the report


class FormulaicStage(BaseStage):
    """Scores how templated every record is (template n-grams, stock phrases, repetition),
    calibrated on the real records; rejects the synthetic records above the bar."""

    name = "formulaic"
    reads = ("text", "source", "reasons")
    writes = ("formulaic", "formulaic_matches")
    reasons = (Reason.FORMULAIC,)

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        return score_formulaic(table, ctx)


def score_formulaic(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    """Scores every scorable record, rejects the synthetic ones above the threshold learned on
    the real records, and reports the threshold, each signal's bar, the score distributions,
    the over-represented n-grams and the stock phrases."""
    cfg = ctx.config.formulaic
    active = scorable(table)
    real, synth = is_real(table) & active, is_synthetic(table) & active
    texts = table["text"].to_numpy(dtype=object)
    phrases = [*load_stock_phrases(), *cfg.stock_phrases] if cfg.builtin_stock_phrases \
        else list(cfg.stock_phrases)
    scorer = FormulaicScorer(quantile=cfg.quantile, min_n=cfg.min_n, max_n=cfg.max_n,
                             min_z=cfg.min_z, min_ratio=cfg.min_ratio, stock_phrases=phrases)
    scorer.fit(texts[real], texts[synth], tasks=ctx.tasks)
    calibrated = bool(real.any())

    on_real = scorer.calibration_
    on_synth = scorer.score_components(texts[synth], held_in="synthetic", tasks=ctx.tasks)
    scores = np.full(len(table), np.nan)
    scores[real] = on_real["score"].to_numpy()
    scores[synth] = on_synth["score"].to_numpy()
    table["formulaic"] = scores
    rejected = synth & (scores > scorer.threshold_) if calibrated \
        else np.zeros(len(table), dtype=bool)
    matches = np.full(len(table), None, dtype=object)
    matches[rejected] = scorer.matches(texts[rejected], held_in="synthetic")
    table["formulaic_matches"] = matches
    reject(table, rejected, Reason.FORMULAIC,
           [f"formulaic {scores[i]:.2f} > threshold {scorer.threshold_:.2f}: {matches[i]}"
            for i in np.flatnonzero(rejected)])

    template = scorer.signals_["template"]
    details = {
        "threshold": round(scorer.threshold_, 4) if calibrated else None,
        "quantile": cfg.quantile,
        "calibrated_on": "real records, each scored leave-one-out" if calibrated
        else "nothing: no real records, no record rejected",
        "real_calibration_records": int(real.sum()),
        "synthetic_scored": int(synth.sum()),
        "synthetic_with_stock_phrase": round(float((on_synth["stock_phrases"] > 0).mean()), 4)
        if len(on_synth) else 0.0,
        "real_with_stock_phrase": round(float((on_real["stock_phrases"] > 0).mean()), 4)
        if len(on_real) else 0.0,
        "scores": histogram({"real": on_real["score"].to_numpy(),
                             "synthetic": on_synth["score"].to_numpy()},
                            bins=20, bounds=(0.0, 1.0)),
        "signals": signal_table(scorer, on_synth, on_real),
        "rare_template_p_value_bar": float(f"{math.exp(template.log_p_cut_):.3g}")
        if template.log_p_cut_ > -math.inf else None,      # None: no rare template passed
        "template_tests": template.testable_ngrams_,
        "over_represented_ngrams": top_templates(scorer.templates_),
        "stock_phrases": scorer.phrases_[scorer.phrases_["synthetic_records"] > 0]
        .sort_values(["synthetic_records", "phrase"], ascending=[False, True])
        .head(_TOP_TEMPLATES).to_dict("records"),
        "repetition_limits": [{"statistic": k, "gopher_limit": GOPHER_LIMITS[k],
                               "limit_used": round(v, 4)}
                              for k, v in scorer.repetition_limits_.items()],
    }
    return StageOutcome(details=details)


def signal_table(scorer: FormulaicScorer, synth: pd.DataFrame, real: pd.DataFrame
                 ) -> list[dict]:
    """Which signals carry weight here: each one's bar in its own units (the raw value above
    which it alone makes a record formulaic), how its raw values sit on real and synthetic
    records, and how many synthetic records it alone puts over the threshold."""
    rows = []
    for name in SIGNALS:
        raw = RAW[name]
        rows.append({
            "signal": name,
            "raw": raw,
            "bar": round(float(scorer.signal_thresholds_[name]), 4),
            "real_mean": round(float(real[raw].mean()), 4) if len(real) else 0.0,
            "real_max": round(float(real[raw].max()), 4) if len(real) else 0.0,
            "synthetic_mean": round(float(synth[raw].mean()), 4) if len(synth) else 0.0,
            "synthetic_records_with_it": int((synth[raw] > 0).sum()),
            "synthetic_over_threshold_alone": int((synth[name] > scorer.threshold_).sum()),
        })
    return rows


def top_templates(templates: pd.DataFrame, k: int = _TOP_TEMPLATES) -> list[dict]:
    """The k most over-represented n-grams (by Fisher's p-value, as templates_ is sorted),
    without the fragments of a longer one:
    "always remember" adds nothing beside "always remember to" found in as many records."""
    candidates = templates.head(10 * k).to_dict("records")
    shown = []
    for row in candidates:
        inside = any(other["n"] > row["n"] and f" {row['ngram']} " in f" {other['ngram']} "
                     and other["synthetic_records"] >= 0.8 * row["synthetic_records"]
                     for other in candidates)
        if not inside:
            shown.append({"ngram": row["ngram"], "n": row["n"],
                          "synthetic_records": row["synthetic_records"],
                          "real_records": row["real_records"],
                          "log_odds": round(float(row["log_odds"]), 3),
                          "z": round(float(row["z"]), 2),
                          "p_value": float(f"{row['p_value']:.3g}")})
        if len(shown) == k:
            break
    return shown
