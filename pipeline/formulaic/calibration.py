"""Calibration on the real records: how rare a signal value is among them, and one bar for
all signals.

Each signal is calibrated on its own: `SignalTail` maps a raw value to the share of real
records expected at or above it (a conformal rank inside the bulk of the real values, an
exponential tail fitted to the top ones above it), so one signal's tail in the real data
cannot lift the bar of the others, the largest of a small sample is not the threshold, and a
signal that no real record shows still has a finite, data-sized bar. A record is formulaic
when some signal is rarer among real records than 1 - quantile**(1/3) (Sidak over the three
signals), which keeps the share of real-like records rejected at or under 1 - quantile. The
score maps that tail probability onto [0, 1] on a log scale: 0 = as common as it gets among
real records, 0.5 = the threshold, 1 = as far again beyond it.

`Signal` is what the three signal scorers share: the fitted tail and the bar in the signal's
own units (`threshold_`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .tokens import Tokens

# template, stock, repetition: the Sidak correction is over this many signals.
SIGNAL_COUNT = 3


@dataclass
class SignalTail:
    """How rare a signal value is among real records: `survival(x)` estimates the share of
    real-like records at or above x.

    Inside the bulk of the real values it is the conformal rank, (1 + #{real >= x}) / (n + 1),
    which counts the record being judged as one more draw. Above the (m+1)-th largest value,
    m = ceil(sqrt(n)) (above 0 when fewer values are positive), it is an exponential tail
    fitted to the values over it (their mean excess, with one pseudo-excess of `unit` so that
    a tail with no spread still has one): the largest of a small sample is then not a wall,
    a value twice as far out is rarer still, and a signal that no real record shows (all 0)
    starts at 1 / (n + 1) and falls by e every `unit`. 80 real records then cannot put the bar
    of a 1-in-300 event at "any trace"; 2000 can.
    """

    values: np.ndarray     # the real records' raw values, sorted
    start: float           # where the fitted tail starts (u)
    scale: float           # its mean excess (beta)
    level: float           # the survival just above `start`: (1 + #{real > u}) / (n + 1)

    @classmethod
    def fit(cls, values: np.ndarray, unit: float) -> "SignalTail":
        values = np.sort(np.asarray(values, dtype=float))
        n = len(values)
        m = math.ceil(math.sqrt(n)) if n else 0
        positive = int((values > 0).sum())
        start = float(values[n - m - 1]) if 0 < m < positive else 0.0
        start = max(start, 0.0)
        over = values[values > start]
        scale = (float((over - start).sum()) + unit) / (len(over) + 1)
        return cls(values=values, start=start, scale=scale, level=(len(over) + 1) / (n + 1))

    def survival(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        n = len(self.values)
        at_or_above = n - np.searchsorted(self.values, x, side="left")
        bulk = (at_or_above + 1) / (n + 1)
        tail = self.level * np.exp(-(x - self.start) / self.scale)
        return np.where(x > self.start, tail, np.minimum(bulk, 1.0))

    def value_at(self, p: float) -> float:
        """The raw value above which the survival falls under p: the signal's own threshold."""
        if p < self.level:
            return self.start + self.scale * math.log(self.level / p)
        n = len(self.values)       # inside the bulk: a real value with few enough above it
        if n == 0:
            return self.start
        i = min(n - 1, max(0, int(math.floor(n + 1 - p * (n + 1)))))
        return min(float(self.values[i]), self.start)


def tail_to_score(p: np.ndarray, quantile: float, signals: int = SIGNAL_COUNT) -> np.ndarray:
    """[0, 1] score of a signal whose survival among real records is p. Sidak-adjusted over
    the signals, the chance that a real-like record is this rare on some signal; on a log
    scale, 0.5 where that chance is 1 - quantile and 1 where it is (1 - quantile) ** 2."""
    p = np.clip(np.asarray(p, dtype=float), 1e-300, 1.0)
    adjusted = -np.expm1(signals * np.log1p(-np.minimum(p, 1 - 1e-16)))
    adjusted = np.clip(adjusted, 1e-300, 1.0)
    budget = -math.log(max(1.0 - quantile, 1e-300))
    return np.clip(-np.log(adjusted) / (2 * budget), 0.0, 1.0) + 0.0   # no -0.0


def per_signal_level(quantile: float, signals: int = SIGNAL_COUNT) -> float:
    """The survival under which one signal alone makes a record formulaic (Sidak)."""
    return 1.0 - quantile ** (1.0 / signals)


class Signal:
    """One formulaic signal, sklearn-shaped: learned from the fitted corpus (`learn`), then
    calibrated on the real records' raw values (`fit_tail`: `tail_`, and `threshold_`, the
    raw value above which this signal alone makes a record formulaic).

    The combining scorer (FormulaicScorer) tokenizes each chunk of the corpus once and hands
    the same `Tokens` to every signal: `counts` gathers a chunk's statistics, `learn` turns
    the chunks of both corpora into what the signal knows, and `raw_values` measures texts.
    `held_in` says whose counts to leave out (leave-one-out): None for a new text,
    "synthetic" or "real" for a record of that fitted set.
    """

    name = ""
    raw = ""          # the raw column the signal is calibrated on

    def begin(self) -> None:
        """Prepares what counting needs (called once, at the start of a fit)."""

    def counts(self, tokens: Tokens, texts: list[str], real: bool) -> Any:
        """The statistics of one chunk of the fitted corpus this signal learns from."""
        return None

    def learn(self, real: list, synthetic: list, n_real: int, n_synthetic: int,
              synthetic_texts: list[str]) -> None:
        """Learns from the per-chunk `counts` of the real and synthetic records."""

    def raw_values(self, tokens: Tokens, texts: list[str], held_in: str | None
                   ) -> dict[str, np.ndarray]:
        """The raw columns of each text."""
        raise NotImplementedError

    def unit(self, median_words: float) -> float:
        """The tail's unit where the real records give it no spread."""
        return 1.0

    def fit_tail(self, real_raw: np.ndarray, median_words: float, level: float) -> None:
        self.tail_ = SignalTail.fit(real_raw, self.unit(median_words))
        self.threshold_ = self.tail_.value_at(level)

    def score(self, raw: pd.DataFrame, quantile: float) -> np.ndarray:
        """Calibrated [0, 1] score of each row's raw value."""
        return tail_to_score(self.tail_.survival(raw[self.raw].to_numpy()), quantile)
