"""FormulaicScorer: the three signals combined into one score, calibrated on real records.

Calibration: what real records do is the yardstick (DESIGN.md section 5). Every real record
is scored against the others, leave-one-out: for each record, the n-gram and phrase counts
leave out its own words, so each real record is as independent of the statistics it is
scored with as a held-out one, and all of them calibrate, not a fifth. The synthetic records
of the fitted set are scored the same way (their own contribution to the counts left out), so
a natural synthetic record and a real record meet the same statistics: templates are chosen
from the synthetic records, and without this a natural synthetic record would carry the
chance templates it helped to select. (What chance leaves at the level of the whole set, an
n-gram that happens to be commoner in this synthetic sample, is bounded by the false
discovery rate of the tests, and shows as slightly more natural synthetic records than real
ones over the threshold: benchmarks/formulaic.py prints both.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..stage import SerialTasks
from .calibration import Signal, per_signal_level
from .repetition import RepetitionSignal
from .stock import StockPhraseSignal, load_stock_phrases
from .templates import HELD_IN, TemplateSignal
from .tokens import chunks, tokenize

SIGNALS = ("template", "stock", "repetition")
# The raw column each signal is calibrated on.
RAW = {"template": "template_share", "stock": "stock_phrases", "repetition": "repetition_ratio"}
# Records counted or scored per piece of work (`tasks.map`): every statistic is a sum over
# records (counts) or per record (scores), so pieces merge into what one pass gives.
RUN = 10_000


class FormulaicScorer:
    """Formulaicness of texts, 0 natural .. 1 boilerplate, calibrated on real records.

    `fit(real, synthetic)` fits the three signals (`signals_`: template n-grams the synthetic
    set over-uses against the real records, stock phrases that count, repetition limits), and
    each one's tail among the real records, every real record scored leave-one-out
    (`calibration_`, with the scores in `calibration_scores_`). `threshold_` is 0.5, where
    the rarest signal of a record is as rare among real records as the `quantile` allows
    (see tail_to_score); `signal_thresholds_` gives that bar in each signal's own units.

    `score_samples(texts)` scores new texts against the fitted counts. The fitted records
    themselves are scored with `score_components(texts, held_in="synthetic")` (or "real"):
    their own words are then left out of the counts, as a new text's would be, like the
    training scores of scikit-learn's LocalOutlierFactor (`negative_outlier_factor_`).
    """

    def __init__(self, quantile: float = 0.99, min_n: int = 2, max_n: int = 5,
                 min_z: float = 3.0, min_ratio: float = 2.0,
                 stock_phrases: Sequence[str] | None = None):
        self.quantile = quantile
        self.min_n = min_n
        self.max_n = max_n
        self.min_z = min_z
        self.min_ratio = min_ratio
        self.stock_phrases = stock_phrases

    # -- fitting

    def fit(self, real_texts: Sequence[str], synthetic_texts: Sequence[str] = (),
            tasks: SerialTasks | None = None) -> "FormulaicScorer":
        """`tasks` (`stage.SerialTasks`, or the Ray engine's) counts and scores runs of
        `RUN` records as independent pieces; the counts are summed (n-gram document
        frequencies, phrase counts) or gathered (repetition statistics) across runs."""
        tasks = tasks or SerialTasks()
        real_texts, synthetic_texts = list(real_texts), list(synthetic_texts)
        self.n_real_, self.n_synthetic_ = len(real_texts), len(synthetic_texts)
        phrases = list(self.stock_phrases) if self.stock_phrases is not None \
            else load_stock_phrases()
        self.signals_: dict[str, Signal] = {
            "template": TemplateSignal(self.quantile, self.min_n, self.max_n, self.min_z,
                                       self.min_ratio),
            "stock": StockPhraseSignal(phrases),
            "repetition": RepetitionSignal(self.quantile)}
        for signal in self.signals_.values():
            signal.begin()
        real, lengths = self._count(real_texts, True, tasks)
        synth, _ = self._count(synthetic_texts, False, tasks)
        for name, signal in self.signals_.items():
            signal.learn(real[name], synth[name], self.n_real_, self.n_synthetic_,
                         synthetic_texts)
        # The real records are tokenized again to be scored against what was learned (about
        # 0.05 s per 1,000 records): a run's tokens do not travel back from a Ray task.
        raw = self._raw_components(real_texts, "real", tasks)
        self._fit_tails(raw, lengths)
        return self

    def _count(self, texts: list[str], real: bool, tasks: SerialTasks
               ) -> tuple[dict[str, list], np.ndarray]:
        """Each signal's statistics of every run of records, and the words per record."""
        pieces = tasks.map(_count_run, _runs(texts), (self.signals_, real))
        counts = {name: [c[name] for c, _ in pieces] for name in self.signals_}
        lengths = np.concatenate([n for _, n in pieces]) if pieces \
            else np.zeros(0, np.int64)
        return counts, lengths

    def _fit_tails(self, raw: pd.DataFrame, real_lengths: np.ndarray) -> None:
        """Each signal's tail among the real records (scored leave-one-out), and the bar."""
        words = float(np.median(real_lengths)) if len(real_lengths) else 0.0
        level = per_signal_level(self.quantile)
        for signal in self.signals_.values():
            signal.fit_tail(raw[signal.raw].to_numpy(), words, level)
        self.signal_thresholds_ = {name: s.threshold_ for name, s in self.signals_.items()}
        self.threshold_ = 0.5
        self.calibration_ = self._calibrate(raw)
        self.calibration_scores_ = self.calibration_["score"].to_numpy()

    # What the report shows of the fitted signals.
    @property
    def templates_(self) -> pd.DataFrame:
        return self.signals_["template"].templates_

    @property
    def phrases_(self) -> pd.DataFrame:
        return self.signals_["stock"].phrases_

    @property
    def repetition_limits_(self) -> dict[str, float]:
        return self.signals_["repetition"].repetition_limits_

    # -- scoring

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """Formulaicness of each new text, 0 natural .. 1 boilerplate."""
        return self.score_components(texts)["score"].to_numpy()

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Score minus threshold: positive means formulaic."""
        return self.score_samples(texts) - self.threshold_

    def score_components(self, texts: Sequence[str], held_in: str | None = None,
                         tasks: SerialTasks | None = None) -> pd.DataFrame:
        """One row per text: the raw signals, each signal's calibrated [0, 1] score and the
        combined score (the largest of them).

        template_share: share of words inside templates; stock_phrases: how many distinct
        stock phrases that count; repetition_ratio: the Gopher statistic furthest over its
        limit, as statistic / limit, and repetition_kind names it. `held_in`: "synthetic" or
        "real" when the texts are records of that fitted set (each one's own words are then
        left out of the counts), None for new texts.
        """
        return self._calibrate(self._raw_components(list(texts), held_in, tasks))

    def _calibrate(self, raw: pd.DataFrame) -> pd.DataFrame:
        table = raw.copy()
        for name, signal in self.signals_.items():
            table[name] = signal.score(table, self.quantile)
        table["score"] = table[list(SIGNALS)].max(axis=1) if len(table) else 0.0
        return table

    def _raw_components(self, texts: list[str], held_in: str | None,
                        tasks: SerialTasks | None = None) -> pd.DataFrame:
        if held_in not in HELD_IN:
            raise ValueError(f"held_in must be one of {HELD_IN}, not {held_in!r}")
        parts = (tasks or SerialTasks()).map(_components_of_run, _runs(texts),
                                             (self, held_in))
        return pd.concat(parts, ignore_index=True) if parts \
            else self._chunk_components([], held_in)

    def _chunk_components(self, texts: list[str], held_in: str | None) -> pd.DataFrame:
        tokens = tokenize(texts)
        columns: dict[str, np.ndarray] = {}
        for signal in self.signals_.values():
            columns.update(signal.raw_values(tokens, texts, held_in))
        return pd.DataFrame(columns)

    # -- explaining

    def matches(self, texts: Sequence[str], limit: int = 3, held_in: str | None = None
                ) -> list[str]:
        """For each text, what made it formulaic: its longest template passages, the stock
        phrases that count, and the repetition statistic when that signal is over its bar."""
        texts = list(texts)
        out: list[str] = []
        for chunk in chunks(texts):
            out += self._chunk_matches(chunk, limit, held_in)
        return out

    def _chunk_matches(self, texts: list[str], limit: int, held_in: str | None) -> list[str]:
        template: TemplateSignal = self.signals_["template"]
        stock: StockPhraseSignal = self.signals_["stock"]
        repetition: RepetitionSignal = self.signals_["repetition"]
        tokens = tokenize(texts)
        covered = template.cover(tokens, held_in)
        total = len(covered)
        found: list[list[str]] = [[] for _ in texts]
        # runs of covered tokens, cut at record boundaries; the longest first in each record
        boundary = np.zeros(total + 1, dtype=bool)
        boundary[tokens.starts] = True
        padded = np.concatenate([[False], covered, [False]])
        run_starts = np.flatnonzero(covered & (~padded[:-2] | boundary[:-1]))
        run_ends = np.flatnonzero(covered & (~padded[2:] | boundary[1:])) + 1
        for d, minus_len, a in sorted(zip(tokens.doc[run_starts].tolist(),
                                          (run_starts - run_ends).tolist(),
                                          run_starts.tolist())):
            if len(found[d]) < limit:
                found[d].append(tokens.text(a, -minus_len))
        phrases = []
        for doc, hashes, length in stock.hits(tokens, held_in):
            by_hash = stock.phrases_by_length_[length]
            phrases += [(d, -length, by_hash[int(h)]) for d, h in zip(doc.tolist(),
                                                                     hashes.tolist())]
        for d, _, phrase in sorted(phrases):   # longest first
            inside = [i for i, f in enumerate(found[d]) if f in phrase]
            if any(phrase in f for f in found[d]):
                continue                        # already said by a longer passage
            if inside:                          # the phrase says more than a passage in it
                found[d][inside[0]] = phrase
            elif len(found[d]) < limit:
                found[d].append(phrase)
        ratio, kind, value = repetition.worst(texts, tokens)
        bar = self.signal_thresholds_["repetition"]
        out = []
        for d in range(len(texts)):
            parts = [f"'{f}'" for f in found[d]]
            if ratio[d] > bar:
                parts.append(f"{kind[d]} {value[d]:.2f} > "
                             f"{repetition.repetition_limits_[kind[d]] * bar:.2f}")
            out.append(", ".join(parts))
        return out


def _runs(texts: list[str]) -> list[list[str]]:
    return [texts[i:i + RUN] for i in range(0, len(texts), RUN)]


def _count_run(texts: list[str], shared: tuple) -> tuple[dict, np.ndarray]:
    """One run's statistics for every signal, and its records' word counts."""
    signals, real = shared
    tokens = tokenize(texts)
    return ({name: signal.counts(tokens, texts, real) for name, signal in signals.items()},
            tokens.lengths)


def _components_of_run(texts: list[str], shared: tuple) -> pd.DataFrame:
    scorer, held_in = shared
    return scorer._chunk_components(texts, held_in)
