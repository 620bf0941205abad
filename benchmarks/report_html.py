"""report.html benchmark: what the page costs to build and how big it gets as runs grow.

    python benchmarks/report_html.py                        # 10,000 and 100,000 records
    python benchmarks/report_html.py --records 1000000

Builds a records table of N records (texts recombined from the sentences of Python's own
language reference, pydoc_data; half real, half synthetic), 384-dimensional unit embeddings
drawn around 64 centres (cluster sizes Zipf-like, so some are rare), and rejections in the
shares a real run shows (share cap, off distribution, formulaic, duplicates with dup_of). Then,
in the same run on the same table:

- the baseline: writing decisions.parquet for that table, a cost every run already pays;
- report_html.build_view (records sample, nearest real record of each sampled rejected record,
  PCA map, per-cluster shares and top terms) and render, timed apart;
- the page's size, the points drawn and the rejected records embedded.

The page is bounded by MAP_POINTS, REJECTED_SAMPLE and the text caps, so its size should stay
flat from 100,000 records on while its build time grows with the table (one pass over it).
Timings depend on the machine and its load: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthgate import report_html  # noqa: E402
from synthgate.records import Reason, new_table, reject  # noqa: E402
from synthgate.runner import decisions_frame  # noqa: E402

DIM, CENTRES = 384, 64


def sentences() -> list[str]:
    import pydoc_data.topics as topics
    out = []
    for key in sorted(topics.topics):
        for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", topics.topics[key])):
            if 8 <= len(s.split()) <= 40:
                out.append(s.strip())
    return out


def build(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = sentences()
    a, b = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    texts = [base[i] + " " + base[j] for i, j in zip(a, b)]
    n_real = n // 2
    table = new_table([f"r{i}" for i in range(n_real)] + [f"s{i}" for i in range(n - n_real)],
                      ["real"] * n_real + ["synthetic"] * (n - n_real), texts)
    weights = 1.0 / np.arange(1, CENTRES + 1)
    centre_of = rng.choice(CENTRES, n, p=weights / weights.sum())
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    vectors = centres[centre_of] + 0.8 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table["cluster"] = pd.array(centre_of, dtype="Int64")
    synth = np.flatnonzero(table["source"] == "synthetic")
    draw = rng.random(len(synth))
    ids = table["id"].tolist()
    dup_rows = synth[draw < 0.03]
    dup_of = table["dup_of"].to_numpy(copy=True)
    dup_of[dup_rows] = [ids[r] for r in rng.integers(0, n_real, len(dup_rows))]
    table["dup_of"] = dup_of
    table["dup_similarity"] = np.where(np.isin(np.arange(n), dup_rows), 0.9, np.nan)
    table["formulaic"] = rng.random(n).round(3)
    table["distance_pctl"] = (rng.random(n) * 100).round(2)
    for mask, reason in ((draw < 0.03, Reason.COPIES_REAL),
                         ((draw >= 0.03) & (draw < 0.05), Reason.FORMULAIC),
                         ((draw >= 0.05) & (draw < 0.08), Reason.OFF_DISTRIBUTION),
                         ((draw >= 0.08) & (draw < 0.30), Reason.SHARE_CAP)):
        reject(table, np.isin(np.arange(n), synth[mask]), reason)
    sizes = np.bincount(centre_of[:n_real], minlength=CENTRES)
    clusters = {"sizes": sizes, "rare": [int(c) for c in np.argsort(sizes)[:6]]}
    kept = table["kept"].to_numpy()
    report = {"version": 1, "synthgate_version": "bench", "config": {"seed": 0,
              "stages": ["dedup", "embed", "mix"], "max_synthetic_share": 0.5},
              "inputs": {"real": n_real, "synthetic": n - n_real},
              "output": {"real": int(kept[:n_real].sum()), "synthetic": int(kept[n_real:].sum()),
                         "synthetic_share": float(kept[n_real:].sum() / kept.sum())},
              "rejections": {}, "stages": [], "metrics": {},
              "gate": {"passed": True, "checks": []}}
    return table, report, vectors, clusters


def measure(n: int) -> None:
    table, report, vectors, clusters = build(n)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        decisions_frame(table).to_parquet(Path(tmp) / "decisions.parquet", index=False)
        baseline = time.perf_counter() - start
    start = time.perf_counter()
    view = report_html.build_view(table, report, vectors, None, clusters)
    built = time.perf_counter() - start
    start = time.perf_counter()
    page = report_html.render(view)
    rendered = time.perf_counter() - start
    size = len(page.encode("utf-8"))
    print(f"{n:>10,} records | decisions.parquet {baseline:6.2f} s | view {built:6.2f} s "
          f"({built / baseline:5.1f}x) | render {rendered:5.2f} s | page {size / 2**20:5.2f} MB"
          f" | {len(view.map.x):,} points, {len(view.rejected):,} of {view.rejected_total:,} "
          f"rejected, {len(view.records):,} records carried", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for n in args.records:
        measure(n)


if __name__ == "__main__":
    main()
