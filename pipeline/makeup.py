"""Text make-up statistics: what a text is made of, letter by letter and word by word.

The Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) quality rules measure the same
things with fixed bounds for English web text (at least 80% of words with a letter, mean word
length 3-10, at most 10% symbols, two stop words, no line of code); here the bounds are
learned from the real records by the off-distribution scorer, so a real set of verse, of
dictionary entries or of technical prose sets its own. The statistics:

    alpha_words       share of words with at least one letter
    stop_words        share of words among the real data's own most frequent words
                      (`learn_stop_words`: no list of any language is built in)
    word_length       mean characters per word
    longest_word      characters of the longest whitespace-separated token
    digits            share of the non-space characters that are digits
    punctuation       ... that are punctuation (Unicode P*)
    symbols           ... that are symbols (Unicode S*: math, currency, marks)
    uppercase         share of the letters that are upper case
    vowels            share of the Latin letters that are vowels (a e i o u y, accents
                      ignored); NaN without Latin letters
    whitespace        share of all characters that are whitespace
    code_log          per line, how many marks of code or logs it carries (`CODE_LOG_MARKS`:
                      a timestamp, a log level, key=value, an operator, a call, a closing
                      brace or semicolon at the end, an indented line), averaged over lines

One pass per text in Python over its characters (~100k short records/s would need numpy on
the bytes; ~20-40k/s here is far faster than the embedder the run waits for).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

STATISTICS = ("alpha_words", "stop_words", "word_length", "longest_word", "digits",
              "punctuation", "symbols", "uppercase", "vowels", "whitespace", "code_log")

# One regular expression per mark of code or log lines; a line scores how many of them it
# shows, so prose that mentions one operator scores 1 and a log line 3-5.
CODE_LOG_MARKS = {
    "timestamp": re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}|\b\d{1,2}:\d{2}:\d{2}\b"),
    "log level": re.compile(r"\b(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE|FATAL|CRITICAL)\b"),
    "key=value": re.compile(r"\b\w+=[\w\"'./:-]"),
    "operator": re.compile(r"==|!=|<=|>=|->|=>|::|&&|\|\||\+=|-=|\*\*|//|<<|>>"),
    "call": re.compile(r"\b[A-Za-z_][\w.]*\([^()]*\)"),
    "line end": re.compile(r"[;{}\[\]():]\s*$"),
    "indent": re.compile(r"^(?: {2,}|\t)\S"),
    "path or url": re.compile(r"(?:/[\w.-]+){2,}|\w+://"),
    "identifier": re.compile(r"\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*\b"),
}
_WORD_SPLIT = re.compile(r"\S+")
_STRIP = re.compile(r"^\W+|\W+$")
_VOWELS = frozenset("aeiouy")


def _words(text: str) -> list[str]:
    return text.split()


def _word_key(word: str) -> str:
    return _STRIP.sub("", word).casefold()


def learn_stop_words(texts: Sequence[str], top: int = 100) -> frozenset[str]:
    """The real data's own function words: the `top` words found in the most records
    (document frequency, case-folded, punctuation stripped). In English these are the, of,
    and, a...; in another language its own; in a technical set also its commonest terms,
    which is as intended: the signal is 'uses the words the real records use'."""
    df: Counter = Counter()
    for text in texts:
        if isinstance(text, str):
            df.update({k for w in _words(text) if (k := _word_key(w))})
    # ties broken by the word itself, so the set does not depend on input order
    ranked = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))
    return frozenset(w for w, c in ranked[:top] if c >= 2)


def code_log_marks(line: str) -> int:
    return sum(1 for pattern in CODE_LOG_MARKS.values() if pattern.search(line))


def statistics(texts: Sequence[str], stop_words: frozenset[str] = frozenset()
               ) -> pd.DataFrame:
    """One row per text, one column per statistic (see module doc)."""
    rows = np.full((len(texts), len(STATISTICS)), np.nan)
    for i, text in enumerate(texts):
        if isinstance(text, str):
            rows[i] = _one(text, stop_words)
    return pd.DataFrame(rows, columns=list(STATISTICS))


def _one(text: str, stop_words: frozenset[str]) -> list[float]:
    words = _words(text)
    n_words = max(len(words), 1)
    alpha_words = sum(1 for w in words if any(c.isalpha() for c in w)) / n_words
    stop = sum(1 for w in words if _word_key(w) in stop_words) / n_words
    lengths = [len(w) for w in words] or [0]
    digits = punct = symbols = letters = upper = latin = vowels = spaces = 0
    for c in text:
        if c.isalpha():
            letters += 1
            if c.isupper():
                upper += 1
            if c.isascii():
                latin += 1
                vowels += c.lower() in _VOWELS
            elif unicodedata.name(c, "").startswith("LATIN"):
                latin += 1
                vowels += unicodedata.normalize("NFD", c)[0].lower() in _VOWELS
        elif c.isspace():
            spaces += 1
        elif c.isdigit():
            digits += 1
        else:
            cat = unicodedata.category(c)
            if cat[0] == "P":
                punct += 1
            elif cat[0] == "S":
                symbols += 1
    visible = max(len(text) - spaces, 1)
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    code_log = sum(code_log_marks(line) for line in lines) / len(lines)
    return [alpha_words, stop, float(np.mean(lengths)), float(max(lengths)),
            digits / visible, punct / visible, symbols / visible,
            upper / letters if letters else 0.0,
            vowels / latin if latin else np.nan,
            spaces / max(len(text), 1), code_log]
