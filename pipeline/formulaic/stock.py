"""The stock-phrase signal: how many stock phrases of generated text a record carries.

The phrases are pipeline/data/stock_phrases.txt plus the user's, matched on words,
case-insensitively. A phrase does not count where real records use it at least as often as
the synthetic ones: "in conclusion" in a corpus of essays is the real style, not a generator's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .calibration import Signal
from .templates import HELD_IN
from .tokens import MULT, Tokens, cover, member, ngram_hashes, tokenize

STOCK_PHRASES_FILE = Path(__file__).resolve().parent.parent / "data" / "stock_phrases.txt"


def load_stock_phrases(path: str | Path = STOCK_PHRASES_FILE) -> list[str]:
    """The phrases of a stock-phrase file: one a line, # comments and blank lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def phrase_hashes(phrases: Sequence[str]) -> dict[int, dict[int, str]]:
    """{length in words: {hash of the phrase's words: phrase}}, hashed like ngram_hashes."""
    out: dict[int, dict[int, str]] = {}
    if not phrases:
        return out
    tokens = tokenize(list(phrases))
    for d, phrase in enumerate(phrases):
        a, b = tokens.starts[d], tokens.starts[d + 1]
        if b - a < 1:
            continue
        acc = tokens.hash[a]
        with np.errstate(over="ignore"):     # the hash wraps around by design
            for k in range(a + 1, b):
                acc = acc * MULT + tokens.hash[k]
        out.setdefault(int(b - a), {})[int(acc)] = phrase
    return out


def phrase_counts(s: np.ndarray, n_s: int, r: np.ndarray, n_r: int) -> np.ndarray:
    """Whether a stock phrase in s of n_s synthetic and r of n_r real records counts against a
    record: unless real records use it, and at least as often as the synthetic ones do."""
    s = np.asarray(s, dtype=float)
    r = np.asarray(r, dtype=float)
    synth_rate = s / n_s if n_s > 0 else np.zeros_like(s)
    real_rate = r / n_r if n_r > 0 else np.zeros_like(r)
    return (r == 0) | (synth_rate > real_rate)


class StockPhraseSignal(Signal):
    """How many distinct stock phrases that count a record carries (`phrases_`: each phrase
    with its record counts and whether it counts)."""

    name = "stock"
    raw = "stock_phrases"

    def __init__(self, phrases: Sequence[str] = ()):
        self.phrases = phrases

    def begin(self) -> None:
        self.phrases_by_length_ = phrase_hashes(list(self.phrases))

    def counts(self, tokens: Tokens, texts: list[str], real: bool) -> dict[int, int]:
        """{phrase hash: number of records of the chunk containing it}."""
        out: dict[int, int] = {}
        for length, by_hash in self.phrases_by_length_.items():
            wanted = np.sort(np.array(list(by_hash), dtype=np.uint64))
            g, fits = ngram_hashes(tokens, length)
            pos = np.flatnonzero(fits & member(g, wanted))
            pairs = np.unique(np.stack([tokens.doc[pos].astype(np.uint64), g[pos]]), axis=1)
            hashes, counts = np.unique(pairs[1], return_counts=True)
            out.update(zip(hashes.tolist(), counts.tolist()))
        return out

    def learn(self, real: list, synthetic: list, n_real: int, n_synthetic: int,
              synthetic_texts: list[str]) -> None:
        """Which stock phrases count, for a new text and, leave-one-out, for a synthetic and
        a real record of the fitted sets (see phrase_counts)."""
        real_counts, synth_counts = _summed(real), _summed(synthetic)
        n_s, n_r = n_synthetic, n_real
        rows = []
        self.active_phrases_: dict = {held: {} for held in HELD_IN}
        for length, by_hash in self.phrases_by_length_.items():
            keys = np.array(sorted(by_hash), dtype=np.uint64)
            s = np.array([synth_counts.get(int(h), 0) for h in keys], dtype=np.int64)
            r = np.array([real_counts.get(int(h), 0) for h in keys], dtype=np.int64)
            full = phrase_counts(s, n_s, r, n_r)
            loo_synth = phrase_counts(np.maximum(s - 1, 0), n_s - 1, r, n_r)
            loo_real = phrase_counts(s, n_s, np.maximum(r - 1, 0), n_r - 1)
            for held, chosen in ((None, full), ("synthetic", loo_synth), ("real", loo_real)):
                self.active_phrases_[held][length] = keys[chosen]
            rows += [{"phrase": by_hash[int(h)], "synthetic_records": int(a),
                      "real_records": int(b), "counts": bool(c)}
                     for h, a, b, c in zip(keys, s, r, full)]
        self.phrases_ = pd.DataFrame(rows, columns=["phrase", "synthetic_records",
                                                    "real_records", "counts"])

    def hits(self, tokens: Tokens, held_in: str | None
             ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """(doc, hash, length) arrays of the distinct stock phrases that count, per record.

        Longest phrases first, and a phrase found only inside a longer one found is not
        counted again: "i hope this helps" is one phrase, not two with "hope this helps".
        """
        covered = np.zeros(len(tokens.hash), dtype=bool)
        active = self.active_phrases_[held_in]
        for length in sorted(active, reverse=True):
            g, fits = ngram_hashes(tokens, length)
            pos = np.flatnonzero(fits & member(g, active[length]))
            pos = pos[~(covered[pos] & covered[pos + length - 1])]
            covered |= cover(len(covered), pos, length)
            pairs = np.unique(np.stack([tokens.doc[pos].astype(np.uint64), g[pos]]), axis=1)
            yield pairs[0].astype(np.int64), pairs[1], length

    def raw_values(self, tokens: Tokens, texts: list[str], held_in: str | None
                   ) -> dict[str, np.ndarray]:
        stock = np.zeros(tokens.n_docs, dtype=np.int64)
        for doc, _, _ in self.hits(tokens, held_in):
            stock += np.bincount(doc, minlength=tokens.n_docs)
        return {"stock_phrases": stock}


def _summed(parts: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in parts:
        for h, c in part.items():
            out[h] = out.get(h, 0) + c
    return out
