"""Benchmark of the embed stage: encoding throughput and the k-NN/metrics step.

    python benchmarks/embed.py [--texts 2000] [--sizes 10000,100000] [--skip-encode]

1. Encoding, on the same texts (real sentences of the Python language reference):
   bare `model.encode(texts, batch_size=64, normalize_embeddings=True)` against the stage's
   path (length order, chunks, progress, SQLite cache written), and the stage again with the
   cache warm. Prints records/s and the stage/bare time ratio (the target is <= 1.2).
2. The k-NN/metrics step (everything after encoding: neighbour search, thresholds, k-means,
   fidelity, Vendi, the kept-set measurement) at each size, half real and half synthetic, on synthetic
   384-dimensional vectors from a mixture of clusters. Prints records/s.
3. Exact blocked search against the HNSW index on one shape, to place EXACT_MAX_PAIRS.

Timings on a shared machine are noisy: compare the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthgate import Config  # noqa: E402
from synthgate.distance import EmbedStage  # noqa: E402
from synthgate.embed import ModelEmbedder, embed_texts  # noqa: E402
from synthgate.measure import MeasureStage  # noqa: E402
from synthgate.neighbours import EXACT_MAX_PAIRS, NeighbourIndex  # noqa: E402
from synthgate.records import new_table  # noqa: E402
from synthgate.stage import RunContext  # noqa: E402


def docs_sentences(n: int) -> list[str]:
    import pydoc_data.topics as topics
    text = re.sub(r"\s+", " ", " ".join(topics.topics[k] for k in sorted(topics.topics)))
    out = [s for s in re.split(r"(?<=[.!?])\s+", text) if 8 <= len(s.split()) <= 60]
    return [out[i % len(out)] + ("" if i < len(out) else f" ({i // len(out)})")
            for i in range(n)]


def bench_encoding(n: int) -> None:
    texts = docs_sentences(n)
    words = np.mean([len(t.split()) for t in texts])
    embedder = ModelEmbedder(device="cpu")
    model = embedder.setup()
    model.encode(texts[:64], batch_size=64)                        # warm-up
    ctx = RunContext(config=Config())
    bare_times, stage_times = [], []
    warm = None
    for _ in range(2):                       # interleaved, best of two: less noise
        start = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=False)
        bare_times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache:
            stage = ModelEmbedder(device="cpu", cache_dir=cache)
            stage._model = model                                       # loaded once
            start = time.perf_counter()
            embed_texts(texts, stage, ctx.progress)
            stage_times.append(time.perf_counter() - start)
            again = ModelEmbedder(device="cpu", cache_dir=cache)
            start = time.perf_counter()
            embed_texts(texts, again, ctx.progress)
            warm = time.perf_counter() - start
    bare, stage_t = min(bare_times), min(stage_times)
    print(f"encoding {n} texts ({words:.1f} words on average), all-MiniLM-L6-v2 on CPU, "
          f"{__import__('torch').get_num_threads()} threads")
    print(f"  bare model.encode       {n / bare:8.1f} records/s  ({bare:.1f} s)")
    print(f"  stage, cache cold       {n / stage_t:8.1f} records/s  ({stage_t:.1f} s)")
    print(f"  stage, cache warm       {n / warm:8.1f} records/s  ({warm:.2f} s)")
    print(f"  stage / bare time ratio {stage_t / bare:.3f}  (target <= 1.2)")


def clustered_vectors(n: int, d: int, rng: np.random.Generator, clusters: int = 200
                      ) -> np.ndarray:
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    weights = rng.pareto(1.5, clusters) + 0.05                     # uneven: some rare clusters
    which = rng.choice(clusters, n, p=weights / weights.sum())
    # Spread so that neighbours sit at cosine ~0.6-0.8, as sentence embeddings do.
    x = centres[which] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class LookupEmbedder:
    """Hands back precomputed vectors (the text is the row number): isolates the k-NN step."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.vectors[[int(t.split()[1]) for t in texts]]


def bench_knn(n: int, d: int = 384) -> None:
    rng = np.random.default_rng(0)
    vectors = clustered_vectors(n, d, rng)
    n_real = n // 2
    table = new_table([f"r{i}" for i in range(n)],
                      ["real"] * n_real + ["synthetic"] * (n - n_real),
                      [f"record {i} text" for i in range(n)])
    ctx = RunContext(config=Config(), embedder=LookupEmbedder(vectors))
    start = time.perf_counter()
    outcome = EmbedStage().run(table, ctx)
    middle = time.perf_counter()
    MeasureStage().run(table, ctx)
    end = time.perf_counter()
    search = outcome.details.get("neighbour_search")
    print(f"k-NN/metrics at {n} records ({n_real} real, d={d}, neighbour search {search}): "
          f"{n / (end - start):,.0f} records/s ({end - start:.1f} s: run {middle - start:.1f} s, "
          f"measure {end - middle:.1f} s)")


def bench_search_choice(n_base: int, n_queries: int, d: int = 384) -> None:
    rng = np.random.default_rng(1)
    base = clustered_vectors(n_base, d, rng)
    queries = clustered_vectors(n_queries, d, rng)
    start = time.perf_counter()
    exact_idx = NeighbourIndex(base, exact=True).search(queries, 5)[1]
    exact = time.perf_counter() - start
    index = NeighbourIndex(base, exact=False)
    start = time.perf_counter()
    index._index()
    build = time.perf_counter() - start
    start = time.perf_counter()
    ann_idx = index.search(queries, 5)[1]
    query = time.perf_counter() - start
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact_idx, ann_idx)])
    pairs = n_base * n_queries
    per_pair = exact / pairs
    per_insert, per_query = build / n_base, query / n_queries
    print(f"search {n_queries} queries in {n_base} (d={d}): exact {exact:.1f} s "
          f"({per_pair * 1e9:.1f} ns/pair); hnsw build {build:.1f} s "
          f"({per_insert * 1e3:.2f} ms/vector) + query {query:.1f} s "
          f"({per_query * 1e3:.2f} ms/query), recall@5 {recall:.3f}")
    # For a self-search of n points: exact n^2 * per_pair vs n * (per_insert + per_query).
    cross = (per_insert + per_query) / per_pair
    print(f"  a self-search breaks even near n = {cross:,.0f} ({cross ** 2:.2g} pairs); "
          f"EXACT_MAX_PAIRS = {EXACT_MAX_PAIRS:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--skip-encode", action="store_true")
    args = parser.parse_args()
    if not args.skip_encode:
        bench_encoding(args.texts)
    for n in (int(s) for s in args.sizes.split(",")):
        bench_knn(n)
    bench_search_choice(20_000, 20_000)


if __name__ == "__main__":
    main()
