"""Dedup: exact and MinHash near-duplicates, copies of real records, who is kept and why."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from synthgate import dedup
from synthgate.config import Config, DedupConfig
from synthgate.minhash import (CandidateIndex, MinHasher, Shingler, catch_probability, jaccard,
                              lsh_params, shingle_fingerprint)
from synthgate.records import Reason, new_table, reject
from synthgate.stage import RunContext

WORDS = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "nu", "pe", "ru", "so", "ti")
         for b in ("ba", "de", "fi", "go", "hu", "ja") for c in ("n", "r", "s", "t", "l")]


def words(start: int, count: int) -> list[str]:
    """`count` distinct words: distinct word n-grams make Jaccard values easy to reason on."""
    return WORDS[start:start + count]


def text(ws: list[str]) -> str:
    return " ".join(ws)


def table_of(*rows: tuple[str, str, str]) -> pd.DataFrame:
    ids, sources, texts = zip(*rows)
    return new_table(list(ids), list(sources), list(texts))


def run_dedup(table: pd.DataFrame, **options) -> dict:
    """Runs the stage; returns its details. `options` are DedupConfig fields."""
    ctx = RunContext(config=Config(stages=["dedup"], dedup=DedupConfig(**options)))
    return dedup.DedupStage().run(table, ctx).details


def true_jaccard(a: str, b: str, n: int = DedupConfig().ngram, unit: str = "word") -> float:
    shingler = Shingler(n, unit)
    sets = [shingler.shingles(shingler.shingle_text(dedup.normalize(t))) for t in (a, b)]
    return jaccard(*sets)


def row(table: pd.DataFrame, record_id: str) -> pd.Series:
    return table.set_index("id").loc[record_id]


# --------------------------------------------------------------------------- shingles

def test_normalize_collapses_unicode_whitespace_and_case():
    assert dedup.normalize("  Ｈello\u00a0\tWORLD\u2003 \n") == "hello world"
    tricky = "a\x1cb\x1dc\x1ed\x1ff\u2028g\u3000h\u200bi"
    assert dedup.normalize(tricky) == re.sub(r"\s+", " ", tricky).strip()


def test_word_shingles_cjk_and_emoji_stand_alone():
    shingler = Shingler(2, "word")
    assert shingler.shingle_text("我们去公园") == "我 们 去 公 园"
    assert shingler.shingle_text("party🎉time") == "party 🎉 time"
    assert shingler.shingles("我 们 去") == {("我", "们"), ("们", "去")}


def test_short_record_is_one_shingle_itself():
    shingler = Shingler(3, "word")
    assert shingler.shingles("hello there") == {("hello", "there")}
    assert shingler.is_short("hello there") and not shingler.is_short("a b c")
    assert Shingler(5, "char").shingles("abc") == {"abc"}


@pytest.mark.parametrize("unit,n", [("word", 3), ("word", 1), ("char", 4)])
def test_signatures_are_datasketch_minhash_values(unit, n):
    """The batch signatures equal datasketch's own MinHash fed shingle by shingle."""
    shingler = Shingler(n, unit)
    texts = [shingler.shingle_text(dedup.normalize(t)) for t in (
        text(words(0, 30)), "short one", "x", "我们今天去公园散步，天气非常好。", "émoji 🎉 party time 🎉",
        text(words(40, 7)))]
    minhasher = MinHasher(shingler, num_perm=64, seed=7)
    fast = minhasher.signatures(texts)
    for t, signature in zip(texts, fast):
        reference = MinHash(num_perm=64, seed=7,
                            hashfunc=lambda b: shingle_fingerprint(b) & 0xFFFFFFFF)
        units = t.split(" ") if unit == "word" else t
        if len(units) < n:
            shingles = [t]
        else:
            shingles = [(" " if unit == "word" else "").join(units[i:i + n])
                        for i in range(len(units) - n + 1)]
        reference.update_batch([s.encode("utf-8") for s in shingles])
        assert np.array_equal(signature, reference.hashvalues)
    assert fast.shape == (len(texts), 64)


