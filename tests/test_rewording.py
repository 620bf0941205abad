"""Rewordings: reworded near-duplicates within a source by a learned cosine bar (kept records
only, no chains), the Jaccard bar learned from the real records, and the reasons and columns
they produce in a run."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from conftest import HashedNgramEmbedder, real_sentences
from synthgate import Config, run
from synthgate.config import DedupConfig
from synthgate.dedup import normalize
from synthgate.minhash import Shingler
from synthgate.rewording import SemanticDuplicates, learn_jaccard_bar


def word_set(text: str) -> frozenset:
    return frozenset(normalize(text).split())


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def edit(text: str, rng: random.Random, share: float = 0.1) -> str:
    """`share` of the words substituted by a word of the text itself or swapped."""
    words = text.split()
    for _ in range(max(1, round(share * len(words)))):
        i = rng.randrange(len(words))
        if rng.random() < 0.5 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            words[i] = rng.choice(["truly", "quite", "also", "often", "rarely"])
    return " ".join(words)


@pytest.fixture(scope="module")
def prose() -> list[str]:
    """Distinct records: the language reference's prose less its template sentences (any
    sharing half its words with one kept before), so the real yardstick is of distinct ones."""
    kept, sets = [], []
    for text in real_sentences(prose=True):
        words = word_set(text)
        if all(jaccard(words, other) < 0.5 for other in sets):
            kept.append(text)
            sets.append(words)
    return kept


@pytest.fixture(scope="module")
def bar(prose):
    """The cosine bar as the embed stage learns it: a high quantile of real records' cosine
    to their nearest other real record."""
    from synthgate.neighbours import NeighbourIndex
    emb = HashedNgramEmbedder()(prose[:400])
    sims, _ = NeighbourIndex(emb).search(emb, 1, exclude=np.arange(len(emb)))
    return float(np.quantile(sims[:, 0], 0.995))


def test_within_source_drops_only_copies_of_kept_records(bar, prose):
    embedder = HashedNgramEmbedder()
    rng = random.Random(1)
    a = prose[10]
    b = edit(a, rng, 0.1)              # copy of a
    c = edit(b, rng, 0.1)              # copy of b: a chain a ~ b ~ c
    other = prose[50]
    texts = [a, b, c, other]
    dropped, matched, cosine = SemanticDuplicates(bar).find(embedder(texts))
    assert dropped.tolist()[:2] == [False, True] and not dropped[3]
    assert matched[1] == 0 and cosine[1] > bar      # b names a, the kept one
    if dropped[2]:
        assert matched[2] == 0                      # c only goes as a copy of a, never of b
    # the order decides who is kept
    dropped_rev, matched_rev, _ = SemanticDuplicates(bar).find(embedder(texts),
                                                               order=np.array([1, 0, 2, 3]))
    assert not dropped_rev[1] and dropped_rev[0] and matched_rev[0] == 1


def test_edited_copies_are_caught_and_distinct_records_are_not(bar, prose):
    embedder = HashedNgramEmbedder()
    rng = random.Random(0)
    originals = prose[400:450]
    copies = [edit(t, rng, 0.1) for t in originals]
    distinct = prose[450:650]
    dropped, matched, _ = SemanticDuplicates(bar).find(embedder(originals + copies + distinct))
    assert dropped[50:100].mean() >= 0.9
    assert np.mean(matched[50:100][dropped[50:100]] == np.arange(50)[dropped[50:100]]) >= 0.95
    assert dropped[:50].sum() == 0 and dropped[100:].mean() <= 0.02


def test_learned_jaccard_bar_sits_above_distinct_real_records(prose):
    shingler = Shingler(1)
    bar, nearest, background = learn_jaccard_bar(prose[:500], shingler, quantile=0.99,
                                                 duplicate=0.8)
    assert np.mean(nearest >= bar) <= 0.02
    # the histogram counts every query's pairs with the other records (itself left out)
    assert background.sum() == 500 * 499 - np.count_nonzero(nearest < 0)
    assert background[:50].sum() > 0.99 * background.sum()    # distinct prose: low Jaccard
    assert bar < 0.8 and nearest.max() < 0.8       # pairs past `duplicate` are not distinct
    # real data full of near-copies does not raise the bar past `duplicate`
    doubled = prose[:200] + [t + " indeed" for t in prose[:200]]
    high, _, _ = learn_jaccard_bar(doubled, shingler, duplicate=0.8)
    assert high <= 0.8


def _frame(texts, prefix):
    return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts})


def test_run_marks_rewordings_and_names_the_signal(prose):
    rng = random.Random(3)
    real = prose[:300]
    clean = prose[300:400]
    near = [edit(clean[i], rng, 0.12) for i in range(10)]                 # of synthetic ones
    copies = [edit(real[i], rng, 0.12) for i in range(10)]                # of real ones
    junk = ["2024-01-01T00:00:00Z ERROR pid=1 status=fail req_id=ab12cd latency_ms=400",
            " ".join(random.Random(4).randbytes(4).hex() for _ in range(12)),
            "Die Kinder spielen auf der Straße, weil das Wetter heute endlich schön ist."]
    synth = clean + near + copies + junk
    result = run(real=_frame(real, "r"), synthetic=_frame(synth, "s"),
                 config=Config(stages=["dedup", "embed"], dedup=DedupConfig(near=False)),
                 embedder=HashedNgramEmbedder())
    d = result.decisions.set_index("id")
    near_ids = [f"s{100 + i}" for i in range(10)]
    caught = [not (d.loc[i, "kept"] and d.loc[f"s{j}", "kept"]) for j, i in enumerate(near_ids)]
    assert np.mean(caught) >= 0.9
    dropped = d.loc[near_ids][~d.loc[near_ids, "kept"]]
    assert all(r == ["near_duplicate"] for r in dropped["reasons"])
    assert set(dropped["dup_test"]) <= {"cosine", "jaccard"}
    assert dropped["dup_similarity"].between(0, 1).all()
    copy_ids = [f"s{110 + i}" for i in range(10)]
    assert np.mean([r == ["copies_real"] for r in d.loc[copy_ids, "reasons"]]) >= 0.9
    assert d.loc[copy_ids[0], "dup_of"] == "r0" or not d.loc[copy_ids[0], "kept"]
    junk_rows = d.loc[[f"s{120 + i}" for i in range(3)]]
    assert all("off_distribution" in r for r in junk_rows["reasons"]), junk_rows[["reasons", "explanation"]].to_string()
    assert junk_rows["off_distribution_signal"].notna().all()
    assert (d.loc[d["source"] == "real", "kept"]).all()
    assert d.loc[[f"s{i}" for i in range(100)], "kept"].mean() >= 0.9


def test_nearest_jaccard_on_fingerprints_equals_the_set_jaccard(prose):
    from synthgate.minhash import jaccard
    from synthgate.rewording import BACKGROUND_BINS, ShingleSets, nearest_jaccard
    for n in (1, 3):
        shingler = Shingler(n)
        texts = prose[:60] + [prose[0] + " again", "", "one"]
        sets = [shingler.shingles(shingler.shingle_text(normalize(t))) for t in texts]
        queries = np.array([0, 5, 60, 62])
        nearest, background = nearest_jaccard(
            ShingleSets.of([texts[i] for i in queries], shingler), queries,
            ShingleSets.of(texts, shingler), np.arange(len(texts)), 0.95)
        pairs = []
        for k, q in enumerate(queries):
            sims = [jaccard(sets[q], sets[j]) for j in range(len(texts)) if j != q]
            sims = [x for x in sims if x < 0.95]
            pairs += sims
            assert nearest[k] == pytest.approx(max(sims), abs=1e-6)
        assert background.tolist() == np.histogram(np.float32(pairs), BACKGROUND_BINS)[0].tolist()


@pytest.mark.parametrize("common_share", [0.0, 0.05, 2.0])
def test_shared_counts_are_the_set_intersections_whatever_is_dense(monkeypatch, common_share):
    """Common shingles go through a dense product, rare ones through a sparse one; the
    counts are each pair's set intersection either way (mostly dense, split, all sparse)."""
    from synthgate import rewording

    rng = np.random.default_rng(3)
    # Zipf-like words: a few in most records, most in few
    words = (rng.zipf(1.3, size=(60 + 90) * 40) % 500).reshape(150, 40)
    sets = [set(row.tolist()) for row in words]
    queries, block = sets[:60], sets[60:]
    vocab = sorted(set().union(*queries))
    col = {w: i for i, w in enumerate(vocab)}
    q_row = np.array([r for r, s in enumerate(queries) for _ in s])
    q_col = np.array([col[w] for s in queries for w in s])
    b_pairs = [(r, col[w]) for r, s in enumerate(block) for w in s if w in col]
    b_row = np.array([r for r, _ in b_pairs])
    b_col = np.array([c for _, c in b_pairs])
    monkeypatch.setattr(rewording, "DENSE_SHINGLE_SHARE", common_share)
    got = rewording._shared_counts(q_row, q_col, len(queries), b_row, b_col, len(block),
                                   len(vocab))
    want = np.array([[len(a & b) for b in block] for a in queries], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
