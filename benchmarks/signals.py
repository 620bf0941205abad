"""Recall per planted defect and false rejects, before and after the issue-10 signals, in one
run, on the development corpora of benchmarks/signals_corpus.py.

    python benchmarks/signals_corpus.py          # builds benchmarks/.data/*.jsonl
    python benchmarks/signals.py [--corpus fortunes,wordnet,pydocs] [--embedder model|hashed]

"before" is the pipeline with the new parts turned off (`[dedup] learn_threshold = false`,
`ngram = 2`; `[embed] signals = false`, `semantic_dedup = false`); "after" is the defaults. Stages
dedup, formulaic and embed (no share cap). A planted near-duplicate or rewording counts as
caught when it or its original is dropped (whichever came first is kept); a clean synthetic
record counts as wrongly rejected when it is dropped for anything else; a real record when it
is dropped at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthgate import Config, run  # noqa: E402
from synthgate.config import DedupConfig, EmbedConfig  # noqa: E402

DATA = Path(__file__).parent / ".data"


def configs() -> dict[str, Config]:
    stages = ["dedup", "formulaic", "embed"]
    return {
        "before": Config(stages=stages, dedup=DedupConfig(learn_threshold=False, ngram=2),
                         embed=EmbedConfig(signals=False, semantic_dedup=False)),
        "after": Config(stages=stages),
    }


def score(records: list[dict], decisions: pd.DataFrame) -> dict[str, float]:
    d = decisions.set_index("id")
    kept = d["kept"].to_dict()
    dup_of = d["dup_of"].to_dict()
    origin = {r["id"]: r["variant_of"] for r in records}
    by_defect = defaultdict(list)
    for r in records:
        rid, defect = r["id"], r["defect"]
        if defect in ("near_edit", "near_reworded"):
            caught = not (kept[rid] and kept[r["variant_of"]])
        elif defect == "clean":
            # dropped as the duplicate of its own planted copy is right, anything else wrong
            caught = not kept[rid] and origin.get(dup_of[rid]) != rid
        else:
            caught = not kept[rid]
        by_defect[defect].append(caught)
    out = {k: float(np.mean(v)) for k, v in by_defect.items()}
    off = [v for k, vs in by_defect.items() if k.startswith("off_") for v in vs]
    out["off_distribution (all kinds)"] = float(np.mean(off))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="fortunes,wordnet,pydocs")
    parser.add_argument("--embedder", default="model", choices=("model", "hashed"))
    args = parser.parse_args()
    embedder = None
    if args.embedder == "hashed":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import HashedNgramEmbedder
        embedder = HashedNgramEmbedder()
    for name in args.corpus.split(","):
        path = DATA / f"{name}.jsonl"
        if not path.exists():
            raise SystemExit(f"{path} missing: run benchmarks/signals_corpus.py first")
        records = [json.loads(line) for line in path.open(encoding="utf-8")]
        frame = pd.DataFrame(records)
        real = frame[frame["source"] == "real"][["id", "text"]]
        synthetic = frame[frame["source"] == "synthetic"][["id", "text"]]
        results, seconds = {}, {}
        for label, config in configs().items():
            start = time.perf_counter()
            result = run(real=real, synthetic=synthetic, config=config, embedder=embedder)
            seconds[label] = time.perf_counter() - start
            results[label] = score(records, result.decisions)
        table = pd.DataFrame(results)
        order = ["off_distribution (all kinds)"] + sorted(
            k for k in table.index if k.startswith("off_") and " " not in k) + \
            ["near_edit", "near_reworded", "paraphrase", "clean", "real"]
        table = table.loc[[k for k in order if k in table.index]]
        table.index = [k if k not in ("clean", "real") else f"{k} (wrongly rejected)"
                       for k in table.index]
        print(f"\n{name}: {len(real)} real, {len(synthetic)} synthetic; seconds "
              + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
        print(table.round(3).to_string())


if __name__ == "__main__":
    main()
