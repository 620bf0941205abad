"""Benchmark decontamination: every form of a carried item is caught, near misses are not.

Items are question/answer pairs built from Python's language reference (pydoc_data, via
conftest.real_sentences), the records are other sentences of it; the n-gram logic is the
real one and the embedder is the deterministic hashed-n-gram one of conftest.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import HashedNgramEmbedder, real_sentences
from synthgate import Config, run
from synthgate.cli import main
from synthgate.config import BenchmarkConfig
from synthgate.decontaminate import (Decontaminate, DecontaminateSettings, NgramIndex,
                                    load_benchmarks, passages, robust_quantile, words)
from synthgate.ingest import InputError
from synthgate.records import Reason, TERMINAL_REASONS, new_table
from synthgate.stage import RunContext

N_ITEMS = 40


@pytest.fixture(scope="module")
def corpus():
    """(items DataFrame, clean real texts, clean synthetic texts): items are two sentences
    of one topic as a Q/A pair; clean texts are sentences not used in any item."""
    pairs = real_sentences(min_words=10, max_words=30, prose=True, with_topic=True)
    by_topic: dict[str, list[str]] = {}
    for topic, sentence in pairs:
        by_topic.setdefault(topic, []).append(sentence)
    items, used = [], set()
    for topic in sorted(by_topic):
        s = by_topic[topic]
        if len(s) >= 3 and len(items) < N_ITEMS:
            items.append({"id": f"q{len(items)}", "question": f"What does {topic} do?",
                          "answer": f"{s[0]} {s[1]}"})
            used.update(s[:2])
    rest = [s for _, s in pairs if s not in used]
    return pd.DataFrame(items), rest[:300], rest[300:450]


def item_text(items: pd.DataFrame, k: int) -> str:
    return f"{items.question[k]}\n{items.answer[k]}"


def index_of(items: pd.DataFrame, n: int = 8) -> NgramIndex:
    return NgramIndex(n).fit([item_text(items, k) for k in range(len(items))])


# --------------------------------------------------------------------------- normalization

def test_framing_case_punctuation_and_spacing_do_not_change_the_words():
    q, a = "What is a zymometer?", "An instrument for measuring fermentation, it says."
    plain = words(f"{q}\n{a}")
    assert plain == "what is a zymometer an instrument for measuring fermentation it says"
    for framed in (f"Q: {q}\nA: {a}", f"Question: {q}\nAnswer: {a}",
                   f"user: {q}\n\nassistant: {a}",
                   f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>",
                   f"### Instruction:\n{q}\n\n### Response:\n{a}",
                   f"**Question:** {q} **Answer:** {a}", f"[INST] {q} [/INST] {a}",
                   f"{q.upper()}   {a.lower()}", f"{q}\t\n {a.replace(',', ' ,;')}"):
        assert words(framed) == plain, framed
    # NFKC and case folding: full-width letters and ß
    assert words("ＺＹＭＯＭＥＴＥＲ Straße") == "zymometer strasse"


def test_labels_inside_a_sentence_are_words_not_framing():
    assert words("The answer: forty-two") == "the answer forty two"


# --------------------------------------------------------------------------- test 1

def test_index_is_sorted_uint64_fingerprints_with_postings(corpus):
    items, _, _ = corpus
    index = index_of(items)
    keys = index.keys_[8]
    assert keys.dtype == np.uint64 and np.all(keys[1:] >= keys[:-1])
    assert index.grams == int(index.item_grams_.sum())   # no common gram among few items
    assert 16 * index.grams < index.nbytes < 16 * index.grams + 2 ** 10 + 4 * index.grams


def test_every_carried_form_is_caught_and_names_the_item(corpus):
    items, clean, _ = corpus
    index = index_of(items)
    k = 5
    q, a = items.question[k], items.answer[k]
    whole = f"{q}\n{a}"
    w = whole.split()
    edited = list(w)
    # 2 words of ~30 edited (a 5% edit), more than n words apart and from the item's ends
    edited[2 * len(w) // 3] = "zebra"
    del edited[len(w) // 3]
    forms = {
        "verbatim": whole,
        "inside a longer record": f"{clean[0]} {whole} {clean[1]}",
        "partial (the answer)": f"{clean[2]} {a} {clean[3]}",
        "partial (60% of the item)": f"{clean[4]} {' '.join(w[:int(0.6 * len(w)) + 1])}",
        "Q/A framing": f"Q: {q}\nA: {a}",
        "chat turns": f"user: {q}\n\nassistant: {a}",
        "case, punctuation, spacing": re.sub(r"[.,?]", "", whole.upper()).replace(" ", "  \n"),
        "5% edited": " ".join(edited),
    }
    found = index.match(list(forms.values()))
    for (name, _), flagged, item, covered in zip(forms.items(), found.flagged, found.item,
                                                 found.covered):
        assert flagged, name
        assert item == k, name
    assert found.covered[0] == index.item_words_[k] and found.span[0] == index.item_words_[k]
    assert found.matched[0] == index.item_grams_[k]
    # the edited copy misses only the two edited words; its longest span stops at an edit
    assert found.covered[-1] == index.item_words_[k] - 2
    assert found.span[-1] < index.item_words_[k]


def test_a_shared_six_word_phrase_or_unrelated_text_is_not_flagged(corpus):
    items, clean, _ = corpus
    index = index_of(items)
    near = []
    for k in range(len(items)):
        w = words(items.answer[k]).split()
        base = clean[k].split()
        near.append(" ".join(base[:3] + w[2:8] + base[3:]))   # one 6-word phrase
    found = index.match(near + clean)
    assert not found.flagged.any()
    # 6 words hold no 8-gram, even with a word beside the phrase that happens to follow it
    # in the item too ("is" + "often used to name special items")
    assert (found.matched[:len(near)] == 0).all()


def test_short_items_are_matched_whole_and_tiny_ones_not_at_all():
    index = NgramIndex(7).fit(["What is love? Baby, don't.", "Yes or no", "x " * 30])
    assert list(index.item_words_) == [6, 3, 30]
    found = index.match(["I asked: what is love? baby don't! and left",
                         "what is love baby", "yes or no", "x " * 40])
    assert found.flagged.tolist() == [True, False, False, True]
    assert found.item[0] == 0 and found.span[0] == 6
    assert found.item[3] == 2 and found.covered[3] == 30   # every place of a repeated gram


def test_a_gram_held_by_many_items_identifies_none_and_is_dropped():
    boiler = "which of the following statements is true about"
    items = [f"{boiler} topic{k} and its many particular properties" for k in range(80)]
    index = NgramIndex(7, max_postings=64).fit(items)
    assert index.dropped_common_ > 0
    found = index.match([f"Quiz: {boiler} the weather today"])
    assert not found.flagged.any() and found.matched[0] == 0


def _reference(item_words: list[str], record_words: list[str], n: int):
    """Plain Python: covered item words, matched item n-grams (positions), longest run of
    consecutive matched n-grams (in words)."""
    record_grams = {tuple(record_words[i:i + n]) for i in range(len(record_words) - n + 1)}
    hits = sorted({p for p in range(len(item_words) - n + 1)
                   if tuple(item_words[p:p + n]) in record_grams})
    covered = set()
    for p in hits:
        covered.update(range(p, p + n))
    longest, run = 0, 0
    for j, p in enumerate(hits):
        run = run + 1 if j and p == hits[j - 1] + 1 else 1
        longest = max(longest, run)
    return len(covered), len(hits), (longest + n - 1 if hits else 0)


def test_coverage_counts_and_span_agree_with_a_plain_reference():
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(40)]
    items = [" ".join(rng.choice(vocab, int(rng.integers(12, 40)))) for _ in range(25)]
    records = []
    for _ in range(200):
        src = items[int(rng.integers(len(items)))].split()
        a, b = sorted(rng.integers(0, len(src), 2))
        piece = src[a:b + 1]
        for _ in range(int(rng.integers(0, 3))):
            if piece:
                piece[int(rng.integers(len(piece)))] = str(rng.choice(vocab))
        records.append(" ".join(list(rng.choice(vocab, 5)) + piece + list(rng.choice(vocab, 5))))
    n = 5
    index = NgramIndex(n, min_coverage=0.5, min_span=1000).fit(items)
    found = index.match(records)
    for r, text in enumerate(records):
        best = None
        for k, item in enumerate(items):
            covered, matched, span = _reference(item.split(), text.split(), n)
            if matched:
                key = (covered / len(item.split()) >= 0.5, covered / len(item.split()), span, -k)
                if best is None or key > best[0]:
                    best = (key, k, covered, matched, span)
        if best is None:
            assert found.item[r] == -1
            continue
        assert found.item[r] == best[1]
        assert (found.covered[r], found.matched[r], found.span[r]) == best[2:]
        assert found.flagged[r] == best[0][0]


# --------------------------------------------------------------------------- test 2

def test_passages_are_sentence_windows_and_short_texts_stay_whole():
    assert passages("One. Two.", 2, 128) == ["One. Two."]
    assert passages("One. Two. Three. Four.", 2, 128) == ["One. Two.", "Two. Three.",
                                                          "Three. Four."]
    assert passages("a " * 300, 2, 128)[0] == " ".join(["a"] * 128)


def test_robust_quantile_ignores_a_few_contaminated_values():
    rng = np.random.default_rng(0)
    clean = rng.normal(0.4, 0.08, 5000).clip(-1, 1)
    contaminated = np.r_[clean, rng.uniform(0.85, 0.98, 150)]   # 3% reworded items
    plain_clean = np.quantile(clean, 0.999)
    assert np.quantile(contaminated, 0.999) > 0.9                # the plain quantile is lost
    bar = robust_quantile(contaminated, 0.999)
    assert abs(bar - plain_clean) < 0.05
    assert abs(robust_quantile(clean, 0.999) - plain_clean) < 0.05


def reword(text: str) -> str:
    """A crude rewording the hashed embedder still recognizes: sentences swapped, "is" and
    "are" replaced, and a word inserted wherever 6 words of the item would stay in a row,
    so that no 7-gram (hence no 8-gram) of the item is left."""
    swaps = {"is": "becomes", "are": "become"}
    parts = re.split(r"(?<=[.?!])\s+", text)
    out, run = [], 0
    for x in " ".join(parts[1:] + parts[:1]).split():
        y = swaps.get(x, x)
        run = 0 if y != x else run + 1
        if run == 6:
            out.append("truly")
            run = 1
        out.append(y)
    return " ".join(out)


def make_table(items, clean_real, clean_synth, carriers):
    ids, sources, texts, truth = [], [], [], []
    for k, t in enumerate(clean_real):
        ids.append(f"r{k}"), sources.append("real"), texts.append(t), truth.append(None)
    for k, t in enumerate(clean_synth):
        ids.append(f"s{k}"), sources.append("synthetic"), texts.append(t), truth.append(None)
    for k, (source, text, item) in enumerate(carriers):
        ids.append(f"c{k}"), sources.append(source), texts.append(text), truth.append(item)
    return new_table(ids, sources, texts), truth


def test_reworded_items_are_caught_by_meaning_with_a_learned_bar(corpus):
    items, clean, clean_synth = corpus
    carriers = [("synthetic" if k % 2 else "real", reword(item_text(items, k)), k)
                for k in range(0, 20)]
    # near misses: a clean text with one 6-word phrase of an item
    near = [" ".join(clean_synth[k].split()[:4] + items.answer[k].split()[3:9]
                     + clean_synth[k].split()[4:]) for k in range(20, 40)]
    table, truth = make_table(items, clean, near, carriers)
    # 0.99: with ~300 real passages a 0.999 quantile is far beyond what the sample shows
    stage = Decontaminate(load_benchmarks({"quiz": items}, text_template="{question}\n{answer}"),
                          embedder=HashedNgramEmbedder(),
                          settings=DecontaminateSettings(quantile=0.99))
    ctx = RunContext(config=Config())
    stage.setup(ctx)
    outcome = stage.run(table, ctx)
    semantic = outcome.details["semantic"]
    assert 0.3 < semantic["threshold"] < 0.99            # learned, not a fixed cosine
    flagged = ~table["kept"].to_numpy()
    carrier = np.array([t is not None for t in truth])
    # the n-gram test does not see these rewordings; meaning does
    assert outcome.details["ngram"]["flagged"] == 0
    assert flagged[carrier].mean() >= 0.8
    assert flagged[~carrier].mean() <= 0.01
    hit = np.flatnonzero(flagged & carrier)
    for i in hit:
        assert table["benchmark_match"].iat[i] == f"quiz:q{truth[i]}"
    explained = [e for e, c in zip(table["explanation"], flagged & carrier) if c]
    assert any("cosine" in e and "quantile of real passages" in e for e in explained)
    # the real carriers are among the real passages the bar is learned from, yet caught
    real_carriers = [i for i in hit if table["source"].iat[i] == "real"]
    assert real_carriers


# --------------------------------------------------------------------------- stage & API

def test_reason_code_order_and_terminal():
    order = [r.value for r in Reason]
    assert order.index("benchmark_overlap") == order.index("exact_duplicate") + 1
    assert Reason.BENCHMARK_OVERLAP in TERMINAL_REASONS


def test_run_with_a_benchmark_rejects_carriers_in_real_and_synthetic(corpus):
    items, clean, clean_synth = corpus
    real = pd.DataFrame({"id": [f"r{k}" for k in range(len(clean))], "text": clean})
    real.loc[len(real)] = ["r-carrier", f"Intro. Q: {items.question[1]}\nA: {items.answer[1]}"]
    synth_texts = list(clean_synth) + [f"{clean[0]} {items.answer[2]}",
                                       reword(item_text(items, 3))]
    synth = pd.DataFrame({"id": [f"s{k}" for k in range(len(synth_texts))],
                          "text": synth_texts})
    # 0.99: with ~300 real passages a 0.999 quantile is far beyond what the sample shows
    config = Config(stages=["dedup"], max_synthetic_share=1.0,
                    benchmark=BenchmarkConfig(quantile=0.99))
    result = run(real=real, synthetic=synth, config=config, embedder=HashedNgramEmbedder(),
                 benchmark={"quiz": items.assign(text=[item_text(items, k)
                                                       for k in range(len(items))])})
    d = result.decisions
    assert len(d) == len(real) + len(synth)
    assert "benchmark_match" in d.columns
    flagged = d[d.reasons.map(lambda r: "benchmark_overlap" in r)]
    by_id = dict(zip(flagged.id, flagged.benchmark_match))
    assert by_id.get("r-carrier") == "quiz:q1"
    assert by_id.get(f"s{len(clean_synth)}") == "quiz:q2"
    assert by_id.get(f"s{len(clean_synth) + 1}") == "quiz:q3"
    assert not d.set_index("id").loc[list(by_id), "kept"].any()
    per = result.report["details"]["decontaminate"]["per_benchmark"]["quiz"]
    assert per["items_seen"] >= 3 and {"q1", "q2", "q3"} <= set(per["items_seen_list"])
    assert per["records_removed"]["real"] >= 1 and per["records_removed"]["synthetic"] >= 2
    example = next(e for e in per["examples"] if e["id"] == "r-carrier")
    assert example["test"] == "ngram" and "what does" in example["matched"]
    assert result.report["rejections"]["benchmark_overlap"] == len(by_id)
    stage_names = [s["name"] for s in result.report["stages"]]
    assert stage_names.index("decontaminate") < stage_names.index("dedup")
    # the same inputs give the same decisions
    again = run(real=real, synthetic=synth, config=config, embedder=HashedNgramEmbedder(),
                benchmark={"quiz": items.assign(text=[item_text(items, k)
                                                      for k in range(len(items))])})
    pd.testing.assert_frame_equal(again.decisions, d)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_cli_and_config(tmp_path, corpus):
    items, clean, clean_synth = corpus
    write_jsonl(tmp_path / "quiz.jsonl", items.to_dict("records"))
    write_jsonl(tmp_path / "real.jsonl", [{"text": t} for t in clean[:80]])
    write_jsonl(tmp_path / "synth.jsonl", [{"text": t} for t in clean_synth[:40]]
                + [{"text": f"Q: {items.question[4]}\nA: {items.answer[4]}"}])
    (tmp_path / "c.toml").write_text("[benchmark]\nsemantic = false\nngram = 9\n")
    out = tmp_path / "out"
    code = main(["run", "--real", str(tmp_path / "real.jsonl"), "--synthetic",
                 str(tmp_path / "synth.jsonl"), "--out", str(out), "--stages", "dedup",
                 "--max-synthetic-share", "1", "--quiet", "--config", str(tmp_path / "c.toml"),
                 "--benchmark", str(tmp_path / "quiz.jsonl"),
                 "--benchmark-text-template", r"{question}\n{answer}"])
    assert code == 0
    d = pd.read_parquet(out / "decisions.parquet")
    assert d.benchmark_match.dropna().tolist() == ["quiz:q4"]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["benchmark"]["ngram"] == 9
    assert "semantic" not in report["details"]["decontaminate"]
    assert report["details"]["decontaminate"]["ngram"]["n"] == 9


def test_benchmark_input_errors_name_the_file(tmp_path, corpus, capsys):
    items, clean, _ = corpus
    write_jsonl(tmp_path / "real.jsonl", [{"text": t} for t in clean[:20]])
    write_jsonl(tmp_path / "quiz.jsonl", [{"question": "q?", "answer": "a"}])
    args = ["run", "--real", str(tmp_path / "real.jsonl"), "--out", str(tmp_path / "o"),
            "--stages", "dedup", "--quiet", "--benchmark"]
    assert main(args + [str(tmp_path / "quiz.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "quiz.jsonl" in err and "no text field 'text'" in err
    assert main(args + [str(tmp_path / "quiz.jsonl"), "--benchmark-text-template",
                        "{question} {solution}"]) == 2
    assert "--benchmark-text-template names field 'solution'" in capsys.readouterr().err
    assert main(args + [str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="duplicate item id"):
        load_benchmarks({"b": pd.DataFrame({"id": [1, 1], "text": ["a b c d", "e f g h"]})})


def test_benchmark_names_and_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_jsonl(tmp_path / "a" / "test.jsonl", [{"text": "one two three four five"}])
    write_jsonl(tmp_path / "b" / "test.jsonl", [{"messages": [
        {"role": "user", "content": "six seven"}, {"role": "assistant", "content": "eight"}]}])
    loaded = load_benchmarks([str(tmp_path / "*" / "test.jsonl")])
    assert [loaded.label(k) for k in range(len(loaded))] == ["a/test:0", "b/test:0"]
    assert words(loaded.text[1]) == "six seven eight"


def test_config_section_defaults_and_validation():
    assert Config().benchmark.paths == [] and Config().benchmark.ngram == 8
    with pytest.raises(ValueError, match="benchmark.ngram"):
        Config(benchmark=BenchmarkConfig(ngram=2))
