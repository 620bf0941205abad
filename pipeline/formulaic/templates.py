"""The template signal: how much of a record lies inside word n-grams that the synthetic
records use far more often than the real ones.

No word list: it learns the templates of *this* generator against *this* real data, so a style
that the real data shares (riddles, recipes, legal boilerplate) cancels out. An n-gram is a
template when its document frequencies pass either of two tests, both with an effect size of
at least `min_ratio`: the smoothed log-odds z-score with an informative Dirichlet prior
(Monroe et al. 2008, "Fightin' Words"), which finds the common templates, or Fisher's exact
test with the Benjamini-Hochberg false discovery rate 1 - `quantile` over the n-grams whose
counts could reach it at all (the restriction of Gilbert 2005 for discrete tests), which finds
the rare ones: 12 of 600 synthetic records sharing a frame that none of 600 real records uses.
The evidence bar of the second test comes from the counts: how lopsided a split must be, given
the sizes of the two sets, and how many n-grams were in the running; absence from a real set
much smaller than the synthetic one says little, and then no rare template passes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .calibration import Signal
from .evidence import benjamini_hochberg, fisher_log_p, fisher_log_p_min, log_factorials, log_odds
from .tokens import (CHUNK, Tokens, cover, document_frequencies, lookup, member, merge_counts,
                     ngram_hashes, per_doc_sum, tokenize)

# Who is being scored: a new text (None), or one of the fitted records, whose own words are
# then left out of the counts it is scored with.
HELD_IN = (None, "synthetic", "real")


class TemplateSignal(Signal):
    """Share of a record's words inside the n-grams (n = min_n..max_n) that the synthetic
    records over-use against the real ones (`templates_`, `template_hashes_`)."""

    name = "template"
    raw = "template_share"

    def __init__(self, quantile: float = 0.99, min_n: int = 2, max_n: int = 5,
                 min_z: float = 3.0, min_ratio: float = 2.0):
        self.quantile = quantile
        self.min_n = min_n
        self.max_n = max_n
        self.min_z = min_z
        self.min_ratio = min_ratio

    def counts(self, tokens: Tokens, texts: list[str], real: bool) -> dict:
        """{n: (n-gram hashes, document frequencies)} of one chunk."""
        return {n: document_frequencies(tokens, n) for n in range(self.min_n, self.max_n + 1)}

    def unit(self, median_words: float) -> float:
        return min(1.0, self.min_n / max(median_words, 1.0))   # one n-gram of a typical record

    def learn(self, real: list, synthetic: list, n_real: int, n_synthetic: int,
              synthetic_texts: list[str]) -> None:
        """The n-grams the synthetic records use far more often than the real ones, for a new
        text and, leave-one-out, for a synthetic and for a real record of the fitted sets."""
        ns = range(self.min_n, self.max_n + 1)
        real_df = {n: merge_counts([part[n] for part in real]) for n in ns}
        synth_df = {n: merge_counts([part[n] for part in synthetic]) for n in ns}
        n_s, n_r = n_synthetic, n_real
        self.template_hashes_: dict = {held: {n: np.zeros(0, np.uint64) for n in real_df}
                                       for held in HELD_IN}
        self.log_p_cut_ = -math.inf
        self.log_p_cuts_ = {held: -math.inf for held in HELD_IN}
        self.testable_ngrams_ = 0
        columns = ["n", "hash", "synthetic_records", "real_records", "log_odds", "z",
                   "p_value"]
        if n_s < 2 or n_r < 1:
            self.templates_ = pd.DataFrame({c: pd.Series(dtype=object if c == "ngram" else float)
                                            for c in [*columns, "ngram"]})
            return
        lf = log_factorials(n_s + n_r)
        lengths, hashes, y_s, y_r = [], [], [], []
        for n, (hs, ys) in synth_df.items():
            keep = ys >= 2                       # one record cannot show a template
            hr, yr = real_df[n]
            lengths.append(np.full(int(keep.sum()), n))
            hashes.append(hs[keep])
            y_s.append(ys[keep])
            y_r.append(lookup(hr, yr, hs[keep]))
        n_of, hashes = np.concatenate(lengths), np.concatenate(hashes)
        y_s, y_r = np.concatenate(y_s), np.concatenate(y_r)

        # Each record is judged on the others' counts (leave-one-out): a synthetic record of
        # the fitted set on the other synthetic records, a real one on the other real ones.
        versions = {None: (y_s, n_s, y_r, n_r),
                    "synthetic": (y_s - 1, n_s - 1, y_r, n_r),
                    "real": (y_s, n_s, np.maximum(y_r - 1, 0), n_r - 1)}
        self.log_p_cuts_ = {}
        chosen = {}
        for held, counts in versions.items():
            chosen[held], self.log_p_cuts_[held], tests = self._templates_among(*counts, lf)
            if held is None:
                self.testable_ngrams_ = tests
        self.log_p_cut_ = self.log_p_cuts_[None]
        for held in HELD_IN:
            for n in self.template_hashes_[held]:
                self.template_hashes_[held][n] = np.sort(hashes[chosen[held] & (n_of == n)])

        full = chosen[None]
        delta, z, _ = log_odds(y_s[full], n_s, y_r[full], n_r)
        exact = fisher_log_p(y_s[full], n_s, y_r[full], n_r, lf)
        table = pd.DataFrame({"n": n_of[full], "hash": hashes[full],
                              "synthetic_records": y_s[full], "real_records": y_r[full],
                              "log_odds": delta, "z": z, "p_value": np.exp(exact)})
        table["ngram"] = pd.Series(_ngram_texts(synthetic_texts, table), dtype=object)
        table["_log_p"] = exact
        self.templates_ = table.sort_values(["_log_p", "z", "ngram"],
                                            ascending=[True, False, True],
                                            ignore_index=True).drop(columns="_log_p")

    def _templates_among(self, y_s: np.ndarray, n_s: int, y_r: np.ndarray, n_r: int,
                         lf: np.ndarray) -> tuple[np.ndarray, float, int]:
        """(is template, log p-value bar, tests) for n-grams in y_s of n_s synthetic and y_r of
        n_r real records. Common templates pass the log-odds z-test; rare ones Fisher's exact
        test at the Benjamini-Hochberg bar, the false discovery rate being 1 - quantile, over
        the n-grams whose total count could reach it at all (Gilbert 2005): in 3 records
        split 3 to 0 between sets of the same size, an n-gram cannot, however lopsided. Both
        need the effect size `min_ratio`, and two records."""
        none = np.zeros(len(y_s), dtype=bool)
        if n_s < 2 or n_r < 1 or len(y_s) == 0:
            return none, -math.inf, 0
        _, z, ratio = log_odds(y_s, n_s, y_r, n_r)
        over = (y_s >= 2) & (ratio >= self.min_ratio)
        alpha = 1.0 - self.quantile
        if alpha <= 0:
            return over & (z >= self.min_z), -math.inf, 0
        testable = (fisher_log_p_min(y_s, n_s, y_r, n_r, lf) <= math.log(alpha)) & (y_s >= 2)
        log_p = np.zeros(len(y_s))
        log_p[testable] = fisher_log_p(y_s[testable], n_s, y_r[testable], n_r, lf,
                                       stop_above=alpha)
        cut = benjamini_hochberg(log_p[testable], alpha)
        return over & ((z >= self.min_z) | (log_p <= cut)), cut, int(testable.sum())

    def cover(self, tokens: Tokens, held_in: str | None) -> np.ndarray:
        """A mask over tokens: True inside a template n-gram."""
        covered = np.zeros(len(tokens.hash), dtype=bool)
        for n, hashes in self.template_hashes_[held_in].items():
            if len(hashes) == 0:
                continue
            g, fits = ngram_hashes(tokens, n)
            covered |= cover(len(covered), np.flatnonzero(fits & member(g, hashes)), n)
        return covered

    def raw_values(self, tokens: Tokens, texts: list[str], held_in: str | None
                   ) -> dict[str, np.ndarray]:
        lengths = tokens.lengths
        share = np.divide(per_doc_sum(tokens, self.cover(tokens, held_in)), lengths,
                          out=np.zeros(tokens.n_docs), where=lengths > 0)
        return {"template_share": share}


def _ngram_texts(texts: list[str], table: pd.DataFrame) -> list[str]:
    """The words of each template n-gram, from its first occurrence in the synthetic set:
    read in growing slices until every one is found, which is early for n-grams that
    many records share."""
    found: dict[tuple[int, int], str] = {}
    wanted = {int(n): np.sort(h.to_numpy(np.uint64)) for n, h in table.groupby("n")["hash"]}
    start, size = 0, 2_000
    while len(found) < len(table) and start < len(texts):
        chunk = list(texts[start:start + size])
        start, size = start + size, min(2 * size, CHUNK)
        tokens = tokenize(chunk)
        for n, hashes in wanted.items():
            g, fits = ngram_hashes(tokens, n)
            pos = np.flatnonzero(fits & member(g, hashes))
            uniq, first = np.unique(g[pos], return_index=True)
            for h, p in zip(uniq.tolist(), pos[first].tolist()):
                found.setdefault((n, h), tokens.text(p, n))
    return [found.get((int(n), int(h)), "") for n, h in zip(table["n"], table["hash"])]
