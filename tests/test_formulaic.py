"""Formulaicness: small corpora where the truth is known.

`make_corpora` writes a real set and a synthetic set from one seeded grammar. The real set has
natural prose plus two templated real styles (riddles, recipes); the synthetic set has the
same natural prose and styles (natural: must be kept) plus generator boilerplate (templated:
must be caught): stock openers/closers around natural prose, numbered-tip templates whose
slots alone change, repetition loops, and a rare template in 2% of the records.
benchmarks/formulaic.py measures recall and false rejections on these corpora.
"""

from __future__ import annotations

import random

NOUNS = """garden river teacher engine library winter village harbor market student
kitchen window mountain lantern notebook bridge orchard painter farmer tower island
forest doctor letter castle meadow station bakery harvest valley compass journey
storm bicycle blanket candle ceiling chimney cottage factory festival glacier hammer
jacket kettle ladder mirror needle ocean pebble pillow pocket puzzle rabbit ribbon
saddle shelter shovel signal spider spring stable statue stream thread ticket tunnel
umbrella vessel wagon whistle wizard workshop sailor miner weaver potter shepherd
beekeeper tailor clerk nurse pilot baker fisherman merchant musician poet
museum fountain canal quarry vineyard pasture lighthouse monastery cathedral
telescope microscope typewriter violin accordion drum trumpet compass anchor""".split()
ADJECTIVES = """quiet old narrow bright heavy small golden broken distant gentle
crowded empty careful patient curious rusty silver wooden muddy frozen sunny windy
ancient modern hidden simple strange tired eager humble clever stubborn cheerful
silent shallow steep dusty fragile rough smooth bitter sweet pale dark tall short
wide thin thick soft loud busy lazy polite rude brave shy proud calm wild""".split()
VERBS = [("carry", "carried"), ("watch", "watched"), ("repair", "repaired"),
         ("follow", "followed"), ("paint", "painted"), ("open", "opened"),
         ("visit", "visited"), ("clean", "cleaned"), ("build", "built"), ("find", "found"),
         ("borrow", "borrowed"), ("measure", "measured"), ("sell", "sold"),
         ("describe", "described"), ("guard", "guarded"), ("plant", "planted"),
         ("climb", "climbed"), ("mend", "mended"), ("count", "counted"), ("cross", "crossed"),
         ("lift", "lifted"), ("polish", "polished"), ("sketch", "sketched"),
         ("deliver", "delivered"), ("gather", "gathered"), ("inspect", "inspected"),
         ("photograph", "photographed"), ("rebuild", "rebuilt"), ("sort", "sorted"),
         ("trade", "traded"), ("weigh", "weighed"), ("wrap", "wrapped")]
ADVERBS = """slowly quickly quietly carefully early late often rarely proudly
patiently suddenly gently nearly barely eagerly calmly""".split()
NAMES = """Anna Boris Clara Dmitri Elena Farid Greta Hugo Ines Jonas Kira Luis Mara
Nils Olga Pavel Rosa Sami Tove Umar Vera Wim""".split()
TIMES = """at dawn|before noon|after the storm|in the evening|during the festival|last
spring|every winter|on market day|by the end of the week|after supper""".split("|")


def _sentence(rng: random.Random) -> str:
    """One sentence of natural prose: varied structures, slots from a large vocabulary."""
    n, a, v, adv = rng.choice, rng.choice, rng.choice, rng.choice
    name, when = rng.choice(NAMES), rng.choice(TIMES).strip()
    verb = v(VERBS)
    forms = [
        f"The {a(ADJECTIVES)} {n(NOUNS)} near the {n(NOUNS)} was {a(ADJECTIVES)} {when}.",
        f"{name} {verb[1]} the {a(ADJECTIVES)} {n(NOUNS)} {adv(ADVERBS)}.",
        f"{when.capitalize()}, {name} and {rng.choice(NAMES)} {verb[1]} a {n(NOUNS)}.",
        f"Nobody expected the {n(NOUNS)} to be so {a(ADJECTIVES)}.",
        f"A {a(ADJECTIVES)} {n(NOUNS)} stood beside the {n(NOUNS)}, {a(ADJECTIVES)} and "
        f"{a(ADJECTIVES)}.",
        f"{name} said the {n(NOUNS)} would {verb[0]} the {n(NOUNS)} {when}.",
        f"Why would anyone {verb[0]} a {a(ADJECTIVES)} {n(NOUNS)}?",
        f"The {n(NOUNS)} of the {n(NOUNS)} {verb[1]} {rng.randint(2, 90)} {n(NOUNS)}s.",
        f"{name} {adv(ADVERBS)} {verb[1]} the {n(NOUNS)} while the {n(NOUNS)} slept.",
        f"There was a {a(ADJECTIVES)} {n(NOUNS)} in the {n(NOUNS)} {when}.",
        f"{name}'s {n(NOUNS)} was {a(ADJECTIVES)}, but the {n(NOUNS)} was {a(ADJECTIVES)}.",
        f"After the {n(NOUNS)}, {name} {verb[1]} {rng.randint(2, 12)} {a(ADJECTIVES)} "
        f"{n(NOUNS)}s.",
    ]
    return rng.choice(forms)