def test_fingerprint_sets_stand_for_shingle_sets():
    shingler = Shingler(2)
    texts = [shingler.shingle_text(dedup.normalize(t)) for t in (
        text(words(0, 50)), "a b a b a b", "我们去公园 🎉", "one")]
    prints, firsts = shingler.fingerprints(texts)
    for t, piece in zip(texts, np.split(prints, firsts[1:])):
        shingles = shingler.shingles(t)
        as_bytes = [(" ".join(s) if isinstance(s, tuple) else s).encode() for s in shingles]
        assert set(piece.tolist()) == {shingle_fingerprint(b) for b in as_bytes}
        assert len(set(piece.tolist())) == len(shingles)


def test_bands_catch_pairs_at_the_threshold():
    bands, rows = lsh_params(0.8, 128, 0.99)
    assert bands * rows <= 128
    assert catch_probability(0.8, bands, rows) >= 0.99
    # datasketch's own choice for 0.8 catches a pair at the threshold far less often
    default = MinHashLSH(threshold=0.8, num_perm=128)
    assert catch_probability(0.8, default.b, default.r) < 0.6
    # the longest rows that reach the recall: one more row per band would miss it
    assert catch_probability(0.8, 128 // (rows + 1), rows + 1) < 0.99


# --------------------------------------------------------------------------- decisions

def edited_pair(target_low: float, target_high: float, length: int = 40) -> tuple[str, str, float]:
    """A base text and a copy with its tail replaced, with true Jaccard in [low, high)."""
    base = words(0, length)
    for changed in range(1, length):
        copy = base[:length - changed] + words(100, changed)
        sim = true_jaccard(text(base), text(copy))
        if target_low <= sim < target_high:
            return text(base), text(copy), sim
    raise AssertionError("no edit gives that similarity")


def test_pair_just_above_threshold_is_a_near_duplicate():
    base, copy, sim = edited_pair(0.8, 0.86)
    table = table_of(("a", "real", base), ("b", "real", copy))
    details = run_dedup(table)
    b = row(table, "b")
    assert b["reasons"] == ["near_duplicate"] and b["dup_of"] == "a"
    assert b["dup_similarity"] == pytest.approx(sim)
    assert row(table, "a")["kept"]
    assert details["near"]["confirmed_by_jaccard"] == 1


def test_pair_just_below_threshold_is_kept():
    base, copy, sim = edited_pair(0.7, 0.8)
    table = table_of(("a", "synthetic", base), ("b", "synthetic", copy))
    run_dedup(table)
    assert table["kept"].all() and table["dup_of"].isna().all()
    assert sim < 0.8


@pytest.mark.parametrize("synthetic_first", [True, False])
def test_synthetic_copy_of_real_is_dropped_whatever_the_order(synthetic_first):
    base, copy, sim = edited_pair(0.85, 0.95)
    rows = [("s", "synthetic", copy), ("r", "real", base)]
    table = table_of(*(rows if synthetic_first else rows[::-1]))
    run_dedup(table)
    assert row(table, "r")["kept"]
    s = row(table, "s")
    assert s["reasons"] == ["copies_real"] and s["dup_of"] == "r"
    assert s["dup_similarity"] == pytest.approx(sim)
    assert "copies real record r" in s["explanation"]


def test_exact_copy_of_real_given_first_is_copies_real():
    table = table_of(("s", "synthetic", "The same words here, four plus."),
                     ("r", "real", "the  SAME words here, four plus."))
    run_dedup(table)
    assert row(table, "s")["reasons"] == ["copies_real"] and row(table, "r")["kept"]


def chain() -> tuple[str, str, str]:
    """A~B and B~C at or above 0.8, A and C below: B's head and tail differ from each."""
    base = words(0, 60)
    a = text(base)
    b = text(base[:54] + words(100, 6))
    c = text(words(120, 6) + base[6:54] + words(100, 6))
    assert true_jaccard(a, b) >= 0.8 and true_jaccard(b, c) >= 0.8
    assert true_jaccard(a, c) < 0.8
    return a, b, c


def test_chain_drops_only_the_middle_record():
    a, b, c = chain()
    table = table_of(("A", "synthetic", a), ("B", "synthetic", b), ("C", "synthetic", c))
    run_dedup(table)
    assert row(table, "A")["kept"] and row(table, "C")["kept"]
    assert row(table, "B")["reasons"] == ["near_duplicate"] and row(table, "B")["dup_of"] == "A"


def test_copy_of_a_dropped_real_record_is_still_copies_real():
    a, b, c = chain()
    table = table_of(("R1", "real", a), ("R2", "real", b), ("S", "synthetic", c))
    details = run_dedup(table)
    assert row(table, "R2")["dup_of"] == "R1"
    s = row(table, "S")
    assert s["reasons"] == ["copies_real"] and s["dup_of"] == "R2"
    assert "itself a near-duplicate of R1" in s["explanation"]
    assert details["near"]["copies_real_of_dropped_real"] == 1


def test_real_near_duplicates_kept_when_dedup_real_is_off():
    base, copy, _ = edited_pair(0.85, 0.95)
    table = table_of(("r1", "real", base), ("r2", "real", copy), ("s", "synthetic", copy))
    run_dedup(table, dedup_real=False)
    assert row(table, "r1")["kept"] and row(table, "r2")["kept"]
    assert row(table, "s")["reasons"] == ["copies_real"]


def test_unconfirmed_lsh_candidates_are_never_dropped():
    """A bucket is only a candidate: records that are not similar all stay."""
    table = table_of(("a", "synthetic", text(words(0, 30))),
                     ("b", "synthetic", text(words(0, 15) + words(100, 15))),
                     ("r", "real", text(words(200, 30))))
    table["dup_similarity"] = np.nan
    cfg = DedupConfig()
    details, decisions = dedup.near_duplicates(table, cfg, Shingler(cfg.ngram),
                                               groups=[(0, 1, 2)])
    assert decisions == [] and table["kept"].all()
    assert details["candidate_pairs_checked"] == 3 and details["rejected_by_jaccard"] == 3


def test_short_records_are_compared_exactly():
    table = table_of(("a", "synthetic", "Hello there"), ("b", "synthetic", "hello   THERE"),
                     ("c", "synthetic", "hello there friend and more words"),
                     ("d", "synthetic", "hello where"))
    details = run_dedup(table, exact=False, ngram=3)  # short: fewer than 3 words
    assert row(table, "b")["reasons"] == ["near_duplicate"]
    assert row(table, "b")["dup_similarity"] == 1.0
    assert row(table, "c")["kept"] and row(table, "d")["kept"]
    assert details["near"]["short_records_compared_exactly"] == 3


def test_cjk_and_emoji_near_duplicates():
    zh = "我们今天去公园散步，天气非常好，阳光明媚，大家的心情都很愉快。"
    zh_edit = zh.replace("好，阳光", "棒，阳光")  # one character of 31
    emoji = "Great game tonight 🎉🎉 the team played so well, see you all next week 👋 bye"
    table = table_of(("zh", "real", zh), ("zh2", "synthetic", zh_edit),
                     ("ja", "synthetic", "今日は公園で散歩しました。天気がとても良かったです。"),
                     ("e1", "synthetic", emoji), ("e2", "synthetic", emoji.replace("🎉🎉", "🎉")))
    run_dedup(table)
    assert true_jaccard(zh, zh_edit) >= 0.8
    assert row(table, "zh2")["reasons"] == ["copies_real"]
    assert row(table, "e2")["reasons"] == ["near_duplicate"] and row(table, "e2")["dup_of"] == "e1"
    assert row(table, "ja")["kept"]


def test_character_shingles():
    table = table_of(("a", "synthetic", "The quick brown fox jumps over the lazy dog today"),
                     ("b", "synthetic", "The quick brown fox jumps over the lazy dog todax"))
    run_dedup(table, shingle="char", ngram=4)
    assert row(table, "b")["reasons"] == ["near_duplicate"]


def corpus(seed: int, records: int = 120) -> pd.DataFrame:
    """Random texts with planted exact and near copies, real and synthetic mixed."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(records):
        if rows and rng.random() < 0.4:
            _, _, original = rows[rng.integers(len(rows))]
            ws = original.split()
            for _ in range(rng.integers(0, 3)):
                ws[rng.integers(len(ws))] = WORDS[rng.integers(len(WORDS))]
            t = " ".join(ws)
        else:
            t = " ".join(rng.choice(WORDS, rng.integers(3, 50)))
        rows.append((f"id{i}", "real" if rng.random() < 0.4 else "synthetic", t))
    return table_of(*rows)


def test_results_do_not_depend_on_batch_size():
    first, second = corpus(3), corpus(3)
    run_dedup(first, batch_size=7)
    run_dedup(second)
    columns = ["kept", "reasons", "dup_of", "dup_similarity", "explanation"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert (~first["kept"]).sum() > 10


def test_shingle_store_gives_back_what_the_shingler_gives():
    shingler = Shingler(3)
    texts = [shingler.shingle_text(dedup.normalize(t)) for t in corpus(6, records=40)["text"]]
    store = dedup.ShingleStore(len(texts))
    for start in range(0, len(texts), 16):
        store.add(np.arange(start, min(start + 16, len(texts))),
                  *shingler.fingerprints(texts[start:start + 16]))
    chosen = [3, 17, 18, 39]
    prints, firsts = store.fingerprints(chosen)
    expected, expected_firsts = shingler.fingerprints([texts[i] for i in chosen])
    store.close()
    assert np.array_equal(prints, expected) and np.array_equal(firsts, expected_firsts)


def test_results_do_not_depend_on_worker_processes(monkeypatch):
    monkeypatch.setattr(dedup, "MIN_RECORDS_FOR_WORKERS", 0)  # workers even for a small input
    first, second = corpus(4, records=300), corpus(4, records=300)
    run_dedup(first, batch_size=16, workers=1)
    details = run_dedup(second, batch_size=16, workers=2)
    columns = ["kept", "reasons", "dup_of", "dup_similarity", "explanation"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert (~first["kept"]).sum() > 20 and details["near"]["candidate_pairs_checked"] > 10


def test_every_drop_names_a_similar_record_and_leaves_no_similar_pair():
    table = corpus(5)
    # LSH misses a pair at the threshold with probability 1 - lsh_recall (1% by default, and
    # this corpus has such a pair): ask for near certainty to test the decisions alone.
    details = run_dedup(table, lsh_recall=0.99999)
    bar = details["learned_threshold"]["threshold"]     # learned from the real records
    assert 0.5 < bar <= 0.8
    by_id = dict(zip(table["id"], table["text"]))
    dropped = table[~table["kept"]]
    assert len(dropped) > 10
    for _, r in dropped.iterrows():
        assert true_jaccard(r["text"], by_id[r["dup_of"]]) == pytest.approx(r["dup_similarity"])
        assert r["dup_similarity"] >= bar
    kept = table[table["kept"]]["text"].tolist()
    worst = max(true_jaccard(a, b) for i, a in enumerate(kept) for b in kept[i + 1:])
    assert worst < bar


def datasketch_buckets(signatures: np.ndarray, bands: int, rows: int) -> list[tuple[int, ...]]:
    """The buckets holding two or more records in datasketch's own MinHashLSH(bands, rows)."""
    lsh = MinHashLSH(num_perm=signatures.shape[1], params=(bands, rows))
    for i, signature in enumerate(signatures):
        lsh.insert(i, LeanMinHash(seed=1, hashvalues=signature, scheme="affine32"),
                   check_duplication=False)
    return sorted({tuple(sorted(table.get(key))) for table in lsh.hashtables
                   for key, count in table.itemcounts().items() if count > 1})


@pytest.mark.parametrize("bands,rows", [(16, 6), (21, 6), (9, 13)])
def test_candidate_buckets_are_datasketch_minhashlsh_buckets(bands, rows):
    minhasher = MinHasher(Shingler(3), num_perm=128, seed=1)
    table = corpus(11, records=200)
    shingle_texts = [minhasher.shingler.shingle_text(dedup.normalize(t)) for t in table["text"]]
    signatures = minhasher.signatures(shingle_texts)
    with CandidateIndex(bands, rows) as index:
        index.insert(np.arange(100), signatures[:100])  # two batches, as the stage fills it
        index.insert(np.arange(100, 200), signatures[100:])
        found = index.groups()
    assert found == datasketch_buckets(signatures, bands, rows) and len(found) > 10


def test_band_keys_tell_bands_and_value_order_apart():
    index = CandidateIndex(2, 3)
    a = np.array([[1, 2, 3, 1, 2, 3], [1, 2, 3, 3, 2, 1], [1, 2, 4, 1, 2, 3]], dtype=np.uint32)
    keys = index.band_keys(a)
    assert keys.shape == (3, 2)
    assert keys[0, 0] == keys[1, 0] != keys[2, 0]  # same values, same band: same key
    assert keys[0, 0] != keys[0, 1]                 # same values in another band
    assert keys[0, 1] != keys[1, 1]                 # same values in another order
    index.insert(np.array([5, 7, 9]), a)
    assert index.groups() == [(5, 7), (5, 9)]


def test_report_details_for_people():
    from synthgate.runner import run_stages
    table = corpus(7)
    ctx = RunContext(config=Config(stages=["dedup"]))
    rows, all_details, _, _ = run_stages([dedup.DedupStage()], table, ctx)
    details = all_details["dedup"]
    counts = rows[0]["rejected"]      # the runner counts each stage's rejections
    assert counts["near_duplicate"] + counts["copies_real"] + counts["exact_duplicate"] == \
        (~table["kept"]).sum()
    groups = details["duplicate_groups"]
    assert sum(groups["sizes"]["counts"]["duplicate groups"]) == groups["groups"] > 0
    assert len(groups["sizes"]["bins"]) == len(groups["sizes"]["counts"]["duplicate groups"]) + 1
    example = details["examples"][0]
    assert {"id", "dup_of", "similarity", "text", "dup_of_text"} <= set(example)
    assert example["similarity"] >= 0.8
    hist = details["near"]["candidate_similarity"]["counts"]
    assert sum(hist["confirmed"]) == details["near"]["confirmed_by_jaccard"]


def test_sample_data_planted_copies_are_found_and_nothing_else():
    """sample_data plants exact and near copies (a word or two changed in 70+ words) of
    synthetic and of real records: each must get its reason and name its original, and no
    healthy record may be dropped."""
    from pathlib import Path

    from synthgate import run

    root = Path(__file__).resolve().parent.parent / "sample_data"
    synthetic = pd.read_json(root / "synthetic.jsonl", lines=True)
    result = run(real=root / "real.jsonl", synthetic=root / "synthetic.jsonl",
                 config=Config(stages=["dedup"]))
    decisions = result.decisions.set_index("id")
    expected = {"exact_duplicate": "exact_duplicate", "near_duplicate": "near_duplicate",
                "copies_real_exact": "copies_real", "copies_real_near": "copies_real"}
    planted = synthetic[synthetic["defect"].isin(list(expected))]
    assert len(planted) == 17
    duplicates = []
    for _, record in planted.iterrows():
        copy, original = record["id"], record["variant_of"]
        if not record["defect"].startswith("copies_real"):
            # Of two synthetic records the one whose id sorts first is kept, whatever the
            # file order (README, "What a decision means"): here the planted copy (syn-d...)
            # sorts before its original (syn-h...).
            original, copy = sorted([copy, original])
        decision = decisions.loc[copy]
        assert decision["reasons"] == [expected[record["defect"]]], copy
        assert decision["dup_of"] == original
        duplicates.append(copy)
    others = decisions.drop(index=duplicates)
    assert not any(r for r in others["reasons"] if r != ["invalid"])


def test_empty_and_all_invalid_tables():
    table = table_of(("a", "real", None), ("b", "synthetic", None))
    reject(table, [True, True], Reason.INVALID, "not text")  # as ingest does
    details = run_dedup(table)
    assert table["reasons"].tolist() == [["invalid"], ["invalid"]]   # nothing added
    assert details["duplicate_groups"]["groups"] == 0


def test_pipeline_run_reports_dedup(tmp_path):
    from synthgate import run

    a, b, c = chain()
    real = pd.DataFrame({"id": ["r1", "r2"], "text": [a, "An unrelated real record, long enough."]})
    synthetic = pd.DataFrame({"id": ["s1", "s2"], "text": [b, c]})
    result = run(real=real, synthetic=synthetic, config=Config(stages=["dedup"]), out=tmp_path)
    decisions = result.decisions.set_index("id")
    assert decisions.loc["s1", "reasons"] == ["copies_real"]
    assert decisions.loc["s1", "dup_of"] == "r1"
    assert decisions.loc["s2", "kept"]  # similar to s1 only, which is gone
    assert result.report["rejections"]["copies_real"] == 1
    assert result.report["details"]["dedup"]["near"]["bands"] == 16
    assert "duplicate groups" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (16, 7), (256, 0), (1024, 12345)])
