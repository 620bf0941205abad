"""Formulaicness: speed at 100k records, and how well it separates templated from natural.

1. Speed. `FormulaicScorer.fit` on N synthetic records (default 100k) and N/2 real ones,
   then scoring the N synthetic records as fitted records (leave-one-out) and as new texts
   (`score_samples`), against a baseline measured in the same run: the same three raw
   signals computed record by record in plain Python (Counter per record, set look-ups per
   n-gram), on a sample, as records/s.
2. Quality on the test corpora (tests/test_formulaic.py: make_corpora), where the truth is
   known: recall on each kind of templated synthetic record, false rejection rate on each
   style of natural synthetic record (prose, and riddles and recipes, which are templated
   *real* styles), and the share of real records over the threshold when each is scored
   leave-one-out (the calibration's own false rejection, never applied: real records are not
   rejected), at several corpus sizes, a small real set among them; then the same with each
   signal left out, to show which signals carry weight.
3. Quality on sample_data/ (Devil's Dictionary real records, Markov-chain synthetic records
   with 22 planted formulaic ones): recall on `formulaic`, false rejection on `healthy`.

    python benchmarks/formulaic.py [--records 100000] [--baseline-records 3000]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from synthgate.formulaic import SIGNALS, FormulaicScorer  # noqa: E402
from test_formulaic import NATURAL_STYLES, TEMPLATED, make_corpora  # noqa: E402

# ----------------------------------------------------------------------------- baseline

def per_record_scores(scorer: FormulaicScorer, texts: list[str]) -> list[float]:
    """The same signals, one record at a time in plain Python: the way a per-document filter
    (datatrove style) computes them. Template and phrase sets are taken from the fitted
    scorer as strings, so the work per record is what a per-record filter would do; the
    raw signals then go through the scorer's calibration (numpy, a negligible share)."""
    template, stock = scorer.signals_["template"], scorer.signals_["stock"]
    templates = {n: set(scorer.templates_.loc[scorer.templates_["n"] == n, "ngram"])
                 for n in template.template_hashes_[None]}
    phrases = {length: {by_hash[int(h)] for h in stock.active_phrases_[None][length]}
               for length, by_hash in stock.phrases_by_length_.items()}
    limits = scorer.repetition_limits_
    word = re.compile(r"\w+(?:'\w+)*")
    rows = []
    for text in texts:
        words = word.findall(text.casefold().replace("\u2019", "'"))
        covered = [False] * len(words)
        for n, grams in templates.items():
            for i in range(len(words) - n + 1):
                if " ".join(words[i:i + n]) in grams:
                    covered[i:i + n] = [True] * n
        template = sum(covered) / len(words) if words else 0.0
        found = {" ".join(words[i:i + n]) for n, ps in phrases.items()
                 for i in range(len(words) - n + 1) if " ".join(words[i:i + n]) in ps}
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        seen: set[str] = set()
        dup = []
        for line in lines:
            dup.append(line in seen)
            seen.add(line)
        worst = (sum(dup) / len(lines) if lines else 0.0) / limits["duplicate lines"]
        worst = max(worst, sum(len(x) for x, d in zip(lines, dup) if d) / max(len(text), 1)
                    / limits["duplicate line characters"])
        for n in (2, 3, 4):
            counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
            if counts:
                gram, c = counts.most_common(1)[0]
                if c >= 2:
                    worst = max(worst, c * len(gram) / len(text) / limits[f"top {n}-gram"])
        for n in range(5, 11):
            seen_grams, dup_words = set(), [False] * len(words)
            for i in range(len(words) - n + 1):
                gram = " ".join(words[i:i + n])
                if gram in seen_grams:
                    dup_words[i:i + n] = [True] * n
                seen_grams.add(gram)
            chars = sum(len(w) for w, d in zip(words, dup_words) if d)
            worst = max(worst, chars / len(text) / limits[f"duplicated {n}-grams"])
        rows.append({"template_share": template, "stock_phrases": len(found),
                     "repetition_ratio": worst, "repetition_kind": ""})
    return scorer._calibrate(pd.DataFrame(rows))["score"].tolist()