def natural(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))


def riddle(rng: random.Random) -> str:
    """A templated real style: the riddle frame repeats, the content does not."""
    return (f"What has a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} but cannot "
            f"{rng.choice(VERBS)[0]} a {rng.choice(NOUNS)}? A {rng.choice(NOUNS)}, of course. "
            f"{_sentence(rng)}")


def recipe(rng: random.Random) -> str:
    """Another templated real style, multi-line like real recipes."""
    items = ", ".join(f"{rng.randint(1, 9)} {rng.choice(NOUNS)}s" for _ in range(3))
    return (f"Ingredients: {items}.\nMethod:\n1. Preheat the oven to "
            f"{rng.choice([160, 180, 200, 220])} degrees.\n2. Mix the {rng.choice(NOUNS)}s "
            f"with the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}.\n3. Bake for "
            f"{rng.randint(10, 60)} minutes. {_sentence(rng)}")


def stock_wrapped(rng: random.Random) -> str:
    """Generator boilerplate: stock opener and closer around natural content."""
    opener = rng.choice(["Certainly! Here's a short story about the {n}.",
                         "Sure! Here is a description of the {n}.",
                         "Great question! Let's dive into the {n}."]).format(n=rng.choice(NOUNS))
    closer = rng.choice(["I hope this helps! Let me know if you have any other questions.",
                         "In conclusion, the {n} is truly a testament to {a} design.",
                         "Feel free to ask if you'd like more details."]
                        ).format(n=rng.choice(NOUNS), a=rng.choice(ADJECTIVES))
    return f"{opener} {natural(rng)} {closer}"


def closer(rng: random.Random) -> str:
    """Subtle generator boilerplate: natural content and one stock closer."""
    return f"{natural(rng)} " + rng.choice(["I hope this helps!", "Hope this helps.",
                                            "Feel free to reach out with questions."])


def rare(rng: random.Random) -> str:
    """A template too rare in the synthetic set for corpus statistics to establish alone."""
    return (f"Step one: {rng.choice(VERBS)[0]} the {rng.choice(NOUNS)}. Step two: "
            f"{rng.choice(VERBS)[0]} the {rng.choice(NOUNS)}. Step three: enjoy your "
            f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}!")


def tips(rng: random.Random) -> str:
    """Generator boilerplate: a numbered-tip template whose slots alone change."""
    noun = rng.choice(NOUNS)
    lines = [f"Here are {rng.randint(3, 5)} simple tips for keeping your {noun} "
             f"{rng.choice(ADJECTIVES)}:"]
    for k, (verb, _) in enumerate(rng.sample(VERBS, 3), 1):
        lines.append(f"{k}. Always remember to {verb} your {rng.choice(NOUNS)} before you "
                     f"{rng.choice(VERBS)[0]} the {rng.choice(NOUNS)}.")
    lines.append(f"By following these simple tips, you can make sure that your {noun} stays "
                 f"{rng.choice(ADJECTIVES)} for years to come.")
    return "\n".join(lines)


def loop(rng: random.Random) -> str:
    """Generator boilerplate: a repetition loop."""
    passage = " ".join(_sentence(rng) for _ in range(rng.randint(1, 2)))
    return " ".join([_sentence(rng)] + [passage] * rng.randint(3, 6))


