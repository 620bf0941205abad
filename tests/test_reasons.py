"""Each reason code the ingest, exact-dedup and share-cap stages give has a test that produces
it through the public API (near_duplicate, paraphrase copies, formulaic and off_distribution
are tested with their own stages). And the cap is exact, for every R and X."""

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, Reason, run
from synthgate import mix
from synthgate.records import new_table
from synthgate.stage import RunContext

FAST = ["dedup", "mix"]
REAL_TEXTS = ["The lawyer is one skilled in the circumvention of the law.",
              "A cynic is a blackguard whose faulty vision sees things as they are.",
              "Patience is a minor form of despair, disguised as a virtue.",
              "Peace, in international affairs, is a period of cheating between fightings."]


def decide(real_texts, synthetic_texts, **config) -> pd.DataFrame:
    """The decision log of a dedup + mix run, indexed by id."""
    real = pd.DataFrame({"id": [f"r{i}" for i in range(len(real_texts))], "text": real_texts})
    synth = pd.DataFrame({"id": [f"s{i}" for i in range(len(synthetic_texts))],
                          "text": synthetic_texts})
    config = Config(stages=FAST, **{"max_synthetic_share": 1.0, **config})
    return run(real=real, synthetic=synth, config=config).decisions.set_index("id")


# ------------------------------------------------------------------------- invalid

INVALID = [("", "empty or whitespace-only"), ("   \n\t", "empty or whitespace-only"),
           ("Too short.", "2 words < minimum 3"), (12345, "not text (int)"),
           (None, "field 'text' is missing")]


def test_invalid():
    # One run for every kind (each run pays for the data contracts).
    decisions = decide(REAL_TEXTS, [text for text, _ in INVALID]
                       + ["a healthy synthetic record of some words"])
    for i, (_, why) in enumerate(INVALID):
        assert list(decisions.loc[f"s{i}", "reasons"]) == [Reason.INVALID.value]
        assert not decisions.loc[f"s{i}", "kept"]
        assert why in decisions.loc[f"s{i}", "explanation"]
    assert decisions.loc[f"s{len(INVALID)}", "kept"]


def test_invalid_applies_to_real_records_too():
    decisions = decide(REAL_TEXTS + [" "], ["a healthy synthetic record of some words"])
    assert list(decisions.loc["r4", "reasons"]) == ["invalid"]


def test_minimum_length_is_configurable():
    config = Config(stages=FAST, max_synthetic_share=1.0)
    config.ingest.min_words = 12
    real = pd.DataFrame({"text": REAL_TEXTS})
    synth = pd.DataFrame({"text": ["seven words are not enough for this",
                                   "these twelve words are just enough for the raised minimum "
                                   "length here"]})
    decisions = run(real=real, synthetic=synth, config=config).decisions
    synthetic = decisions[decisions["source"] == "synthetic"]
    assert synthetic["reasons"].map(list).tolist() == [["invalid"], []]


# ------------------------------------------------------------------------- exact_duplicate

def test_exact_duplicate_within_synthetic():
    original = "A fine synthetic definition of a fish, written at first light."
    variants = [original,                                             # verbatim
                original.upper(),                                     # case-folded
                "  " + original.replace(" ", " \t ") + "\n",          # whitespace collapsed
                original.replace("fi", "\ufb01").replace("A", "\uff21")]  # NFKC: ligature
    decisions = decide(REAL_TEXTS, [original] + variants)
    assert decisions.loc["s0", "kept"]
    for i in range(1, len(variants) + 1):
        assert list(decisions.loc[f"s{i}", "reasons"]) == [Reason.EXACT_DUPLICATE.value]
        assert decisions.loc[f"s{i}", "dup_of"] == "s0"


def test_exact_duplicate_within_real():
    decisions = decide(REAL_TEXTS + [REAL_TEXTS[1].lower()], ["a synthetic record of words"])
    assert list(decisions.loc["r4", "reasons"]) == ["exact_duplicate"]
    assert decisions.loc["r4", "dup_of"] == "r1"


def test_texts_that_differ_in_words_are_not_exact_duplicates():
    decisions = decide(REAL_TEXTS, ["one synthetic record of words",
                                    "one synthetic record of word"])
    assert decisions["kept"].all()


