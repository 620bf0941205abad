"""The off-distribution signals, each on small corpora: make-up statistics, language, script,
the character n-gram model, k-NN distance and local density, and the scorer that calibrates
them on the real records and names the signal that fired."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import HashedNgramEmbedder, real_sentences
from synthgate.charlm import CharNgramLM
from synthgate.language import LanguageProfile, ScriptProfile, script_of
from synthgate.makeup import learn_stop_words, statistics
from synthgate.offdist import OffDistributionScorer

GERMAN = [
    "Der Hund schläft den ganzen Tag in der Sonne und träumt von einem großen Knochen.",
    "Wir haben gestern Abend im Garten gesessen und über die alten Zeiten gesprochen.",
    "Die Kinder spielen auf der Straße, weil das Wetter heute endlich wieder schön ist.",
    "Ich weiß nicht, ob ich morgen mit dem Zug oder mit dem Auto nach Hause fahre.",
]


@pytest.fixture(scope="module")
def prose() -> list[str]:
    return real_sentences(prose=True)


def test_stop_words_are_learned_from_the_real_records(prose):
    stop = learn_stop_words(prose, top=30)
    assert {"the", "of", "a", "is"} <= stop
    # another language's real data has its own
    assert "der" in learn_stop_words(GERMAN * 3, top=10)


def test_makeup_statistics_measure_what_they_say():
    rows = statistics(["The cat sat on the mat.", "a1b2c3 d4e5f6 0xdeadbeef",
                       "x = f(y);\n    return x == 3"], frozenset({"the", "on"}))
    prose, blob, code = rows.iloc[0], rows.iloc[1], rows.iloc[2]
    assert prose["alpha_words"] == 1.0 and prose["stop_words"] == pytest.approx(3 / 6)
    assert prose["digits"] == 0 and blob["digits"] == pytest.approx(7 / 22)
    assert prose["longest_word"] == 4 and blob["longest_word"] == 10
    assert prose["code_log"] == 0 and code["code_log"] >= 2
    assert 0.2 < prose["vowels"] < 0.5
    assert np.isnan(statistics(["12345 678"])["vowels"][0])   # no Latin letter, no value


def test_character_model_finds_gibberish_and_other_languages(prose):
    lm = CharNgramLM(order=4).fit(prose[:600])
    held = lm.score_samples(prose[600:700])
    rng = random.Random(0)
    mash = ["".join(rng.choice("qwxzkjvb") for _ in range(60)) for _ in range(5)]
    assert np.all(lm.score_samples(mash) > held.max())
    assert np.median(lm.score_samples(GERMAN)) > np.quantile(held, 0.95)
    assert np.isnan(lm.score_samples([""])[0])


def test_character_model_counts_match_a_direct_count():
    lm = CharNgramLM(order=2).fit(["abab", "ba"])
    # a text seen in training scores lower than its reverse, which breaks its bigrams
    fitted, unseen = lm.score_samples(["abab", "aabb"])
    assert fitted < unseen
    # Witten-Bell for 'b' after 'a': C(ab)=2, C(a)=2, T(a)=1 -> (2 + p_uni(b)) / 3
    logp, _ = lm.char_log2probs(["ab"])
    p_uni_b = (3 + 1) / (6 + 2 + 1)
    assert 2 ** logp[1] == pytest.approx((2 + 1 * p_uni_b) / 3)


def test_character_model_scores_each_text_alone_whatever_the_run(prose, monkeypatch):
    """Texts are scored in runs of about `_SCORE_CHARS` characters (bounded memory): a text
    gets the value it gets alone, bit for bit, however the runs fall."""
    from synthgate import charlm

    lm = CharNgramLM(order=4).fit(prose[:500])
    texts = [*prose[500:620], "", None, "x" * 700, "Ünïcödé 42"]
    whole = lm.score_samples(texts)
    alone = np.array([lm.score_samples([t])[0] for t in texts])
    np.testing.assert_array_equal(whole, alone)
    monkeypatch.setattr(charlm, "_SCORE_CHARS", 300)   # runs of a few texts, one for long ones
    np.testing.assert_array_equal(lm.score_samples(texts), whole)


class CountingTasks:
    """A `tasks` that runs the pieces in reverse order and records them."""

    def __init__(self):
        self.items: list = []

    def map(self, fn, items, shared=None):
        self.items.append(list(items))
        return [fn(item, shared) for item in reversed(items)][::-1]


def test_scorer_pieces_go_through_tasks_and_give_the_serial_fit(prose, monkeypatch):
    from synthgate import offdist

    monkeypatch.setattr(offdist, "RUN_TEXTS", 150)
    real, other = prose[:600], [*prose[600:700], *GERMAN]
    serial = OffDistributionScorer(folds=4).fit(real)
    tasks = CountingTasks()
    pieces = OffDistributionScorer(folds=4).fit(real, tasks=tasks)
    # language probabilities in runs, then the 4 folds and the all-records fit side by side
    assert [len(run) for run in tasks.items[0]] == [150] * 4
    assert tasks.items[1] == [0, 1, 2, 3, None]
    assert pieces.thresholds_ == serial.thresholds_
    assert serial.holdout_values_.equals(pieces.holdout_values_)
    assert serial.signal_values(other).equals(pieces.signal_values(other, tasks=tasks))
    assert [len(run) for run in tasks.items[-1]] == [104]


def test_language_profile_learns_the_real_mix(prose):
    profile = LanguageProfile().fit(prose[:300])
    assert max(profile.top_languages_, key=profile.top_languages_.get) == "en"
    english, german = profile.score_samples(prose[300:340]), profile.score_samples(GERMAN)
    assert german.min() > np.quantile(english, 0.95)
    # a German real set makes German the expected language
    de = LanguageProfile().fit(GERMAN * 5)
    assert de.score_samples(GERMAN[:1])[0] < de.score_samples(prose[:1])[0]


def test_script_profile_flags_letters_the_real_data_does_not_use(prose):
    assert script_of("a") == "LATIN" and script_of("д") == "CYRILLIC"
    profile = ScriptProfile().fit(prose[:200])
    latin, cyrillic = profile.score_samples(["plain words", "простые слова"])
    assert latin < 0.01 < cyrillic
    assert profile.foreign_scripts("простые слова") == ["CYRILLIC"]


@pytest.fixture(scope="module")
def fitted(prose):
    embedder = HashedNgramEmbedder()
    real = prose[:500]
    return OffDistributionScorer(quantile=0.99).fit(real, embedder(real)), embedder


def test_scorer_flags_each_kind_and_names_the_signal(fitted, prose):
    scorer, embedder = fitted
    rng = random.Random(1)
    junk = {
        "hex": rng.randbytes(40).hex(),
        "german": GERMAN[0],
        "log": "2024-03-01T12:00:01Z ERROR pid=123 req_id=9f8e latency_ms=5000 status=fail",
        "gibberish": " ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(7))
                              for _ in range(12)),
    }
    texts = list(junk.values())
    out = scorer.explain(texts, embedder(texts))
    assert out["off_distribution"].all(), out[["signal", "score"]]
    assert (out["score"] > 0.5).all()
    assert out.loc[1, "signal"] == "language"
    for explanation, signal in zip(out["explanation"], out["signal"]):
        assert explanation.startswith(signal + ":")
    # in-distribution text: real-like records not seen in the fit are mostly kept
    clean = prose[500:700]
    kept = ~scorer.explain(clean, embedder(clean))["off_distribution"]
    assert kept.mean() >= 0.97
    assert scorer.explain(clean[:5], embedder(clean[:5]))["signal"].isna().all()


def test_scorer_bars_come_from_the_real_data(prose):
    """A real set of log lines makes log lines normal and prose strange: nothing is fixed."""
    rng = random.Random(2)
    logs = [f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:1{rng.randint(0, 9)}"
            f":00Z {rng.choice(['INFO', 'WARN', 'ERROR'])} pid={rng.randint(100, 999)} "
            f"status={rng.choice(['ok', 'fail'])} latency_ms={rng.randint(1, 900)}"
            for _ in range(300)]
    scorer = OffDistributionScorer().fit(logs[:250])
    assert not scorer.explain(logs[250:])["off_distribution"].mean() > 0.05
    assert scorer.explain(prose[:20])["off_distribution"].mean() > 0.9
    assert scorer.thresholds_["code_log"] > 3        # learned: log lines carry many marks


def test_scorer_family_wise_level_and_sides(fitted):
    scorer, _ = fitted
    m = len(scorer.signals_)
    assert scorer.level_ == pytest.approx(1 - 0.99 ** (1 / m))
    assert {"word_length_low", "word_length_high", "knn_distance", "local_density",
            "char_lm", "language", "script"} <= set(scorer.signals_)
    assert scorer.thresholds_["word_length_low"] < scorer.thresholds_["word_length_high"]


def test_local_density_is_distance_over_the_neighbours_own(fitted, prose):
    scorer, embedder = fitted
    values = scorer.signal_values(prose[600:610], embedder(prose[600:610]))
    sims, idx = scorer.index_.search(embedder(prose[600:610]), scorer.k)
    kdist = 1 - sims[:, -1]
    assert np.allclose(values["knn_distance"], kdist, atol=1e-6)
    assert np.allclose(values["local_density"],
                       kdist / scorer.ref_kdist_[idx].mean(axis=1), rtol=1e-5)


def test_distributions_are_histogram_ready(fitted, prose):
    from synthgate.report import histogram

    scorer, embedder = fitted
    values = scorer.signal_values(prose[700:750], embedder(prose[700:750]))
    dists = scorer.distributions(values)
    assert set(dists) == set(scorer.raw_signals_)
    assert len(dists["char_lm"]["real hold-out"]) == 500
    shape = histogram(dists["char_lm"])
    assert set(shape["counts"]) == {"real hold-out", "synthetic"}


def test_scorer_rejects_bad_input(prose):
    with pytest.raises(ValueError, match="real records"):
        OffDistributionScorer().fit(prose[:3])
    with pytest.raises(ValueError, match="unknown signals"):
        OffDistributionScorer(signals=["nope"]).fit(prose[:50])
    with pytest.raises(ValueError, match="need real_emb"):
        OffDistributionScorer(signals=["knn_distance"]).fit(prose[:50])