# What make_corpora's truth calls the synthetic records written like the real ones.
NATURAL_STYLES = {"natural": "prose", "riddle": "riddle", "recipe": "recipe"}
TEMPLATED = ("stock", "closer", "tips", "loop", "rare")


def make_corpora(n_real: int = 600, n_synthetic: int = 600, seed: int = 0
                 ) -> tuple[list[str], list[str], list[str]]:
    """(real texts, synthetic texts, truth): truth is a NATURAL_STYLES value or a TEMPLATED kind.

    Real: 70% prose, 15% riddles, 15% recipes. Synthetic: one third templated (stock, closer,
    tips, loop in equal parts), 2% a rare template, the rest natural in the real proportions.
    """
    rng = random.Random(seed)
    real_styles = [natural] * 14 + [riddle] * 3 + [recipe] * 3
    real = [rng.choice(real_styles)(rng) for _ in range(n_real)]
    synthetic, truth = [], []
    kinds = {"stock": stock_wrapped, "closer": closer, "tips": tips, "loop": loop}
    for i in range(n_synthetic):
        if i % 50 == 1:
            synthetic.append(rare(rng))
            truth.append("rare")
        elif i % 3 == 0:
            kind = rng.choice(sorted(kinds))
            synthetic.append(kinds[kind](rng))
            truth.append(kind)
        else:
            style = rng.choice(real_styles)
            synthetic.append(style(rng))
            truth.append(NATURAL_STYLES[style.__name__])
    return real, synthetic, truth


# ----------------------------------------------------------------------------- tests

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run
from synthgate.formulaic import (FormulaicScorer, SignalTail, benjamini_hochberg, fisher_log_p,
                                load_stock_phrases, log_odds, ngram_hashes, per_signal_level,
                                tokenize)
from synthgate.report import to_html


@pytest.fixture(scope="module")
def corpora():
    return make_corpora(n_real=1500, n_synthetic=900, seed=0)


@pytest.fixture(scope="module")
def fitted(corpora):
    real, synthetic, truth = corpora
    scorer = FormulaicScorer().fit(real, synthetic)
    scores = scorer.score_components(synthetic, held_in="synthetic")["score"]
    return scorer, pd.DataFrame({"truth": truth, "flagged": scores > scorer.threshold_})


def test_templated_synthetic_records_are_caught(fitted):
    _, result = fitted
    recall = result[result.truth.isin(TEMPLATED)].groupby("truth").flagged.mean()
    assert set(recall.index) == set(TEMPLATED)
    assert (recall == 1.0).all(), recall


def test_natural_synthetic_records_and_real_templated_styles_are_kept(fitted):
    _, result = fitted
    false_rejection = result[result.truth.isin(list(NATURAL_STYLES.values()))] \
        .groupby("truth").flagged.mean()
    # each signal's bar leaves 1 - 0.99 ** (1/3) of real records above it: at most about 1%
    # of real-like records over the threshold in all
    assert (false_rejection <= 0.04).all(), false_rejection


def test_every_real_record_calibrates_and_few_exceed(fitted, corpora):
    scorer, _ = fitted
    real, _, _ = corpora
    assert len(scorer.calibration_) == len(real)            # leave-one-out: all of them
    assert (scorer.calibration_scores_ > scorer.threshold_).mean() <= 0.02


def test_templates_are_learned_against_real_so_shared_styles_cancel(fitted):
    scorer, _ = fitted
    ngrams = " | ".join(scorer.templates_["ngram"])
    assert "by following these simple tips" in ngrams       # the generator's own template
    assert "always remember to" in ngrams
    for real_style in ("but cannot", "preheat the oven", "ingredients", "of course"):
        assert real_style not in ngrams                       # riddles, recipes: real style


def test_a_rare_template_counts_where_absence_from_real_is_informative():
    """15 of 300 synthetic records share a template no real record uses: too few for the
    log-odds z-test, enough for Fisher's test against 300 real records. Against 40 real
    records the same absence says little (40 records would miss an n-gram of that rate a
    fair share of the time), and the counts do not make it a template."""
    def corpora(n_real, seed=5):
        rng = random.Random(seed)
        real = [natural(rng) for _ in range(n_real)]
        synthetic = [natural(rng) for _ in range(285)] + [rare(rng) for _ in range(15)]
        return real, synthetic

    real, synthetic = corpora(300)
    scorer = FormulaicScorer().fit(real, synthetic)
    steps = scorer.templates_[scorer.templates_["ngram"].str.contains("step")]
    assert len(steps) and (steps["real_records"] == 0).all()
    assert (steps["z"] < scorer.min_z).all()                 # found by the exact test alone
    flagged = scorer.score_components(synthetic, held_in="synthetic")["score"].to_numpy() \
        > scorer.threshold_
    assert flagged[-15:].all()
    assert flagged[:-15].mean() <= 0.02

    real, synthetic = corpora(40)
    scorer = FormulaicScorer().fit(real, synthetic)
    assert not scorer.templates_["ngram"].str.contains("step").any()