# ------------------------------------------------------------------------- copies_real

def test_copies_real_exact_keeps_the_real_record_whatever_the_order():
    # One mixed input with the synthetic copy *before* the real record it copies.
    mixed = pd.DataFrame({"id": ["s-first", "r-later", "r-other"],
                          "origin": ["synthetic", "real", "real"],
                          "text": [REAL_TEXTS[0].upper(), REAL_TEXTS[0], REAL_TEXTS[1]]})
    decisions = run(input=mixed, config=Config(stages=FAST, source_field="origin",
                                               max_synthetic_share=1.0)).decisions
    by_id = decisions.set_index("id")
    assert by_id.loc["r-later", "kept"]
    assert list(by_id.loc["s-first", "reasons"]) == [Reason.COPIES_REAL.value]
    assert by_id.loc["s-first", "dup_of"] == "r-later"


def test_copies_real_wins_over_exact_duplicate():
    decisions = decide(REAL_TEXTS, [REAL_TEXTS[2], REAL_TEXTS[2]])
    assert list(decisions.loc["s0", "reasons"]) == ["copies_real"]
    assert list(decisions.loc["s1", "reasons"]) == ["copies_real"]
    assert decisions.loc["s1", "dup_of"] == "r2"


# ------------------------------------------------------------------------- share_cap

def test_share_cap_through_the_pipeline():
    synthetic = [f"synthetic record number {i} with its own words" for i in range(10)]
    decisions = decide(REAL_TEXTS, synthetic, max_synthetic_share=0.5)
    synth = decisions[decisions["source"] == "synthetic"]
    assert synth["kept"].sum() == 4      # 4 real: 4 synthetic make exactly half
    capped = synth[~synth["kept"]]
    assert len(capped) == 6
    assert all(list(r) == [Reason.SHARE_CAP.value] for r in capped["reasons"])
    assert "share cap" in capped["explanation"].iloc[0]


def test_share_cap_counts_only_records_still_kept():
    # An invalid real record does not buy room for a synthetic one.
    synthetic = [f"synthetic record number {i} with its own words" for i in range(10)]
    decisions = decide(REAL_TEXTS + [""], synthetic, max_synthetic_share=0.5)
    assert decisions[decisions["source"] == "synthetic"]["kept"].sum() == 4


CAPS = ["0", "0.05", "0.1", "0.25", "0.3", "0.33", "0.5", "0.6", "0.7", "0.9", "0.999", "1"]


@pytest.mark.parametrize("cap", CAPS)
def test_cap_is_exact_for_many_real_and_synthetic_counts(cap):
    """Property: the kept synthetic count is the largest S with S / (R + S) <= X (as the
    user wrote X), never more, never fewer while candidates remain, and equals
    mix.synthetic_budget."""
    x = float(cap)
    limit = Fraction(cap)
    rng = np.random.default_rng(int(Fraction(cap) * 1000))
    real_counts = [0, 1, 2, 3, 7, 9, 10, 33, 100] + rng.integers(1, 400, size=4).tolist()
    for n_real in real_counts:
        for n_synth in sorted({0, 1, n_real, 2 * n_real + 3, int(rng.integers(0, 800))}):
            table = new_table([f"r{i}" for i in range(n_real)] +
                              [f"s{i}" for i in range(n_synth)],
                              ["real"] * n_real + ["synthetic"] * n_synth,
                              ["some text here"] * (n_real + n_synth))
            mix.MixStage().run(table, RunContext(config=Config(max_synthetic_share=x, stages=FAST)))
            kept = int((table["kept"] & (table["source"] == "synthetic")).sum())
            budget = mix.synthetic_budget(n_real, x)
            assert kept == (n_synth if budget is None else min(n_synth, budget))
            if kept:
                assert Fraction(kept, n_real + kept) <= limit, (n_real, n_synth, cap)
            if kept < n_synth:   # one more would break the cap
                assert Fraction(kept + 1, n_real + kept + 1) > limit, (n_real, n_synth, cap)
            dropped = table[~table["kept"]]
            assert all(list(r) == ["share_cap"] for r in dropped["reasons"])
            assert (dropped["source"] == "synthetic").all()
