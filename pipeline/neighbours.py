"""Cosine nearest neighbours among unit vectors: exact in blocks while that is fast enough,
an HNSW index (usearch) beyond. Every k-NN question of the embed stage and of the set metrics
goes through `NeighbourIndex`."""

from __future__ import annotations

from typing import Iterator

import numpy as np

# Exact blocked search up to this many query x base pairs, an HNSW index (usearch) beyond.
# Measured by benchmarks/embed.py on 2 shared CPU threads, d = 384: exact ~11-26 ns a pair,
# the index ~0.1-0.5 ms a vector inserted plus ~0.5-0.9 ms a query, so a self-search breaks
# even near 2e9 pairs (n ~ 48k; at 60k real sentences: exact 41 s, index 35 s). The index is
# approximate: on real sentence embeddings (python3-doc + fortunes, all-MiniLM-L6-v2) its
# recall of the true 5 nearest neighbours is 0.9945 at 30k and 0.9912 at 60k with the
# settings below (the target is 0.98; expansion_search 256 gives 0.9985 for twice the query
# time). On the benchmark's noisy synthetic vectors, where true neighbours are near-ties, it
# is far lower (0.71): only large runs use it.
EXACT_MAX_PAIRS = 2_000_000_000
# Similarity block of the exact search: rows x base <= this many floats (~64 MB).
BLOCK_FLOATS = 1 << 24


def batches(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most `size` over range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)


class NeighbourIndex:
    """Cosine nearest neighbours among the rows of `base` (unit vectors).

    Exact, by blocked matrix products (memory O(block x n), never n x n), while the search is
    small enough; an HNSW index beyond, built once and single-threaded so that the same inputs
    give the same graph and the same neighbours.
    """

    def __init__(self, base: np.ndarray, exact: bool | None = None):
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.exact = exact
        self._ann = None

    def __len__(self) -> int:
        return len(self.base)

    def use_exact(self, n_queries: int) -> bool:
        if self.exact is not None:
            return self.exact
        return len(self.base) * n_queries <= EXACT_MAX_PAIRS

    def _blocks(self, queries: np.ndarray):
        """(row slice, similarity block as a torch tensor) over the queries."""
        import torch
        base = torch.from_numpy(self.base)
        rows = max(1, BLOCK_FLOATS // max(1, len(self.base)))
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        for part in batches(len(queries), rows):
            yield part, q[part] @ base.T

    def _index(self):
        if self._ann is None:
            from usearch.index import Index
            self._ann = Index(ndim=self.base.shape[1], metric="ip", dtype="f32",
                              connectivity=16, expansion_add=64, expansion_search=128)
            self._ann.add(np.arange(len(self.base), dtype=np.uint64), self.base, threads=1)
        return self._ann

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar base rows of each query: (similarities, base indices), best
        first. `exclude[i]` is a base row query i must not match (itself), or -1. Missing
        neighbours (k > available) are similarity -inf, index -1."""
        n = len(queries)
        k = max(1, k)
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        idx = np.full((n, k), -1, dtype=np.int64)
        if n == 0 or len(self.base) == 0:
            return sims, idx
        extra = 0 if exclude is None else 1
        want = min(k + extra, len(self.base))
        if self.use_exact(n):
            import torch
            for part, block in self._blocks(queries):
                if exclude is not None:
                    ex = torch.from_numpy(exclude[part])
                    rows = torch.nonzero(ex >= 0).flatten()
                    block[rows, ex[rows]] = -torch.inf
                top = torch.topk(block, min(k, len(self.base)), dim=1)
                got = top.values.shape[1]
                sims[part, :got] = top.values.numpy()
                idx[part, :got] = top.indices.numpy()
        else:
            # Queries are independent, so searching on every core changes no result.
            matches = self._index().search(np.ascontiguousarray(queries, dtype=np.float32),
                                           want, threads=0)
            keys = matches.keys.astype(np.int64)[:, :want]
            found = 1.0 - matches.distances[:, :want].astype(np.float32)
            valid = np.arange(want)[None, :] < matches.counts[:, None]
            if exclude is not None:
                valid &= keys != exclude[:, None]
            for i in range(n):  # compact each row: drop the excluded and the missing
                got = np.flatnonzero(valid[i])[:k]
                sims[i, :len(got)] = found[i, got]
                idx[i, :len(got)] = keys[i, got]
        # Float error can put a self-match a hair above 1; similarities are cosines.
        np.clip(sims, -1.0, 1.0, out=sims)
        sims[idx < 0] = -np.inf
        return sims, idx

    def ball_counts(self, radius_sim: np.ndarray, queries: np.ndarray, k_hint: int = 5
                    ) -> tuple[np.ndarray, np.ndarray]:
        """For balls around each base row (row i holds every point at cosine >= radius_sim[i]):
        how many balls hold each query, and whether any query falls in each ball.

        Exact in blocks; with the index, counted over each query's 10*k_hint nearest rows:
        whether a query is in any ball is then right, but in high dimensions a point can sit
        in the balls of centres beyond its nearest ones, so counts (density) may come out low.
        The stage keeps its fidelity searches small enough to be exact."""
        n_q = len(queries)
        counts = np.zeros(n_q, dtype=np.int64)
        covered = np.zeros(len(self.base), dtype=bool)
        if n_q == 0 or len(self.base) == 0:
            return counts, covered
        if self.use_exact(n_q):
            import torch
            radius = torch.from_numpy(np.ascontiguousarray(radius_sim, dtype=np.float32))
            hit_any = torch.zeros(len(self.base), dtype=torch.bool)
            for part, block in self._blocks(queries):
                inside = block >= radius[None, :]
                counts[part] = inside.sum(dim=1).numpy()
                hit_any |= inside.any(dim=0)
            covered = hit_any.numpy()
        else:
            sims, idx = self.search(queries, min(len(self.base), 10 * k_hint))
            safe = np.where(idx >= 0, idx, 0)
            inside = (idx >= 0) & (sims >= radius_sim[safe])
            counts = inside.sum(axis=1)
            # Coverage asks the other way round: each ball's nearest query.
            nearest, _ = NeighbourIndex(queries, exact=False).search(self.base, 1)
            covered = nearest[:, 0] >= radius_sim
        return counts, covered