def test_one_signals_tail_in_the_real_data_does_not_lift_the_bar_of_another():
    """Some real records repeat a chorus (the repetition signal's tail); a synthetic record
    with one stock phrase and no repetition must still be caught. A single bar on a combined
    score would sit at the chorus records' level and let it through."""
    rng = random.Random(6)
    chorus = "la la la sing along with me"
    real = [natural(rng) for _ in range(290)] + \
        [f"{natural(rng)} {chorus}. {chorus}. {chorus}. {chorus}." for _ in range(10)]
    synthetic = [natural(rng) for _ in range(290)] + \
        [f"{natural(rng)} Let me know if you have any other questions." for _ in range(10)]
    scorer = FormulaicScorer().fit(real, synthetic)
    parts = scorer.score_components(synthetic, held_in="synthetic")
    flagged = (parts["score"] > scorer.threshold_).to_numpy()
    assert flagged[-10:].all()
    assert flagged[:-10].mean() <= 0.02
    assert scorer.signal_thresholds_["repetition"] > 1       # the chorus lifted this bar only
    assert scorer.signal_thresholds_["stock"] < 1            # one phrase is over this one


def test_a_signal_no_real_record_shows_has_a_bar_sized_by_the_real_set():
    level = per_signal_level(0.99)
    small = SignalTail.fit(np.zeros(80), unit=1.0)
    assert small.survival(np.array([0.0]))[0] == 1.0
    assert small.survival(np.array([1e-9]))[0] == pytest.approx(1 / 81)
    # 80 real records cannot vouch for 1 in 300: a trace is not enough, a few units are
    assert 0 < small.value_at(level) < 3
    large = SignalTail.fit(np.zeros(2000), unit=1.0)
    assert large.value_at(level) == 0.0                        # 2000 can: any trace is over


def test_the_largest_of_a_small_real_sample_is_not_the_bar():
    values = np.random.default_rng(0).exponential(1.0, size=80)
    tail = SignalTail.fit(values, unit=1.0)
    assert tail.value_at(per_signal_level(0.99)) > values.max()
    grid = np.linspace(0, 3 * values.max(), 200)
    survival = tail.survival(grid)
    assert (np.diff(survival) <= 1e-12).all() and survival[0] == 1.0 and survival[-1] > 0


def test_scores_are_bounded_and_deterministic(corpora):
    real, synthetic, _ = corpora
    a = FormulaicScorer().fit(real, synthetic).score_samples(synthetic)
    b = FormulaicScorer().fit(real, synthetic).score_samples(synthetic)
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


def test_held_in_names_a_fitted_set():
    rng = random.Random(7)
    scorer = FormulaicScorer().fit([natural(rng) for _ in range(20)],
                                   [natural(rng) for _ in range(20)])
    with pytest.raises(ValueError, match="held_in"):
        scorer.score_components(["text"], held_in="hold-out")


def test_stock_phrases_match_on_words_case_insensitively():
    rng = random.Random(1)
    real = [natural(rng) for _ in range(60)]
    synthetic = [f"Certainly! Here's one. {natural(rng)} As per your request." for _ in range(9)]
    synthetic += [natural(rng) for _ in range(51)]
    scorer = FormulaicScorer(stock_phrases=["certainly here's", "as per your request"])
    scorer.fit(real, synthetic)
    parts = scorer.score_components(["CERTAINLY!  Here\u2019s the plan.",
                                     "As per your   request, done.", "Certainly not; here is why."])
    assert parts["stock_phrases"].tolist() == [1, 1, 0]
    assert "certainly here's" in scorer.matches(["Certainly! Here's the plan."])[0]


