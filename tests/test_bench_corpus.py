"""The detection benchmark's instrument: its labels must say what the records are.

Only the parts that need no Debian package are tested here (the builder itself reads
packaged text; benchmarks/corpora/build_detection.py checks its sources when it runs).
"""

import random
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "corpora"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_detection as bd  # noqa: E402
import detection  # noqa: E402
import generators  # noqa: E402
import sources  # noqa: E402
from rewrite import bigrams, edit_words, inflect, jaccard  # noqa: E402

TEXTS = [
    "A banker is a fellow who lends you his umbrella when the sun is shining and wants it "
    "back the minute it begins to rain.",
    "A classic is something that everyone wants to have read and nobody wants to read.",
    "The trouble with the rat race is that even if you win, you are still a rat.",
    "Never put off till tomorrow what you can do the day after tomorrow just as well.",
]


def test_missing_source_names_the_package():
    with pytest.raises(sources.SourceMissing, match="apt-get install dict-gcide"):
        sources.require(Path("/nonexistent/gcide.index"), "dict-gcide")


def test_edit_rate_sets_how_far_a_near_duplicate_moves():
    rng = random.Random(0)
    vocab = "alpha beta gamma delta epsilon zeta".split()
    text = " ".join(TEXTS)
    mean = {}
    for rate in (0.05, 0.15):
        sims = [jaccard(bigrams(text), bigrams(edit_words(text, rate, rng, vocab)))
                for _ in range(40)]
        mean[rate] = sum(sims) / len(sims)
        assert all(s < 1.0 for s in sims)                # every variant is edited
    assert mean[0.05] > mean[0.15] + 0.1


def test_case_space_copies_are_exact_duplicates_under_synthgates_key():
    rng = random.Random(1)
    for text in TEXTS:
        for _ in range(3):
            variant = bd.case_space(text, rng)
            assert variant != text
            assert bd.normalize(variant) == bd.normalize(text)


def test_recombined_records_share_no_sentence():
    texts = [f"Sentence {i} one is here. Sentence {i} two follows it. Sentence {i} three ends."
             for i in range(20)]
    out = bd.recombine(texts, ["o"] * 20, 16, random.Random(2))
    sentences = [s for t in out for s in t.split(". ")]
    assert len(out) == 16
    assert len(sentences) == len(set(sentences))


def test_audit_drops_clean_candidates_that_repeat_a_real_record():
    real = [TEXTS[0]]
    near = TEXTS[0].replace("umbrella", "parasol")
    candidates = [("heldout", near), ("heldout", TEXTS[1]), ("heldout", TEXTS[1].upper()),
                  ("heldout", TEXTS[2])]
    assert bd.audit_clean(candidates, real, {"heldout": 2}) == [("heldout", TEXTS[1]),
                                                                 ("heldout", TEXTS[2])]
    with pytest.raises(SystemExit, match="short by"):
        bd.audit_clean(candidates, real, {"heldout": 3})


def test_inflection_follows_regular_spelling():
    assert inflect("box", "s") == "boxes"
    assert inflect("carry", "ed") == "carried"
    assert inflect("make", "ing") == "making"
    assert inflect("large", "er") == "larger"


def test_detokenize_undoes_tokenize():
    for text in ['He said: "Go!" and left.', "It's (really) odd -- isn't it?\n-- Anon"]:
        assert generators.detokenize(generators.tokenize(text)) == text


def test_ngram_samples_are_seeded_and_use_the_training_words():
    model = generators.NgramLM(order=2).fit(TEXTS)
    a = model.sample(5, random.Random(3))
    assert a == model.sample(5, random.Random(3))
    known = {w for t in TEXTS for w in generators.tokenize(t)}
    assert all(set(generators.tokenize(t)) <= known for t in a)


def test_scoring_counts_the_right_reason_and_ignores_the_share_cap():
    synth = pd.DataFrame({
        "id": ["s1", "s2", "s3", "s4", "s5"],
        "defect": ["near_duplicate", "near_duplicate", "clean", "clean", "off_distribution"],
        "kind": ["edit05", "edit10", "ngram", "ngram", "hex"],
        "expect": ["near_duplicate", "near_duplicate", None, None, "off_distribution"],
    })
    real = pd.DataFrame({"id": ["r1"], "origin": ["fortunes/art"]})
    decisions = pd.DataFrame({
        "source": ["synthetic"] * 5 + ["real"],
        "id": ["s1", "s2", "s3", "s4", "s5", "r1"],
        "reasons": [["near_duplicate"], ["off_distribution"], ["share_cap"], ["formulaic"],
                    [], []],
    })
    scores = detection.score_defects(real, synth, decisions)
    near = scores["classes"]["near_duplicate"]
    assert (near["rejected"], near["right"]) == (1.0, 0.5)
    assert scores["classes"]["off_distribution"]["rejected"] == 0.0
    assert scores["false_rejects"]["clean_synthetic"]["rate"] == 0.5
    assert scores["false_rejects"]["real"]["rate"] == 0.0
