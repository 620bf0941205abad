"""Model-free diversity: distinct-n counted on integer ids equals the definition, and large
sets are measured on a seeded word-budget sample."""

from __future__ import annotations

import random

from synthgate.diversity import SAMPLE_WORDS, diversity, distinct_ns, sample_words


def naive_distinct(token_lists, n):
    total, seen = 0, set()
    for toks in token_lists:
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def test_distinct_ns_equals_the_definition():
    rng = random.Random(0)
    for _ in range(300):
        vocab = rng.randint(1, 6)
        lists = [[f"w{rng.randrange(vocab)}" for _ in range(rng.randint(0, 9))]
                 for _ in range(rng.randint(0, 8))]
        got = distinct_ns(lists, (1, 2, 3, 4, 5))
        for n in (1, 2, 3, 4, 5):
            assert abs(got[n] - naive_distinct(lists, n)) < 1e-12, (lists, n)


def test_ngrams_do_not_cross_records():
    # "a b" + "c" has 2-gram (a, b) only; "b c" must not be counted across the boundary.
    assert distinct_ns([["a", "b"], ["c"]], (2,))[2] == 1.0
    assert distinct_ns([["a", "b"], ["a", "b"]], (2,))[2] == 0.5


def test_small_set_measured_whole_large_set_sampled_reproducibly():
    rng = random.Random(1)
    small = [" ".join(f"w{rng.randrange(50)}" for _ in range(20)) for _ in range(100)]
    picked, tokens = sample_words(small, seed=3)
    assert picked == small and sum(map(len, tokens)) == 2000
    large = [" ".join(f"w{rng.randrange(5000)}" for _ in range(100)) for _ in range(2000)]
    picked, tokens = sample_words(large, seed=3)
    held = sum(map(len, tokens))
    assert SAMPLE_WORDS <= held < SAMPLE_WORDS + 100 and len(picked) < len(large)
    assert picked == sample_words(large, seed=3)[0] != sample_words(large, seed=4)[0]
    report = diversity(large, seed=3)
    assert report["records"] == 2000 and report["mean_words"] == 100.0
    assert report == diversity(large, seed=3)