def test_a_stock_phrase_the_real_records_use_does_not_count():
    rng = random.Random(2)
    real = [f"{natural(rng)} In conclusion, it was fine." for _ in range(50)]
    synthetic = [f"{natural(rng)} In conclusion, it was fine." for _ in range(20)] + \
        [f"{natural(rng)} I hope this helps!" for _ in range(20)]
    scorer = FormulaicScorer().fit(real, synthetic)
    counted = scorer.phrases_.set_index("phrase")["counts"]
    assert not counted["in conclusion"]
    assert counted["i hope this helps"]
    parts = scorer.score_components(["It rained. In conclusion, it was wet.",
                                     "It rained. I hope this helps!"])
    assert parts["stock_phrases"].tolist() == [0, 1]


def test_repetition_uses_the_gopher_statistics():
    rng = random.Random(3)
    real = [natural(rng) for _ in range(100)]
    scorer = FormulaicScorer().fit(real, [])
    sentence = "The quiet harbor was empty at dawn and nobody came."
    loop_text = " ".join([sentence] * 6)
    lines = "\n".join(["Buy now!", "Limited offer today."] * 4)
    parts = scorer.score_components([loop_text, lines, natural(rng)])
    assert parts["repetition_kind"][0].startswith(("duplicated", "top"))
    assert parts["repetition"][0] > scorer.threshold_ and parts["repetition"][1] > scorer.threshold_
    assert parts["repetition"][2] < scorer.threshold_
    assert parts["score"][2] < scorer.threshold_
    assert "duplicate" in scorer.matches([lines])[0]


def test_repetition_limits_rise_to_what_real_records_reach():
    rng = random.Random(4)
    chorus = "la la la sing along with me"
    real = [f"{natural(rng)} {chorus}. {chorus}. {chorus}." for _ in range(100)]
    scorer = FormulaicScorer().fit(real, [])
    assert scorer.repetition_limits_["top 3-gram"] > 0.18       # above the Gopher default
    song = f"{natural(rng)} {chorus}. {chorus}. {chorus}."
    assert scorer.score_components([song])["repetition"][0] < 0.25   # typical of real


def test_log_odds_needs_evidence_and_effect():
    delta, z, ratio = log_odds(np.array([300, 3, 100]), 1000, np.array([10, 0, 100]), 1000)
    assert z[0] > 3 and ratio[0] > 2           # over-represented with evidence
    assert z[1] < 3                            # three records are no evidence of a template
    assert abs(delta[2]) < 1e-9                # the same rate is no template


def test_fisher_exact_p_values_and_the_benjamini_hochberg_bar():
    # all 12 records of an n-gram synthetic, 600 vs 600: about 0.5 ** 12, exactly
    # C(600, 12) / C(1200, 12)
    log_p = fisher_log_p(np.array([12, 6, 3]), 600, np.array([0, 6, 0]), 600)
    exact = sum(np.log(600 - i) - np.log(1200 - i) for i in range(12))
    assert log_p[0] == pytest.approx(exact, rel=1e-9)
    assert log_p[1] == 0.0                     # an even split is no evidence
    assert np.exp(log_p[2]) > 0.1              # 3 to 0 is little
    # checked against the hypergeometric tail summed by hand
    from math import comb
    tail = sum(comb(12, x) * comb(988, 100 - x) for x in range(5, 13)) / comb(1000, 100)
    assert fisher_log_p(np.array([5]), 100, np.array([7]), 900)[0] == \
        pytest.approx(np.log(tail), rel=1e-9)
    p = np.log(np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]))
    assert benjamini_hochberg(p, 0.05) == pytest.approx(np.log(0.008))   # k = 2: 0.008 <= 2/8 * 0.05
    assert benjamini_hochberg(p[2:], 0.01) == -np.inf


def test_tokenize_keeps_records_apart():
    tokens = tokenize(["Here\u2019s ONE, two.", "", "two three\x00 four"])
    assert tokens.lengths.tolist() == [3, 0, 3]
    assert list(tokens.vocab[tokens.word]) == ["here's", "one", "two", "two", "three", "four"]
    bigrams, fits = ngram_hashes(tokens, 2)
    assert fits.tolist() == [True, True, False, True, True, False]
    # "two" ends record 0; "two three" opens record 2: a bigram never crosses records
    trigrams, _ = ngram_hashes(tokens, 3)
    again, _ = ngram_hashes(tokenize(["two three four"]), 2)
    assert bigrams[3] == again[0]            # same words, same hash, whatever came before