def speed(records: int, baseline_records: int) -> None:
    print(f"== speed: {records} synthetic and {records // 2} real records (machine shared "
          f"with other engineers: compare the ratio, not the seconds)")
    t = time.perf_counter()
    real, synthetic, _ = make_corpora(n_real=records // 2, n_synthetic=records, seed=1)
    print(f"corpus built in {time.perf_counter() - t:.1f}s: "
          f"{sum(len(s.split()) for s in synthetic) / len(synthetic):.0f} words/record")
    t = time.perf_counter()
    scorer = FormulaicScorer().fit(real, synthetic)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scorer.score_components(synthetic, held_in="synthetic")
    held_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = scorer.score_samples(synthetic)
    score_s = time.perf_counter() - t
    sample = synthetic[:baseline_records]
    t = time.perf_counter()
    slow = per_record_scores(scorer, sample)
    base_s = time.perf_counter() - t
    agree = np.corrcoef(slow, scores[:baseline_records])[0, 1]
    print(f"fit ({len(real)} real, each also scored leave-one-out, + {len(synthetic)} "
          f"synthetic): {fit_s:.1f}s")
    print(f"scoring the fitted synthetic records (leave-one-out): {len(synthetic)} in "
          f"{held_s:.1f}s = {len(synthetic) / held_s:,.0f} records/s")
    print(f"score_samples (new texts), vectorized: {len(synthetic)} records in {score_s:.1f}s "
          f"= {len(synthetic) / score_s:,.0f} records/s")
    print(f"baseline, per-record Python: {len(sample)} records in {base_s:.1f}s = "
          f"{len(sample) / base_s:,.0f} records/s")
    print(f"speed-up: {(len(synthetic) / score_s) / (len(sample) / base_s):.1f}x "
          f"(score correlation with the baseline: {agree:.3f})")


# ----------------------------------------------------------------------------- quality

def evaluate(real: list[str], synthetic: list[str], truth: list[str]) -> pd.DataFrame:
    """Per kind: share flagged, with all signals and with each one left out; the last row,
    `real (LOO)`, is the share of real records over the threshold."""
    scorer = FormulaicScorer().fit(real, synthetic)
    synth = scorer.score_components(synthetic, held_in="synthetic")
    calib = scorer.calibration_
    rows = {}
    for left_out in (None, *SIGNALS):
        kept = [s for s in SIGNALS if s != left_out]
        name = "all signals" if left_out is None else f"without {left_out}"
        flagged = synth[kept].max(axis=1).to_numpy() > scorer.threshold_
        column = pd.Series(flagged).groupby(pd.Series(truth)).mean()
        column["real (LOO)"] = float((calib[kept].max(axis=1) > scorer.threshold_).mean())
        rows[name] = column
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, truth: list[str]) -> str:
    counts = pd.Series(truth).value_counts()
    natural = [s for s in table.index if s in NATURAL_STYLES.values()]
    templated = [s for s in table.index if s != "rare" and s in TEMPLATED]
    w_nat, w_tpl = counts[natural], counts[templated]
    return (f"recall on templated (stock, closer, tips, loop): "
            f"{(table.loc[templated, 'all signals'] * w_tpl).sum() / w_tpl.sum():.3f}; "
            f"rare template: {table.loc['rare', 'all signals']:.3f}; "
            f"false rejection on natural: "
            f"{(table.loc[natural, 'all signals'] * w_nat).sum() / w_nat.sum():.4f}; "
            f"real over threshold (LOO): {table.loc['real (LOO)', 'all signals']:.4f}")


def quality() -> None:
    print("\n== quality on the test corpora (share of records flagged formulaic)")
    print("templated kinds (want 1.0): " + ", ".join(TEMPLATED))
    print("natural styles (want <= 0.01, the quantile's 1%): "
          + ", ".join(sorted(set(NATURAL_STYLES.values()))))
    for n_real, n_synth in ((150, 600), (600, 600), (1500, 900), (5000, 3000)):
        tables = []
        for seed in range(3):
            real, synthetic, truth = make_corpora(n_real, n_synth, seed=seed)
            tables.append(evaluate(real, synthetic, truth))
        table = sum(tables) / len(tables)
        print(f"\n{n_real} real, {n_synth} synthetic, mean of 3 seeds:")
        print(table.round(4).to_string())
        print(summary(table, make_corpora(n_real, n_synth, seed=0)[2]))


def sample_data() -> None:
    print("\n== quality on sample_data/ (Devil's Dictionary real, Markov-chain synthetic)")
    real = pd.read_json(ROOT / "sample_data" / "real.jsonl", lines=True)
    synth = pd.read_json(ROOT / "sample_data" / "synthetic.jsonl", lines=True)
    synth = synth[synth["defect"].isin(["healthy", "formulaic"])]
    texts = [str(t) for t in synth["text"]]
    result = evaluate([str(t) for t in real["text"]], texts, synth["defect"].tolist())
    print(result.round(4).to_string())
    counts = synth["defect"].value_counts()
    print(f"formulaic caught: {round(result.loc['formulaic', 'all signals'] * counts['formulaic'])}"
          f" of {counts['formulaic']}; healthy rejected: "
          f"{round(result.loc['healthy', 'all signals'] * counts['healthy'])} of "
          f"{counts['healthy']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--baseline-records", type=int, default=3000)
    args = parser.parse_args()
    speed(args.records, args.baseline_records)
    quality()
    sample_data()


if __name__ == "__main__":
    main()
