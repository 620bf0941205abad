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

_TOKEN = re.compile(r"\w+|[^\w\s]+")


class HashedNgramEmbedder:
    """texts -> (n, dim) float32 unit rows: hashed words, punctuation runs and the character
    3-grams of each word, each with a hashed sign (so collisions cancel out on average)."""

    def __init__(self, dim: int = 1024):
        self.dim = dim
        self.calls = 0
        self.texts_seen = 0

    @staticmethod
    def _features(text: str) -> list[str]:
        tokens = _TOKEN.findall(text.lower())
        features = [f"w:{t}" for t in tokens]
        for t in tokens:
            marked = f"<{t}>"
            features += [marked[i:i + 3] for i in range(max(1, len(marked) - 2))]
        return features

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


@pytest.fixture
def hashed_embedder() -> HashedNgramEmbedder:
    return HashedNgramEmbedder()


def real_sentences(min_words: int = 8, max_words: int = 40, prose: bool = False,
                   with_topic: bool = False) -> list:
    """Real human-written English that every Python ships: the sentences of the language
    reference help topics (pydoc_data), about 2,100 of them, deduplicated, in a fixed order.
    `prose` keeps the ~1,000 sentences without code, tables or markup; `with_topic` gives
    (topic, sentence) pairs."""
    import pydoc_data.topics as topics

    seen, out = set(), []
    for topic in sorted(topics.topics):
        text = re.sub(r"\s+", " ", topics.topics[topic])
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            sentence = sentence.strip()
            key = sentence.lower()
            if not min_words <= len(sentence.split()) <= max_words or key in seen:
                continue
            if prose and (_CODE_OR_MARKUP.search(sentence) or
                          sum(c.isalpha() or c == " " for c in sentence) < 0.85 * len(sentence)):
                continue
            seen.add(key)
            out.append((topic, sentence) if with_topic else sentence)
    return out


_CODE_OR_MARKUP = re.compile(r"[|=<>{}\[\]_*]|\.\.\.")


@pytest.fixture(scope="session")
def python_docs_sentences() -> list[str]:
    return real_sentences()


@pytest.fixture(scope="session")
def python_docs_prose() -> list[str]:
    return real_sentences(prose=True)
