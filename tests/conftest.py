"""Shared test fixtures.

`hashed_ngram_embedder` is a small deterministic stand-in for the sentence-transformers
model: hashed character 3-grams and words, signed, L2-normalized. Texts that share wording
land close, another language, code or gibberish land far, and it embeds thousands of short
texts in well under a second, so embedding tests stay fast and need no model.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

_WORD = re.compile(r"\w+")


class HashedNgramEmbedder:
    """texts -> (n, dim) float32 unit rows from hashed character 3-grams and words."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls = 0
        self.texts_seen = 0

    def _features(self, text: str) -> list[str]:
        padded = f" {' '.join(text.lower().split())} "
        grams = [padded[i:i + 3] for i in range(len(padded) - 2)]
        return grams + [f"w:{w}" for w in _WORD.findall(text.lower())]

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


@pytest.fixture
def hashed_embedder() -> HashedNgramEmbedder:
    return HashedNgramEmbedder()


def real_sentences(min_words: int = 8, max_words: int = 40) -> list[str]:
    """Real human-written English that every Python ships: the sentences of the language
    reference help topics (pydoc_data), about 2,600 of them, deduplicated, in a fixed order."""
    import pydoc_data.topics as topics

    text = re.sub(r"\s+", " ", " ".join(topics.topics[k] for k in sorted(topics.topics)))
    seen, out = set(), []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        sentence = sentence.strip()
        key = sentence.lower()
        if min_words <= len(sentence.split()) <= max_words and key not in seen:
            seen.add(key)
            out.append(sentence)
    return out


@pytest.fixture(scope="session")
def python_docs_sentences() -> list[str]:
    return real_sentences()