def test_default_stock_phrase_file_is_clean():
    phrases = load_stock_phrases()
    assert len(phrases) > 50
    assert all(p == p.strip() and not p.startswith("#") for p in phrases)
    assert len(set(phrases)) == len(phrases)


def test_stage_rejects_synthetic_only_and_explains(tmp_path, corpora):
    real, synthetic, truth = corpora
    real_frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(real))], "text": real})
    # a real record as templated as the worst synthetic ones must still be kept
    real_frame.loc[0, "text"] = "Certainly! Here's a summary. I hope this helps! " * 3
    synth_frame = pd.DataFrame({"id": [f"s{i}" for i in range(len(synthetic))],
                                "text": synthetic})
    result = run(real=real_frame, synthetic=synth_frame, out=tmp_path / "out",
                 config=Config(stages=["formulaic"]))
    decisions = result.decisions
    formulaic = decisions["reasons"].map(lambda r: "formulaic" in r).to_numpy()
    is_synth = (decisions["source"] == "synthetic").to_numpy()
    assert formulaic.sum() > 0 and not (formulaic & ~is_synth).any()
    assert decisions["formulaic"].notna().all()
    assert decisions.loc[formulaic, "formulaic_matches"].map(bool).all()
    assert decisions.loc[~formulaic, "formulaic_matches"].isna().all()
    note = decisions.loc[np.flatnonzero(formulaic)[0], "explanation"]
    assert note.startswith("formulaic ") and "> threshold " in note
    details = result.report["details"]["formulaic"]
    assert details["threshold"] == 0.5
    assert details["real_calibration_records"] == len(real)
    assert details["over_represented_ngrams"][0]["synthetic_records"] > 0
    assert details["synthetic_with_stock_phrase"] > details["real_with_stock_phrase"]
    assert set(details["scores"]["counts"]) == {"real", "synthetic"}
    assert [row["signal"] for row in details["signals"]] == ["template", "stock", "repetition"]
    html = to_html(result.report)
    assert "over_represented_ngrams" in html and "<svg" in html
    written = pd.read_parquet(tmp_path / "out" / "decisions.parquet")
    assert written["formulaic"].notna().all()


def test_stage_with_a_single_real_record_still_calibrates():
    synthetic = pd.DataFrame({"id": ["a", "b"], "text": ["I hope this helps! " * 5,
                                                         "A plain sentence about boats."]})
    real = pd.DataFrame({"id": ["r"], "text": ["A real sentence about a harbor."]})
    result = run(real=real, synthetic=synthetic, config=Config(stages=["formulaic"]))
    details = result.report["details"]["formulaic"]
    assert details["real_calibration_records"] == 1
    assert result.decisions.set_index("id")["reasons"].to_dict() == {
        "r": [], "a": ["formulaic"], "b": []}


class RecordingTasks:
    """A `tasks` (stage.SerialTasks' interface) that records the pieces it is given."""

    def __init__(self):
        self.items: list = []
        self.workers = 2

    def map(self, fn, items, shared=None):
        self.items.append(list(items))
        return [fn(item, shared) for item in items]


def test_runs_of_records_through_tasks_give_the_one_pass_fit(corpora, monkeypatch):
    """Counting and scoring in runs of records (the pieces the Ray engine runs as tasks):
    counts summed across runs and per-record scores give the fit and scores of one pass."""
    from synthgate.formulaic import scorer as module

    real, synth, _ = corpora
    one = FormulaicScorer().fit(real, synth)
    monkeypatch.setattr(module, "RUN", 97)
    tasks = RecordingTasks()
    runs = FormulaicScorer().fit(real, synth, tasks=tasks)
    # real counted, synthetic counted, real scored leave-one-out: runs of 97
    assert [len(r) for r in tasks.items[0]] == [97] * (len(real) // 97) + [len(real) % 97]
    assert len(tasks.items) == 3
    assert runs.calibration_.equals(one.calibration_)
    assert runs.signal_thresholds_ == one.signal_thresholds_
    assert runs.templates_.equals(one.templates_)
    assert runs.score_components(synth, "synthetic", tasks=tasks).equals(
        one.score_components(synth, "synthetic"))
