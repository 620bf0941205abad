"""The one normalization and tokenization every stage uses.

Two texts are "the same" for synthgate when they are equal after `normalize`: Unicode NFKC,
case folding, whitespace collapsed to single spaces. Exact dedup hashes that form, MinHash
shingles are cut from it, and the diversity metrics count its words.

A *word* has one definition, `words`: the whitespace-separated pieces of the normalized text,
where each character of a script written without spaces (Chinese, Japanese kana, Thai, Lao,
Khmer, Myanmar) and each emoji is a word of its own, or such a record could never reach a
minimum length or share a word 2-gram with another. The formulaic stage's n-gram statistics
read *lexical words* instead (`LEXICAL_WORD`: letters and digits with inner apostrophes, the
punctuation dropped), because "data," and "data" are one word to a template; that finer cut
lives beside the general one so the two are read together.
"""

from __future__ import annotations

import re
import unicodedata

# Scripts written without spaces between words, and emoji: each character is a word.
UNSPACED = re.compile(
    "([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f\u2600-\u27bf\U0001f000-\U0001faff])")

# Lexical words for n-gram statistics: letters and digits, inner apostrophes kept
# ("here's" is one word).
LEXICAL_WORD = re.compile(r"\w+(?:'\w+)*")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the text two exact duplicates share."""
    # str.split() splits on exactly the characters regex \s matches, and is several times
    # faster than re.sub on the hot path; ASCII text is its own NFKC form and casefolds as
    # it lowercases.
    if text.isascii():
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def split_unspaced(normalized: str) -> str:
    """The normalized text with each unspaced-script character and emoji set apart by
    spaces, so that `str.split(" ")` gives its words."""
    if normalized.isascii():
        return normalized
    return " ".join(UNSPACED.sub(r" \1 ", normalized).split())


def words(text: str) -> list[str]:
    """The words of a text (see the module docstring), normalized."""
    return split_unspaced(normalize(text)).split()


def count_words(text: str) -> int:
    """How many words a text has: what the minimum length and `mean_words` count."""
    if text.isascii():
        return len(text.split())
    return len(words(text))