def test_permutations_are_datasketch_affine32(num_perm, seed):
    """The permutations are drawn without importing datasketch (start-up time) and must be
    exactly the ones datasketch draws."""
    from synthgate.minhash import affine32_permutations
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    x, y = affine32_permutations(num_perm, seed)
    assert x.dtype == y.dtype == np.uint32
    assert np.array_equal(a, x) and np.array_equal(b, y)


def test_permutations_chosen_by_hashing_plus_checking_cost():
    from synthgate.minhash import PAIR_COST_IN_PERMUTATIONS, permutations_for
    edges = np.linspace(0.0, 1.0, 101)
    # word sets: most pairs of records share a tenth to a fifth of their words by chance
    background = np.zeros(100, dtype=np.int64)
    background[10:20] = 1000

    def cost(perms, records):
        bands, rows = lsh_params(0.74, perms, 0.99)
        _, per_record = permutations_for(0.74, perms, 0.99, background, edges, records,
                                         most=perms)
        return bands * rows + PAIR_COST_IN_PERMUTATIONS * per_record, per_record

    perms, per_record = permutations_for(0.74, 128, 0.99, background, edges, 1_000_000)
    bands, rows = lsh_params(0.74, perms, 0.99)
    assert perms > 128 and catch_probability(0.74, bands, rows) >= 0.99   # recall kept
    assert cost(perms, 1_000_000)[0] == min(cost(p, 1_000_000)[0] for p in (128, 256, 512, 1024))
    assert cost(128, 1_000_000)[1] > 10 * per_record           # 128 would propose far more
    # few records, or records that share nothing: 128 costs least
    assert permutations_for(0.74, 128, 0.99, background, edges, 1000)[0] == 128
    quiet = np.zeros(100, dtype=np.int64)
    quiet[:5] = 1000
    assert permutations_for(0.74, 128, 0.99, quiet, edges, 1_000_000)[0] == 128
    assert permutations_for(0.74, 128, 0.99, background, edges, 10**9, most=256)[0] == 256
