"""Model collapse, end to end (DESIGN.md §6; Shumailov et al., Nature 2024).

A simple generative model (a word-bigram model per topic, topics drawn in proportion) is
fitted on a real corpus, the language reference that ships with Python, then refitted on its
own samples generation after generation. Finite samples lose rare topics and rare word pairs
for good, so the tails go first. The gate must see it: recall, coverage and rare-cluster
coverage fall generation by generation, the first generation passes, a late one fails, and
the failing checks say which metric fell.

Run by hand with the real all-MiniLM-L6-v2 model for the table of metric by generation:

    python tests/test_collapse.py [--model minilm|hashed] [--generations 1,2,3,5,7,10]
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run

N_PER_GENERATION = 800


class TopicBigram:
    """P(topic) x P(sentence | topic), the sentence from a word-bigram model of its topic."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.topic_counts = Counter(topic for topic, _ in pairs)
        counts: dict = defaultdict(lambda: defaultdict(Counter))
        for topic, sentence in pairs:
            tokens = ["<s>", *sentence.split(), "</s>"]
            for a, b in zip(tokens, tokens[1:]):
                counts[topic][a][b] += 1
        # Successors and cumulative counts per (topic, word): one search per sampled word.
        self.next = {topic: {w: (list(c), np.cumsum(list(c.values()))) for w, c in by.items()}
                     for topic, by in counts.items()}

    def sample(self, n: int, rng: np.random.Generator, max_words: int = 40
               ) -> list[tuple[str, str]]:
        topics = sorted(self.topic_counts)
        weights = np.cumsum([self.topic_counts[t] for t in topics])
        out: list[tuple[str, str]] = []
        while len(out) < n:
            topic = topics[int(np.searchsorted(weights, rng.random() * weights[-1], "right"))]
            word, words = "<s>", []
            while len(words) < max_words:
                successors, cumulative = self.next[topic][word]
                word = successors[int(np.searchsorted(cumulative, rng.random() * cumulative[-1],
                                                      "right"))]
                if word == "</s>":
                    break
                words.append(word)
            if len(words) >= 4:
                out.append((topic, " ".join(words)))
        return out


def generations(pairs: list[tuple[str, str]], wanted: list[int], n: int = N_PER_GENERATION,
                seed: int = 0) -> dict[int, list[str]]:
    """Synthetic sets of the wanted generations: generation g is sampled from a model fitted
    on generation g-1 (generation 0 is the real corpus)."""
    rng = np.random.default_rng(seed)
    out, train = {}, pairs
    for g in range(1, max(wanted) + 1):
        train = TopicBigram(train).sample(n, rng)
        if g in wanted:
            out[g] = [sentence for _, sentence in train]
    return out


def gate(real: list[str], synthetic: list[str], embedder):
    return run(real=pd.DataFrame({"text": real}), synthetic=pd.DataFrame({"text": synthetic}),
               config=Config(stages=["dedup", "embed"]), embedder=embedder)


def summary(report: dict) -> dict[str, float]:
    m = report["metrics"]
    return {"recall": m["fidelity"]["recall"], "coverage": m["fidelity"]["coverage"],
            "rare_coverage": m["tails"]["rare_coverage_in"],
            "recall_kept": m["fidelity_kept"]["recall"],
            "coverage_kept": m["fidelity_kept"]["coverage"],
            "rare_coverage_kept": m["tails"]["rare_coverage_kept"],
            "vendi_kept": m["synthetic_kept"]["vendi"]}


@pytest.fixture(scope="module")
def collapse_runs(hashed_embedder_module):
    from conftest import real_sentences
    pairs = real_sentences(with_topic=True)
    real = [s for _, s in pairs]
    synthetic = generations(pairs, [1, 5, 10])
    return {g: gate(real, texts, hashed_embedder_module) for g, texts in synthetic.items()}


@pytest.fixture(scope="module")
def hashed_embedder_module():
    from conftest import HashedNgramEmbedder
    return HashedNgramEmbedder()


