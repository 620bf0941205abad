"""Off-distribution: a synthetic record unlike the real data on any one of several signals.

One distance in embedding space cannot do it alone: under a sentence encoder, gibberish, a
hex blob, a log line or a German proverb can sit as far from its nearest real record as real
records of a varied set sit from each other (issue 10). Each kind of junk is plain on some
other axis, so the scorer measures several, each against the real data:

    make-up      the statistics of `makeup` (share of words with letters, the real data's own
                 stop-word share, mean and longest word, digits, punctuation, symbols, upper
                 case, vowels, whitespace, code/log marks), low or high or both
    language     surprise of the text's language under the real language mix (`language`)
    script       surprise of its letters' scripts under the real script mix
    char_lm      bits per character under a character n-gram model of the real records
                 (`charlm`, as CCNet ranks text by a reference model's perplexity)
    knn_distance cosine distance to the k-th nearest real record (with embeddings)
    local_density that distance over the mean k-distance of those k real neighbours (LOF-
                 style: far from real records that are themselves close to their own
                 neighbours is stranger than far from a sparse region's)

Calibration (DESIGN.md section 5): every real record is scored as a held-out one would be:
the text signals by k-fold cross-fitting (the stop words, language and script mix and the
n-gram model of fold f are learned on the other folds), the embedding signals leave-one-out
(each real record's neighbours are the other real records). All real records calibrate, not a
fifth of them: with a 20% hold-out alone the bars of a few hundred records were noisy enough
to reject 1-2% of clean records. The models that score synthetic records are learned on all
real records.

`SignalTail` (the formulaic stage's) turns a value into the share of real-like records at least
that extreme: a conformal rank inside the bulk, an exponential tail fitted to the top values
beyond it. A two-sided statistic is two signals, one per side, each measured from the median
of the real records' held-out values. A record is off-distribution when some signal's tail probability falls under
the Sidak level 1 - quantile**(1/m) for the m signals in use, so a real-like record is
rejected with probability at most 1 - quantile whichever signal would fire. The score maps the
smallest tail probability onto [0, 1] as the formulaic score does: 0.5 is the bar.

The decision names the signal that fired (the rarest one) and its value against its bar;
`distributions` gives each signal's raw values for the real hold-out and for any texts, ready
for `report.histogram`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .charlm import CharNgramLM
from .neighbours import NeighbourIndex, unit_rows
from .formulaic.calibration import SignalTail, per_signal_level, tail_to_score
from .language import LanguageProfile, ScriptProfile
from .makeup import STATISTICS, learn_stop_words, statistics
from .stage import SerialTasks

# Texts measured per piece of work (`tasks.map`): the text signals are per-text Python and
# numpy over the piece's characters, so a piece bounds the memory and is what a Ray worker
# takes at a time.
RUN_TEXTS = 2_000

HIGH, LOW = "high", "low"
# Which side of each raw signal is strange. Two-sided ones become two signals.
SIDES: dict[str, tuple[str, ...]] = {
    "alpha_words": (LOW,), "stop_words": (LOW,), "word_length": (LOW, HIGH),
    "longest_word": (HIGH,), "digits": (HIGH,), "punctuation": (HIGH,), "symbols": (HIGH,),
    "uppercase": (HIGH,), "vowels": (LOW, HIGH), "whitespace": (LOW, HIGH),
    "code_log": (HIGH,), "language": (HIGH,), "script": (HIGH,), "char_lm": (HIGH,),
    "knn_distance": (HIGH,), "local_density": (HIGH,),
}
TEXT_SIGNALS = (*STATISTICS, "language", "script", "char_lm")
EMBEDDING_SIGNALS = ("knn_distance", "local_density")
# What each raw signal measures, for explanations and the report.
DESCRIPTIONS = {
    "alpha_words": "share of words with a letter", "stop_words": "share of common real words",
    "word_length": "mean word length", "longest_word": "longest token (characters)",
    "digits": "share of digits", "punctuation": "share of punctuation",
    "symbols": "share of symbols", "uppercase": "share of upper-case letters",
    "vowels": "share of vowels among Latin letters", "whitespace": "share of whitespace",
    "code_log": "code/log marks per line", "language": "language surprise (nats)",
    "script": "script surprise (nats)", "char_lm": "character model bits per character",
    "knn_distance": "cosine distance to the k-th nearest real record",
    "local_density": "k-NN distance / its real neighbours' own",
}


def signal_name(raw: str, side: str) -> str:
    """The name of one side of a raw signal, as reported: `word_length_low`, `char_lm`."""
    return raw if SIDES[raw] == (HIGH,) else f"{raw}_{side}"


@dataclass
class _Side:
    raw: str
    side: str
    centre: float          # the hold-out median the side is measured from
    tail: SignalTail
    threshold: float       # the raw value beyond which this side fires

    def excess(self, x: np.ndarray) -> np.ndarray:
        return x - self.centre if self.side == HIGH else self.centre - x


class OffDistributionScorer:
    """Several calibrated signals, any one of which can flag a record (see module doc).

    `fit(real_texts, real_emb=None)`; with embeddings the two embedding signals join the
    text signals. After fit: `signals_` (the names of the signal sides in use), `level_` (the
    per-signal tail probability that fires), `thresholds_` ({signal: raw bar}), `tails_`
    ({signal: SignalTail}), `holdout_values_` (raw values of every real record scored as a
    held-out one), `stop_words_`, `language_`, `script_`, `lm_`, `threshold_` (0.5, the
    bar of `score_samples`).
    """

    def __init__(self, quantile: float = 0.99, k: int = 5, lm_order: int = 4,
                 stop_words: int = 100, folds: int = 5, seed: int = 0,
                 signals: Sequence[str] | None = None):
        self.quantile = quantile
        self.folds = folds
        self.seed = seed
        self.k = k
        self.lm_order = lm_order
        self.stop_words = stop_words
        self.signals = signals

    # -- fitting

    def fit(self, real_texts: Sequence[str], real_emb: np.ndarray | None = None,
            tasks: SerialTasks | None = None) -> "OffDistributionScorer":
        """Learns every signal from the real records and calibrates each on real records it
        did not learn from: the text signals by `folds`-fold cross-fitting (the models of
        fold f are fitted on the other folds and score fold f), the embedding signals
        leave-one-out (each real record's neighbours are the other real records). Every real
        record is then a held-out draw, and all of them calibrate. The models that score new
        texts are fitted on all real records: a synthetic record meets at least as much real
        data as a held-out one did, so the bars err toward keeping.

        `tasks` (`stage.SerialTasks`, or the Ray engine's) runs the independent pieces: the
        language probabilities of runs of texts, then the folds and the all-records fit
        side by side; each piece gives what it gives alone, so the fit is the same."""
        tasks = tasks or SerialTasks()
        if not 0.5 <= self.quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), not {self.quantile}")
        texts = [t if isinstance(t, str) else "" for t in real_texts]
        n = len(texts)
        if n < max(2 * self.folds, self.k + 2):
            raise ValueError(f"need at least {max(2 * self.folds, self.k + 2)} real records "
                             f"to calibrate, got {n}")
        with_emb = real_emb is not None
        wanted = self.signals or (TEXT_SIGNALS + (EMBEDDING_SIGNALS if with_emb else ()))
        unknown = set(wanted) - set(SIDES)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {sorted(SIDES)}")
        if set(wanted) & set(EMBEDDING_SIGNALS) and not with_emb:
            raise ValueError("embedding signals need real_emb")
        if with_emb and len(real_emb) != n:
            raise ValueError(f"real_emb has {len(real_emb)} rows for {n} texts")
        self.raw_signals_ = [s for s in SIDES if s in wanted]

        lang_probs = np.concatenate(tasks.map(_language_probabilities, _runs(texts)))
        fold = np.random.default_rng(self.seed).permutation(n) % self.folds
        # the folds' held-out values and (piece None) the models fitted on every record
        pieces = tasks.map(_fit_piece, [*range(self.folds), None],
                           (self, texts, lang_probs, fold))
        parts = []
        for f, (values, language) in enumerate(pieces[:-1]):
            test = np.flatnonzero(fold == f)
            values["language"], values["language_detected"] = language.score_and_predict(
                [texts[i] for i in test], lang_probs[test])   # a product: here, not in a task
            parts.append(values.set_index(pd.Index(test)))
        calibration = pd.concat(parts).sort_index()
        (self.stop_words_, self.language_, self.script_, self.lm_) = pieces[-1]
        if with_emb:
            emb = unit_rows(real_emb)
            self.index_ = NeighbourIndex(emb)
            sims, idx = self.index_.search(emb, self.k, exclude=np.arange(n))
            # each real record's own k-distance, to the other real records
            self.ref_kdist_ = 1.0 - sims[:, self.k - 1].astype(float)
            calibration["knn_distance"] = self.ref_kdist_
            own = self.ref_kdist_[np.maximum(idx, 0)].mean(axis=1)
            calibration["local_density"] = self.ref_kdist_ / np.maximum(own, 1e-6)
        self.holdout_values_ = calibration[[*self.raw_signals_, "language_detected"]]
        self._fit_tails(self.holdout_values_, texts)
        return self

    def _fit_text_models(self, texts: list[str], lang_probs: np.ndarray) -> tuple:
        return (learn_stop_words(texts, self.stop_words),
                LanguageProfile().fit(texts, lang_probs), ScriptProfile().fit(texts),
                CharNgramLM(self.lm_order).fit(texts))

    def _fit_tails(self, values: pd.DataFrame, reference_texts: list[str]) -> None:
        sides = [(raw, side) for raw in self.raw_signals_ for side in SIDES[raw]]
        self.signals_ = [signal_name(raw, side) for raw, side in sides]
        self.level_ = per_signal_level(self.quantile, len(sides))
        self.threshold_ = 0.5
        units = self._units(values, reference_texts)
        self._sides: dict[str, _Side] = {}
        for (raw, side), name in zip(sides, self.signals_):
            x = values[raw].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            centre = float(np.median(x)) if len(x) else 0.0
            probe = _Side(raw, side, centre, None, 0.0)            # type: ignore[arg-type]
            tail = SignalTail.fit(probe.excess(x), units[raw])
            bar = tail.value_at(self.level_)
            self._sides[name] = _Side(raw, side, centre, tail,
                                      centre + bar if side == HIGH else centre - bar)
        self.tails_ = {name: s.tail for name, s in self._sides.items()}
        self.thresholds_ = {name: s.threshold for name, s in self._sides.items()}

    @staticmethod
    def _units(values: pd.DataFrame, reference_texts: list[str]) -> dict[str, float]:
        """The step of each signal's tail where the hold-out shows no spread: one character,
        word or letter of a typical real record, one mark, a tenth of a bit; never less than
        the signal's own robust spread."""
        chars = float(np.median([len(t) for t in reference_texts])) or 1.0
        words = float(np.median([len(t.split()) for t in reference_texts])) or 1.0
        notch = {"alpha_words": 1 / words, "stop_words": 1 / words, "word_length": 1 / words,
                 "longest_word": 1.0, "digits": 1 / chars, "punctuation": 1 / chars,
                 "symbols": 1 / chars, "uppercase": 1 / chars, "vowels": 1 / chars,
                 "whitespace": 1 / chars, "code_log": 1.0, "language": 0.1, "script": 0.1,
                 "char_lm": 0.1, "knn_distance": 0.01, "local_density": 0.05}
        units = {}
        for raw in values.columns.drop("language_detected"):
            x = values[raw].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            spread = float(np.subtract(*np.percentile(x, [75, 25]))) / 1.349 if len(x) else 0.0
            units[raw] = max(notch[raw], spread)
        return units

    # -- scoring

    def signal_values(self, texts: Sequence[str], emb: np.ndarray | None = None,
                      tasks: SerialTasks | None = None) -> pd.DataFrame:
        """One row per text, the raw value of each raw signal in use (NaN: no value, e.g.
        vowels of a text without Latin letters; such a signal cannot fire). The text signals
        are measured in runs of `RUN_TEXTS` texts through `tasks`."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        models = (self.stop_words_, self.language_, self.script_, self.lm_)
        pieces = (tasks or SerialTasks()).map(_text_values_of_run, _runs(texts), models)
        out = pd.concat([values for values, _ in pieces], ignore_index=True) if pieces \
            else _text_signals(models, texts)
        probs = np.concatenate([p for _, p in pieces]) if pieces else None
        # the language score is one matrix product over every text, as one pass made it
        # (a product's last bits depend on the matrix's shape)
        out["language"], out["language_detected"] = self.language_.score_and_predict(
            texts, probs)
        wanted = [s for s in self.raw_signals_ if s in EMBEDDING_SIGNALS]
        if wanted:
            if emb is None or len(emb) != len(texts):
                raise ValueError("this scorer was fitted with embeddings: pass one row of "
                                 "`emb` per text")
            sims, idx = self.index_.search(unit_rows(emb), self.k)
            kdist = 1.0 - sims[:, self.k - 1].astype(float)
            own = self.ref_kdist_[np.maximum(idx, 0)].mean(axis=1)
            out["knn_distance"] = kdist
            out["local_density"] = kdist / np.maximum(own, 1e-6)
        return out[[*self.raw_signals_, "language_detected"]]

    def tail_probabilities(self, values: pd.DataFrame) -> pd.DataFrame:
        """Each signal's tail probability under the real hold-out (1 where no value)."""
        out = {}
        for name, s in self._sides.items():
            x = values[s.raw].to_numpy(dtype=float)
            p = s.tail.survival(np.where(np.isfinite(x), s.excess(x), -np.inf))
            out[name] = np.where(np.isfinite(x), np.minimum(p, 1.0), 1.0)
        return pd.DataFrame(out, index=values.index)

    def explain(self, texts: Sequence[str], emb: np.ndarray | None = None) -> pd.DataFrame:
        """One row per text: `score` (0..1, 0.5 the bar), `off_distribution` (bool), `signal`
        (the rarest signal when off-distribution, else None), `fired` (every signal past its
        bar), `explanation` (None when in distribution), the raw values and `p_<signal>`."""
        values = self.signal_values(texts, emb)
        return self.decide(values)

    def decide(self, values: pd.DataFrame) -> pd.DataFrame:
        """`explain` from raw values already measured (`signal_values`)."""
        probs = self.tail_probabilities(values)
        p = probs.to_numpy()
        n = len(values)
        rarest = p.argmin(axis=1) if p.size else np.zeros(n, dtype=int)
        p_min = p[np.arange(n), rarest] if p.size else np.ones(n)
        flagged = p_min < self.level_
        names = self.signals_
        out = values.copy()
        out["score"] = tail_to_score(p_min, self.quantile, len(names)) if n else []
        out["off_distribution"] = flagged
        out["signal"] = [names[r] if f else None for r, f in zip(rarest, flagged)]
        out["fired"] = [[names[j] for j in np.flatnonzero(row < self.level_)] for row in p]
        out["explanation"] = [self._explain(values.iloc[i], names[rarest[i]], p_min[i])
                              if flagged[i] else None for i in range(n)]
        for name in names:
            out[f"p_{name}"] = probs[name].to_numpy()
        return out

    def _explain(self, row: pd.Series, name: str, p: float) -> str:
        s = self._sides[name]
        value = float(row[s.raw])
        op = ">" if s.side == HIGH else "<"
        text = (f"{DESCRIPTIONS[s.raw]} {value:.3g} {op} {s.threshold:.3g}, which about "
                f"1 in {_one_in(p)} real records reach")
        if s.raw == "language":
            top = ", ".join(f"{k} {v:.2f}" for k, v in
                            list(self.language_.top_languages_.items())[:3])
            text += f" (detected {row['language_detected']}; real: {top})"
        return f"{name}: {text}"

    def score_samples(self, texts: Sequence[str], emb: np.ndarray | None = None
                      ) -> np.ndarray:
        """0 (as common as real records get) .. 1; above 0.5 is off-distribution."""
        return self.explain(texts, emb)["score"].to_numpy()

    def decision_function(self, texts: Sequence[str], emb: np.ndarray | None = None
                          ) -> np.ndarray:
        return self.score_samples(texts, emb) - self.threshold_

    def distributions(self, values: pd.DataFrame, label: str = "synthetic"
                      ) -> dict[str, dict[str, np.ndarray]]:
        """{raw signal: {"real hold-out": values, label: values}}: each signal's real vs
        other distribution, NaN dropped, ready for `report.histogram`."""
        out = {}
        for raw in self.raw_signals_:
            pair = {"real hold-out": self.holdout_values_[raw].to_numpy(dtype=float),
                    label: values[raw].to_numpy(dtype=float)}
            out[raw] = {k: v[np.isfinite(v)] for k, v in pair.items()}
        return out


def _runs(texts: list[str]) -> list[list[str]]:
    return [texts[i:i + RUN_TEXTS] for i in range(0, len(texts), RUN_TEXTS)]


def _language_probabilities(texts: list[str], _shared=None) -> np.ndarray:
    return LanguageProfile().probabilities(texts)


def _fit_piece(fold: int | None, shared: tuple):
    """One piece of `OffDistributionScorer.fit`: fold f's held-out text signals under the
    models fitted on the other folds, with those folds' language mix (the language score, a
    matrix product, is made in the driver), or (fold None) the models fitted on every real
    record."""
    scorer, texts, lang_probs, folds = shared
    if fold is None:
        return scorer._fit_text_models(texts, lang_probs)
    train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    models = scorer._fit_text_models([texts[i] for i in train], lang_probs[train])
    return _text_signals(models, [texts[i] for i in test]), models[1]


def _text_signals(models: tuple, texts: list[str]) -> pd.DataFrame:
    """The text signals each text gives alone: make-up, script, character model."""
    stop_words, _, script, lm = models
    out = statistics(texts, stop_words)
    out["script"] = script.score_samples(texts)
    out["char_lm"] = lm.score_samples(texts)
    return out


def _text_values_of_run(texts: list[str], models: tuple) -> tuple[pd.DataFrame, np.ndarray]:
    """A run's text signals and its language probabilities (scored in the driver)."""
    return _text_signals(models, texts), models[1].probabilities(texts)


def _one_in(p: float) -> str:
    if p <= 0:
        return "∞"
    n = 1.0 / p
    return f"{n:,.0f}" if n < 1e6 else f"{n:.1e}"