def test_recall_coverage_and_rare_clusters_fall_generation_by_generation(collapse_runs):
    rows = {g: summary(r.report) for g, r in sorted(collapse_runs.items())}
    for metric in ("recall", "coverage", "recall_kept", "coverage_kept", "vendi_kept"):
        series = [rows[g][metric] for g in sorted(rows)]
        assert all(a > b for a, b in zip(series, series[1:])), (metric, series)
    # Rare-cluster coverage is the noisiest of them (a few rare clusters, each reached or
    # not): between generations 5 and 10 it rose for 2 of 3 seeds, whatever the record order
    # (seeds 0-2, before and after the canonical record order of issue 16). Over the whole
    # run the tails are lost from the input. (The kept set's is not asserted: the share cap
    # keeps a floor of records in every real cluster that has any, rare ones included, so it
    # holds near 1 here whichever generation.)
    series = [rows[g]["rare_coverage"] for g in sorted(rows)]
    assert series[0] > series[-1], series


def test_gate_passes_the_first_generation_and_fails_a_late_one(collapse_runs):
    first, late = collapse_runs[1].report, collapse_runs[10].report
    assert first["gate"]["passed"], [c["message"] for c in first["gate"]["checks"]
                                      if not c["passed"]]
    assert not late["gate"]["passed"]
    failed = {c["name"]: c for c in late["gate"]["checks"] if not c["passed"]}
    assert "embed.coverage" in failed   # the kept set lost real neighbourhoods
    message = failed["embed.coverage"]["message"]
    # Which metric fell and by how much, against the real hold-out at the same size.
    assert message.startswith("coverage of kept synthetic")
    assert "real hold-out" in message and "interval" in message
    assert "below the hold-out" in message
    check = failed["embed.coverage"]
    low, high = check["interval"]
    assert check["observed"] < check["threshold"] < low <= check["reference"] <= high


def test_collapsed_generation_reaches_fewer_rare_clusters_than_the_real_hold_out(collapse_runs):
    tails = collapse_runs[10].report["metrics"]["tails"]
    assert tails["rare_coverage_kept"] < tails["rare_coverage_real_holdout"]
    assert tails["rare_clusters"] >= 2


def main(argv: list[str]) -> None:
    """The metric-by-generation table, with the real model (or the test embedder)."""
    import argparse
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import HashedNgramEmbedder, real_sentences
    from synthgate.embed import ModelEmbedder

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("minilm", "hashed"), default="minilm")
    parser.add_argument("--generations", default="1,2,3,5,7,10")
    args = parser.parse_args(argv)
    wanted = [int(g) for g in args.generations.split(",")]
    embedder = ModelEmbedder() if args.model == "minilm" else HashedNgramEmbedder()
    pairs = real_sentences(with_topic=True)
    real = [s for _, s in pairs]
    print(f"real corpus: {len(real)} sentences, {len(set(t for t, _ in pairs))} topics; "
          f"{N_PER_GENERATION} synthetic per generation; embedder {args.model}")
    print("gen | recall (hold-out) | coverage (hold-out) | rare cov. (hold-out) | "
          "vendi kept (hold-out) | distinct-2 | gate | failed checks")
    for g, texts in generations(pairs, wanted).items():
        report = gate(real, texts, embedder).report
        m = report["metrics"]
        fk, hold = m["fidelity_kept"], m["fidelity_kept"]["real_holdout"]
        checks = {c["name"]: c for c in report["gate"]["checks"]}
        vendi = checks.get("embed.vendi")
        failed = [c["name"] for c in report["gate"]["checks"] if not c["passed"]]
        print(f"{g:>3} | {fk['recall']:.3f} ({hold['recall']:.3f}) | {fk['coverage']:.3f} "
              f"({hold['coverage']:.3f}) | {m['tails']['rare_coverage_kept']:.3f} "
              f"({m['tails']['rare_coverage_real_holdout']:.3f}) | "
              f"{vendi['observed'] if vendi else float('nan'):.1f} "
              f"({vendi['reference'] if vendi else float('nan'):.1f}) | "
              f"{checks['embed.distinct_2']['observed'] if 'embed.distinct_2' in checks else ''} | "
              f"{'pass' if report['gate']['passed'] else 'FAIL'} | {', '.join(failed)}",
              flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(sys.argv[1:])
