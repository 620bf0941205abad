"""report.html, the report people read: verdict, map, clusters, rejections, gate, metrics, stages.

Two steps, so that what the page shows is explicit data, testable without a browser:

    build_view(table, report, vectors, embedded, clusters) -> ReportView    typed page data
    render(view) -> str                                                     one HTML file

`to_html(...)` does both: it is the one call the runner makes once the report is built.

What goes where. report.json stays the machine contract (DESIGN.md §4) and gains nothing per
record: its per-cluster counts are already in `details.mix.clusters`, every decision is in
decisions.parquet. What only a person needs (map coordinates, a bounded sample of rejected
records beside the record each one matched, example texts and top terms per cluster) lives in
the HTML only, bounded by the constants below; the page says whenever it shows a sample.

Every record text is untrusted. Text rendered here goes through html.escape. The data the
page's script reads is JSON inside <script type="application/json"> with <, >, &, U+2028 and
U+2029 written as \\u escapes, so no record can end that element; the script writes record
text only through textContent and never builds a URL from data. A Content-Security-Policy meta
tag (default-src 'none') admits only the page's own inline script and style, by SHA-256 hash:
hashes rather than a nonce, so the same run gives a byte-identical file.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .records import REAL, SYNTHETIC, Reason

# Points drawn on the map at most; beyond, a stratified sample (every group keeps its share up
# to an equal slice of the budget), stated on the page. A canvas draws this many in a few ms.
MAP_POINTS = 4000
# Rejected records embedded in the page at most, sampled the same way over the first reason.
REJECTED_SAMPLE = 1500
# Characters of text kept per record: in the rejection list and cluster examples, and for a
# record that is only a point on the map (its hover text).
RECORD_CHARS = 600
MAP_TEXT_CHARS = 240
# Per cluster: top terms, example texts, and the real texts the terms are counted over.
CLUSTER_TERMS = 8
CLUSTER_REAL_EXAMPLES = 3
CLUSTER_SYNTHETIC_EXAMPLES = 2
TERM_TEXTS = 500
# A cluster whose share of the kept synthetic records is under this fraction of its share of
# the real records is marked under-covered; the summary names the worst of these.
UNDER_COVERED = 0.5
SUGGESTED_CLUSTERS = 3
# The PCA is fitted on at most this many real embeddings, and a rejected record's nearest real
# record is searched among at most this many real records (both seeded samples).
PCA_FIT_SAMPLE = 5_000
NEAREST_REAL_SAMPLE = 50_000

SECTIONS = ("summary", "map", "clusters", "rejections", "gate", "metrics", "stages")

REASON_LABELS = {
    "invalid": ("Invalid", "empty, too short, not text or undecodable"),
    "exact_duplicate": ("Exact duplicate", "the same normalized text as a kept record of its source"),
    "benchmark_overlap": ("Benchmark overlap", "carries an item of an evaluation set"),
    "near_duplicate": ("Near duplicate", "nearly the same text as a kept record of its source"),
    "copies_real": ("Copies a real record", "repeats or paraphrases a real record (memorization)"),
    "formulaic": ("Formulaic", "boilerplate beyond what the real records show"),
    "off_distribution": ("Off distribution", "unlike the real data beyond the calibrated bar"),
    "share_cap": ("Share cap", "acceptable, dropped to keep the synthetic share under the cap"),
}
# Map and pill colours: real and kept synthetic calm, each rejection reason its own hue.
GROUP_COLORS = {
    "real": "#9aa3b2", "kept": "#2563eb",
    "invalid": "#6b7280", "exact_duplicate": "#7c3aed", "benchmark_overlap": "#0f766e",
    "near_duplicate": "#c026d3", "copies_real": "#db2777", "formulaic": "#ea580c",
    "off_distribution": "#dc2626", "share_cap": "#ca8a04",
}
OTHER_COLOR = "#475569"

STAGE_LABELS = {
    "ingest": "Read and validate the inputs", "dedup": "Remove duplicates and copies",
    "decontaminate": "Remove benchmark items", "formulaic": "Score formulaic text",
    "embed": "Embed and compare with the real data", "mix": "Cap the synthetic share",
}

# Gate check codes -> what a person reads. Unknown codes fall back to the code itself.
CHECK_LABELS = {
    "input.ids_unique_per_source": "Record ids are unique within each source",
    "input.text_present": "Records carry usable text",
    "embed.calibrated": "Enough real records to calibrate the embedding checks",
    "embed.recall": "Recall: the kept synthetic set reaches the real data's range",
    "embed.coverage": "Coverage: kept synthetic records fill the real neighbourhoods",
    "embed.rare_coverage": "Rare real clusters reached by the kept synthetic set",
    "embed.vendi": "Diversity (Vendi score) of the kept synthetic set",
    "embed.distinct_2": "Word-pair variety (distinct-2) of the kept synthetic set",
    "output.every_record_decided_once": "Every input record is decided exactly once",
    "output.ids_unique": "Decision ids are unique",
    "output.rejected_have_reason": "Every rejected record says why",
    "output.train_equals_kept": "The training set is exactly the kept records",
    "output.synthetic_share": "Synthetic share of the output is within the cap",
}
# The collapse checks: what falls short, said in a few words, and the metric read against the
# real hold-out (report.json metrics.fidelity_kept / tails).
COLLAPSE_CHECKS = {
    "embed.recall": "recall", "embed.coverage": "coverage",
    "embed.rare_coverage": "rare-cluster coverage", "embed.vendi": "Vendi diversity",
    "embed.distinct_2": "distinct-2 variety",
}

# Metric -> (label, one sentence of what a value means).
METRIC_TEXT = {
    "precision": ("Precision", "Share of synthetic records that fall inside the real data's "
                  "k-NN neighbourhoods: 0.9 means 9 in 10 look like some real record."),
    "recall": ("Recall", "Share of real records that fall inside the synthetic records' "
               "neighbourhoods: 0.7 means 30% of the real data's range has no synthetic "
               "counterpart."),
    "density": ("Density", "How crowded the real neighbourhoods around synthetic records are, "
                "about 1 for real-like data; above 1, synthetic records pile up where real data "
                "is dense."),
    "coverage": ("Coverage", "Share of real records with at least one synthetic record inside "
                 "their own neighbourhood: 0.7 means 30% of real neighbourhoods get none."),
    "frechet": ("Fréchet distance", "Distance between the two embedding distributions (means "
                "and covariances); 0 is identical, read it against the hold-out's own."),
    "rare_coverage": ("Rare-cluster coverage", "Share of the rare real clusters (the smallest, "
                      "together ~10% of the real data) that synthetic records reach."),
    "clusters": ("Real clusters", "k-means clusters fitted on the real embeddings."),
    "rare_clusters": ("Rare clusters", "The smallest real clusters, together about 10% of the "
                      "real records: the tails that collapse loses first."),
    "records": ("Records", "Records measured (valid text)."),
    "compression_ratio": ("Compression ratio", "Raw over zlib-compressed size of the texts; "
                          "higher means more repetitive."),
    "distinct_1": ("Distinct-1", "Distinct words over all words: lower means a smaller "
                   "vocabulary in use."),
    "distinct_2": ("Distinct-2", "Distinct word pairs over all pairs: lower means more "
                   "repeated phrasing."),
    "distinct_4": ("Distinct-4", "Distinct 4-word runs over all runs: lower means repeated "
                   "passages."),
    "vendi": ("Vendi score", "The effective number of distinct records in embedding space "
              "(equal sample sizes); lower means less diverse."),
    "mean_words": ("Mean words", "Average record length in words."),
}
FIDELITY_KEYS = ("precision", "recall", "density", "coverage", "frechet")
DIVERSITY_KEYS = ("records", "compression_ratio", "distinct_1", "distinct_2", "distinct_4",
                  "vendi", "mean_words")

# Score columns shown beside a record, and the one that ranks records of each first reason.
SCORE_COLUMNS = ("dup_similarity", "real_nn_sim", "formulaic", "distance_pctl", "cluster",
                 "generation", "benchmark_match")
RANK_SCORE = {"exact_duplicate": "dup_similarity", "near_duplicate": "dup_similarity",
              "copies_real": "dup_similarity", "formulaic": "formulaic",
              "off_distribution": "distance_pctl", "benchmark_overlap": "benchmark_similarity",
              "share_cap": "real_nn_sim"}

_WORD = re.compile(r"[^\W\d_]{3,}")


# ----------------------------------------------------------------------------- the view

@dataclass
class RecordView:
    """One record as the page shows it; `text` cut to a bounded length (`cut` says so)."""

    id: str
    source: str
    text: str
    cut: bool
    kept: bool
    reasons: list[str]
    why: str
    scores: dict[str, Any]


@dataclass
class MapGroup:
    key: str          # "real", "kept" or the first rejection reason
    label: str
    color: str
    total: int        # embedded records of the group
    shown: int        # points drawn


@dataclass
class MapView:
    """Projected points; `empty` says why there are none."""

    method: str = ""
    axes: list[str] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    record: list[int] = field(default_factory=list)     # index into ReportView.records
    group: list[int] = field(default_factory=list)      # index into groups
    groups: list[MapGroup] = field(default_factory=list)
    embedded: int = 0
    not_embedded_rejected: int = 0
    empty: str | None = None


@dataclass
class ClusterView:
    id: int
    rare: bool
    under_covered: bool
    real: int
    synthetic_in: int
    synthetic_kept: int
    real_share: float
    synthetic_in_share: float
    synthetic_kept_share: float
    terms: list[str]
    real_examples: list[int]          # indexes into ReportView.records
    synthetic_examples: list[int]


@dataclass
class Match:
    """What a rejected record is shown beside: the record it duplicates or copies, its nearest
    real record, or the benchmark item it carries."""

    kind: str
    record: int | None = None         # index into ReportView.records
    ref: str | None = None            # an id or a benchmark item, when its text is not here
    similarity: float | None = None


@dataclass
class RejectedView:
    record: int
    score: float | None
    score_name: str | None
    match: Match | None


@dataclass
class ReportView:
    report: dict[str, Any]
    records: list[RecordView] = field(default_factory=list)
    map: MapView = field(default_factory=MapView)
    clusters: list[ClusterView] = field(default_factory=list)
    clusters_empty: str | None = None
    rejected: list[RejectedView] = field(default_factory=list)
    rejected_total: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)   # first reason, all
    seed: int = 0

    def page_data(self) -> dict[str, Any]:
        """What the page's script reads: records, map points and the rejected sample."""
        return _jsonable({"records": [asdict(r) for r in self.records],
                          "map": asdict(self.map),
                          "rejected": [asdict(r) for r in self.rejected],
                          "rejected_total": self.rejected_total,
                          "reasons": {k: {"label": _reason_label(k), "color": _color(k),
                                          "total": v} for k, v in self.rejected_by_reason.items()}})


def to_html(table: pd.DataFrame | None, report: dict, vectors: np.ndarray | None = None,
            embedded: np.ndarray | None = None, clusters: Any = None) -> str:
    """report.html from the final records table, the report dict and, when the embed stage
    ran, its vectors (one row per table row, or one per embedded row), the mask of embedded
    rows and the real clusters ({"sizes", "rare"} or an object with those attributes). Any of
    them may be None: the page then says what it cannot show and why."""
    return render(build_view(table, report, vectors, embedded, clusters))


def build_view(table: pd.DataFrame | None, report: dict, vectors: np.ndarray | None = None,
               embedded: np.ndarray | None = None, clusters: Any = None) -> ReportView:
    seed = int((report.get("config") or {}).get("seed") or 0)
    view = ReportView(report=report, seed=seed)
    if table is None or len(table) == 0:
        why = "this report was built without its records table" if table is None \
            else "the run had no records"
        view.map.empty = f"No map: {why}."
        view.clusters_empty = f"No clusters: {why}."
        return view
    store = _RecordStore(table)
    vectors, embedded = _full_vectors(vectors, embedded, len(table))
    _rejections(view, table, store, vectors, embedded, seed)
    view.map = _map(table, store, vectors, embedded, seed, report)
    view.clusters, view.clusters_empty = _clusters(table, store, clusters, seed, report)
    view.records = store.records
    return view


class _RecordStore:
    """Records the page carries, each once, with as much text as its longest use needs."""

    def __init__(self, table: pd.DataFrame):
        self.records: list[RecordView] = []
        self.index: dict[int, int] = {}
        # Columns as lists once: per-row pandas access costs ~0.1 ms a call.
        self.ids = [str(i) for i in table["id"].tolist()]
        self.sources = [str(s) for s in table["source"].tolist()]
        self.kept = table["kept"].to_numpy(dtype=bool)
        self.texts = table["text"].tolist()
        self.why = table["explanation"].tolist() if "explanation" in table else [""] * len(table)
        self.reasons = [list(r) if r is not None else [] for r in table["reasons"].tolist()]
        self.scores = {c: table[c].tolist() for c in SCORE_COLUMNS if c in table}

    def add(self, row: int, chars: int = RECORD_CHARS) -> int:
        row = int(row)
        text = self.texts[row] if isinstance(self.texts[row], str) else ""
        if row in self.index:
            rec = self.records[self.index[row]]
            if rec.cut and chars > len(rec.text):
                rec.text, rec.cut = _cut(text, chars)
            return self.index[row]
        scores = {}
        for col, values in self.scores.items():
            value = _plain(values[row])
            if value is not None:
                scores[col] = value
        body, cut = _cut(text, chars)
        why = self.why[row]
        self.records.append(RecordView(
            id=self.ids[row], source=self.sources[row], text=body, cut=cut,
            kept=bool(self.kept[row]), reasons=self.reasons[row],
            why=why if isinstance(why, str) else "", scores=scores))
        self.index[row] = len(self.records) - 1
        return self.index[row]


def _cut(text: str, chars: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= chars else (text[:chars].rstrip() + "…", True)


def _plain(value: Any) -> Any:
    """A JSON-ready scalar, or None for missing values."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else round(float(value), 4)
    if isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _full_vectors(vectors, embedded, n: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Vectors as one row per table row and the embedded mask; accepts vectors for the
    embedded rows only (in row order), as a typed embeddings result may hold them."""
    if vectors is None:
        return None, np.zeros(n, dtype=bool)
    vectors = np.asarray(vectors, dtype=np.float32)
    if embedded is None:
        embedded = np.ones(n, dtype=bool) if len(vectors) == n else None
    if embedded is None:
        raise ValueError(f"{len(vectors)} vectors for {n} records and no embedded mask")
    embedded = np.asarray(embedded, dtype=bool)
    if len(vectors) == n:
        return vectors, embedded
    if len(vectors) == int(embedded.sum()):
        full = np.zeros((n, vectors.shape[1]), dtype=np.float32)
        full[embedded] = vectors
        return full, embedded
    raise ValueError(f"{len(vectors)} vectors match neither the {n} records nor the "
                     f"{int(embedded.sum())} embedded ones")


def fair_sample(groups: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of at most `budget` items, stratified by group: every group gets an equal
    slice, groups smaller than their slice are taken whole and the rest is shared again, so a
    small group (a rare rejection reason) is never sampled away by a large one. Sorted."""
    groups = np.asarray(groups, dtype=object)
    if len(groups) <= budget:
        return np.arange(len(groups))
    keys = sorted(set(groups.tolist()), key=str)
    members = {k: np.flatnonzero(groups == k) for k in keys}
    quota, left, open_keys = {}, budget, list(keys)
    while open_keys:
        slice_ = left // len(open_keys)
        small = [k for k in open_keys if len(members[k]) <= slice_]
        if not small:
            for i, k in enumerate(open_keys):   # the remainder goes to the first groups
                quota[k] = slice_ + (1 if i < left - slice_ * len(open_keys) else 0)
            break
        for k in small:
            quota[k] = len(members[k])
            left -= len(members[k])
            open_keys.remove(k)
    picked = [members[k] if quota[k] >= len(members[k])
              else rng.choice(members[k], quota[k], replace=False) for k in keys]
    return np.sort(np.concatenate(picked)) if picked else np.arange(0)


# ----------------------------------------------------------------------------- rejections

def _rejections(view: ReportView, table: pd.DataFrame, store: _RecordStore,
                vectors: np.ndarray | None, embedded: np.ndarray, seed: int) -> None:
    kept = table["kept"].to_numpy(dtype=bool)
    rows = np.flatnonzero(~kept)
    first = np.array([store.reasons[r][0] if store.reasons[r] else "" for r in rows],
                     dtype=object)
    order = [r.value for r in Reason]
    counts = Counter(first.tolist())
    view.rejected_by_reason = {k: counts[k] for k in
                               sorted(counts, key=lambda k: (order.index(k) if k in order
                                                             else len(order), k))}
    view.rejected_total = len(rows)
    sample = rows[fair_sample(first, REJECTED_SAMPLE, np.random.default_rng(seed))]

    sources = table["source"].tolist()
    ids = table["id"].tolist()
    by_key = {(s, str(i)): row for row, (s, i) in enumerate(zip(sources, ids))}
    dup_of = table["dup_of"].tolist() if "dup_of" in table else [None] * len(table)
    bench = table["benchmark_match"].tolist() if "benchmark_match" in table else None
    need_nearest: list[int] = []
    pending: list[tuple[int, RejectedView]] = []
    for row in sample:
        reasons = store.reasons[row]
        score_name = RANK_SCORE.get(reasons[0]) if reasons else None
        score = _plain(table[score_name].iat[row]) if score_name in table else None
        if score_name == "dup_similarity" and score is None and "real_nn_sim" in table:
            score_name, score = "real_nn_sim", _plain(table["real_nn_sim"].iat[row])
        item = RejectedView(record=store.add(row), score=score if score_name else None,
                            score_name=score_name if score is not None else None, match=None)
        dup = dup_of[row]
        if isinstance(dup, str) and dup:
            copies = Reason.COPIES_REAL.value in reasons
            want = REAL if copies else sources[row]
            other = SYNTHETIC if want == REAL else REAL
            target = by_key.get((want, dup), by_key.get((other, dup)))
            sim = _plain(table["dup_similarity"].iat[row]) if "dup_similarity" in table else None
            if sim is None and copies and "real_nn_sim" in table:
                sim = _plain(table["real_nn_sim"].iat[row])
            item.match = Match(kind="copy of real record" if copies else "duplicate of",
                               record=store.add(target) if target is not None else None,
                               ref=dup, similarity=sim)
        elif bench is not None and isinstance(bench[row], str) and bench[row]:
            sim = _plain(table["benchmark_similarity"].iat[row]) \
                if "benchmark_similarity" in table else None
            item.match = Match(kind="benchmark item", ref=bench[row], similarity=sim)
        elif vectors is not None and embedded[row]:
            need_nearest.append(len(pending))
        pending.append((row, item))
    if need_nearest:
        queries = np.array([pending[i][0] for i in need_nearest])
        nearest, sims, searched = _nearest_real(table, vectors, embedded, queries, seed)
        kind = "nearest real record" if searched is None else \
            f"nearest of {searched:,} sampled real records"
        for i, target, sim in zip(need_nearest, nearest, sims):
            if target >= 0:
                pending[i][1].match = Match(kind=kind, record=store.add(target),
                                            similarity=round(float(sim), 4))
    view.rejected = [item for _, item in pending]


def _nearest_real(table: pd.DataFrame, vectors: np.ndarray, embedded: np.ndarray,
                  queries: np.ndarray, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Nearest embedded real record (cosine) of each query row, itself excluded; among a
    seeded sample of NEAREST_REAL_SAMPLE real records when there are more (then the sample
    size is returned third, else None)."""
    real = np.flatnonzero(embedded & (table["source"] == REAL).to_numpy())
    searched = None
    if len(real) > NEAREST_REAL_SAMPLE:
        real = np.sort(np.random.default_rng(seed).choice(real, NEAREST_REAL_SAMPLE,
                                                          replace=False))
        searched = len(real)
    if len(real) == 0:
        return np.full(len(queries), -1), np.zeros(len(queries)), None
    base = vectors[real]
    best = np.full(len(queries), -1, dtype=np.int64)
    sims = np.full(len(queries), -np.inf, dtype=np.float32)
    step = max(1, (1 << 22) // len(real))     # similarity blocks of ~16 MB
    for start in range(0, len(queries), step):
        q = queries[start:start + step]
        block = vectors[q] @ base.T
        block[real[None, :] == q[:, None]] = -np.inf
        arg = np.argmax(block, axis=1)
        best[start:start + step] = real[arg]
        sims[start:start + step] = block[np.arange(len(q)), arg]
    best[~np.isfinite(sims)] = -1
    return best, sims, searched


# ----------------------------------------------------------------------------- map

def _map(table: pd.DataFrame, store: _RecordStore, vectors: np.ndarray | None,
         embedded: np.ndarray, seed: int, report: dict) -> MapView:
    out = MapView(method="PCA")
    rejected_rows = ~table["kept"].to_numpy(dtype=bool)
    if vectors is None:
        stages = (report.get("config") or {}).get("stages") or []
        out.empty = ("No map: the embed stage did not run in this run (stages: "
                     f"{', '.join(map(str, stages)) or 'none'}), so there are no embeddings "
                     "to draw." if "embed" not in stages else
                     "No map: the embeddings of this run were not handed to the report.")
        return out
    rows = np.flatnonzero(embedded)
    out.embedded = len(rows)
    out.not_embedded_rejected = int((rejected_rows & ~embedded).sum())
    if len(rows) < 3 or vectors.shape[1] < 2:
        out.empty = f"No map: only {len(rows)} records were embedded."
        return out
    source = table["source"].to_numpy()
    kept = table["kept"].to_numpy(dtype=bool)
    keys = np.array([REAL if source[r] == REAL else "kept" if kept[r]
                     else (store.reasons[r][0] if store.reasons[r] else "rejected")
                     for r in rows], dtype=object)
    order = ["real", "kept"] + [r.value for r in Reason]
    present = sorted(set(keys.tolist()), key=lambda k: (order.index(k) if k in order
                                                         else len(order), k))
    rng = np.random.default_rng(seed)
    pick = fair_sample(keys, MAP_POINTS, rng)
    real_rows = rows[keys == REAL]
    fit_rows = real_rows if len(real_rows) >= 3 else rows
    if len(fit_rows) > PCA_FIT_SAMPLE:
        fit_rows = np.sort(rng.choice(fit_rows, PCA_FIT_SAMPLE, replace=False))
    mean, axes, explained = pca_2d(vectors[fit_rows], seed)
    coords = (vectors[rows[pick]] - mean) @ axes.T
    fitted_on = "the real records" if len(real_rows) >= 3 else "all embedded records"
    out.method = f"PCA fitted on {fitted_on}' embeddings"
    out.axes = [f"PC{i + 1} ({explained[i]:.0%} of the variance)" for i in range(2)]
    out.x = [round(float(v), 5) for v in coords[:, 0]]
    out.y = [round(float(v), 5) for v in coords[:, 1]]
    out.record = [store.add(r, MAP_TEXT_CHARS) for r in rows[pick]]
    index = {k: i for i, k in enumerate(present)}
    out.group = [index[k] for k in keys[pick]]
    shown = Counter(keys[pick].tolist())
    total = Counter(keys.tolist())
    out.groups = [MapGroup(key=k, label=_group_label(k), color=_color(k), total=total[k],
                           shown=shown[k]) for k in present]
    return out


def pca_2d(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, 2 x d principal axes, explained-variance shares) of the rows of x. Randomized
    SVD (seeded), so 1,024-dimensional embeddings cost no more than a few products; each
    axis's sign is fixed (largest loading positive) so the same data gives the same picture."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=0)
    if len(x) < 3 or x.shape[1] < 2:
        axes = np.zeros((2, x.shape[1]), dtype=np.float32)
        axes[0, 0] = 1.0
        return mean, axes, np.array([1.0, 0.0])
    pca = PCA(n_components=2, svd_solver="randomized", random_state=seed).fit(x)
    axes = pca.components_.astype(np.float32)
    signs = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
    axes = axes * np.where(signs == 0, 1, signs)[:, None]
    return mean, axes, np.asarray(pca.explained_variance_ratio_, dtype=np.float64)


# ----------------------------------------------------------------------------- clusters

def _cluster_field(clusters: Any, name: str) -> Any:
    if isinstance(clusters, Mapping):
        return clusters.get(name)
    return getattr(clusters, name, None)


def _clusters(table: pd.DataFrame, store: _RecordStore, clusters: Any, seed: int,
              report: dict) -> tuple[list[ClusterView], str | None]:
    skipped = ((report.get("details") or {}).get("embed") or {}).get("skipped")
    if clusters is None or "cluster" not in table:
        stages = (report.get("config") or {}).get("stages") or []
        if skipped:
            return [], f"No clusters: the embed stage could not calibrate ({skipped})."
        if "embed" not in stages:
            return [], ("No clusters: the embed stage did not run, and the real clusters come "
                        "from its embeddings.")
        return [], "No clusters: the real clusters of this run were not handed to the report."
    sizes = np.asarray(_cluster_field(clusters, "sizes"))
    rare = {int(c) for c in (_cluster_field(clusters, "rare") or [])}
    k = len(sizes)
    cluster = table["cluster"].to_numpy(dtype=np.float64, na_value=np.nan)
    has = np.isfinite(cluster)
    cluster = np.where(has, cluster, -1).astype(np.int64)
    real = (table["source"] == REAL).to_numpy() & has
    synth = (table["source"] == SYNTHETIC).to_numpy() & has
    kept = synth & table["kept"].to_numpy(dtype=bool)
    counts = {name: np.bincount(cluster[mask], minlength=k)[:k]
              for name, mask in (("real", real), ("in", synth), ("kept", kept))}
    shares = {name: c / c.sum() if c.sum() else np.zeros(k) for name, c in counts.items()}
    rng = np.random.default_rng(seed)
    texts = store.texts
    members = {name: [np.flatnonzero(mask & (cluster == c)) for c in range(k)]
               for name, mask in (("real", real), ("kept", kept))}
    term_texts = []
    for c in range(k):
        rows = members["real"][c]
        if len(rows) > TERM_TEXTS:
            rows = np.sort(rng.choice(rows, TERM_TEXTS, replace=False))
        term_texts.append([texts[r] for r in rows if isinstance(texts[r], str)])
    terms = top_terms(term_texts, CLUSTER_TERMS)
    out = []
    for c in range(k):
        examples = {}
        for name, n in (("real", CLUSTER_REAL_EXAMPLES), ("kept", CLUSTER_SYNTHETIC_EXAMPLES)):
            rows = members[name][c]
            chosen = rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))
            examples[name] = [store.add(r) for r in chosen]
        under = bool(shares["real"][c] > 0
                     and shares["kept"][c] < UNDER_COVERED * shares["real"][c])
        out.append(ClusterView(
            id=c, rare=c in rare, under_covered=under, real=int(counts["real"][c]),
            synthetic_in=int(counts["in"][c]), synthetic_kept=int(counts["kept"][c]),
            real_share=float(shares["real"][c]), synthetic_in_share=float(shares["in"][c]),
            synthetic_kept_share=float(shares["kept"][c]), terms=terms[c],
            real_examples=examples["real"], synthetic_examples=examples["kept"]))
    return out, None


def top_terms(docs: list[list[str]], n: int) -> list[list[str]]:
    """The n most distinctive words of each class of texts by class-based TF-IDF (as BERTopic
    ranks topic words): a word's frequency in the class, over the class's word count, times
    log(1 + mean class size / the word's frequency over all classes). English stop words and
    words seen once in a class are left out; ties go alphabetically."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    counts = []
    for texts in docs:
        c = Counter(w for t in texts for w in _WORD.findall(t.lower())
                    if w not in ENGLISH_STOP_WORDS)
        counts.append(c)
    overall: Counter = Counter()
    for c in counts:
        overall.update(c)
    sizes = [sum(c.values()) for c in counts]
    mean_size = (sum(sizes) / len(sizes)) if sizes else 0.0
    out = []
    for c, size in zip(counts, sizes):
        if not size:
            out.append([])
            continue
        scored = [(-(tf / size) * math.log(1 + mean_size / overall[w]), w)
                  for w, tf in c.items() if tf >= 2]
        out.append([w for _, w in sorted(scored)[:n]])
    return out


# ----------------------------------------------------------------------------- labels

def _reason_label(code: str) -> str:
    return REASON_LABELS.get(code, (code.replace("_", " ").capitalize(), ""))[0]


def _group_label(key: str) -> str:
    if key == "real":
        return "Real"
    if key == "kept":
        return "Synthetic, kept"
    return f"Synthetic, rejected: {_reason_label(key).lower()}"


def _color(key: str) -> str:
    return GROUP_COLORS.get(key, OTHER_COLOR)


def check_label(name: str) -> str:
    if name in CHECK_LABELS:
        return CHECK_LABELS[name]
    for prefix, label in CHECK_LABELS.items():
        if name.startswith(prefix + "."):
            return f"{label} ({name[len(prefix) + 1:]})"
    return name


def _jsonable(value: Any) -> Any:
    from .report import jsonable
    return jsonable(value)


# ----------------------------------------------------------------------------- HTML

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "–"
        if v == int(v) and abs(v) < 1e6:
            return f"{int(v):,}"
        return f"{v:.{digits}g}"
    return _e(value)


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x < 0.001:
        return "<0.1%"
    return f"{x:.0%}" if x >= 0.1 else f"{x:.1%}"


def safe_json(data: Any) -> str:
    """JSON that cannot end or confuse the <script> element holding it: <, >, & and the
    line separators U+2028/U+2029 (line ends to older JavaScript) as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()
                                         ).decode("ascii") + "'"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")


def render(view: ReportView) -> str:
    report = view.report
    css, script = _asset("report.css"), _asset("report.js")
    csp = ("default-src 'none'; script-src " + _csp_hash(script) + "; style-src "
           + _csp_hash(css) + "; img-src data:; base-uri 'none'; form-action 'none'")
    passed = bool(report["gate"]["passed"])
    parts = {
        "csp": _e(csp), "verdict": "PASS" if passed else "FAIL",
        "verdict_class": "pass" if passed else "fail", "css": css, "script": script,
        "version": _e(report.get("synthgate_version", "")),
        "config_hash": _e((report.get("config") or {}).get("hash", "")),
        "summary": _summary(view), "map": _map_html(view), "clusters": _clusters_html(view),
        "rejections": _rejections_html(view), "gate": _gate_html(view),
        "metrics": _metrics_html(view), "stages": _stages_html(view),
        "data": safe_json(view.page_data()),
    }
    # One pass over the template: text substituted in is never scanned for placeholders again.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("report.html"))


def _bar_svg(rows: list[tuple[str, float, str, str]], width: int = 300, top: float = 1.0,
             label_w: int = 104, value_w: int = 70) -> str:
    """Horizontal bars [(label, value, colour, value text)] on a common 0..top scale."""
    h, gap = 14, 6
    bar_w = width - label_w - value_w
    out = [f'<svg class="bars" width="{width}" height="{len(rows) * (h + gap)}" '
           f'viewBox="0 0 {width} {len(rows) * (h + gap)}" role="img">']
    for i, (label, value, color, text) in enumerate(rows):
        y = i * (h + gap)
        w = 0 if top <= 0 else max(0.0, min(1.0, value / top)) * bar_w
        out.append(f'<text x="0" y="{y + 11}" class="bl">{_e(label)}</text>'
                   f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{h}" class="track"/>'
                   f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{h}" fill="{color}"/>'
                   f'<text x="{label_w + bar_w + 6}" y="{y + 11}" class="bv">{_e(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _swatch(color: str) -> str:
    return (f'<svg class="sw" width="10" height="10" viewBox="0 0 10 10" aria-hidden="true">'
            f'<circle cx="5" cy="5" r="5" fill="{color}"/></svg>')


# --- summary

def suggested_clusters(view: ReportView) -> list[ClusterView]:
    """The real clusters kept synthetic covers least relative to their real share: where to
    generate more. Under-covered ones, rare first among equals, worst first."""
    under = [c for c in view.clusters if c.real_share > 0
             and c.synthetic_kept_share < c.real_share]
    under.sort(key=lambda c: (c.synthetic_kept_share / c.real_share, not c.rare, c.id))
    return under[:SUGGESTED_CLUSTERS]


def _cluster_name(c: ClusterView) -> str:
    terms = ", ".join(c.terms[:3])
    return f"cluster {c.id}" + (f" ({terms})" if terms else "")


def _holdout_value(report: dict, check: dict) -> tuple[Any, Any]:
    """The real hold-out's figure for a collapse check and its interval, when known: from the
    check itself (`reference`, `interval`) or from metrics.fidelity_kept / tails."""
    if "reference" in check:
        return check.get("reference"), check.get("interval")
    metrics = report.get("metrics") or {}
    key = check["name"].split(".", 1)[-1]
    fid = metrics.get("fidelity_kept") or {}
    if key in FIDELITY_KEYS and isinstance(fid.get("real_holdout"), dict):
        return (fid["real_holdout"].get(key),
                (fid.get("real_holdout_interval") or {}).get(key) or check.get("interval"))
    if key == "rare_coverage":
        tails = metrics.get("tails") or {}
        return tails.get("rare_coverage_real_holdout"), check.get("interval")
    # The Vendi and distinct-2 hold-out figures are measured for the check only; its message
    # states them ("0.8 × real hold-out 48.75").
    said = _HOLDOUT_SAID.search(check.get("message") or "") if check["name"] in COLLAPSE_CHECKS \
        else None
    return (float(said.group(1)) if said else None), check.get("interval")


_HOLDOUT_SAID = re.compile(r"real hold-out (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")


def _interval(iv: Any) -> str:
    if isinstance(iv, (list, tuple)) and len(iv) == 2:
        return f" <span class='iv'>[{_fmt(iv[0], 3)}–{_fmt(iv[1], 3)}]</span>"
    return ""


def _summary(view: ReportView) -> str:
    report = view.report
    inp, outp, gate = report["inputs"], report["output"], report["gate"]
    checks = gate["checks"]
    failed = [c for c in checks if not c["passed"]]
    total_in = inp["real"] + inp["synthetic"]
    total_out = outp["real"] + outp["synthetic"]
    removed = total_in - total_out
    cap = (report.get("config") or {}).get("max_synthetic_share")
    compared = any(c["name"] in COLLAPSE_CHECKS for c in checks)
    if gate["passed"]:
        sentence = (f"<strong>Gate passed.</strong> {_fmt(outp['synthetic'])} synthetic records "
                    f"are kept beside {_fmt(outp['real'])} real ones, and the run passes all "
                    f"{len(checks)} checks"
                    + (", the kept synthetic set measured against a real hold-out included."
                       if compared else ". No check compared the synthetic set with the real "
                       "data's range and diversity (the embedding checks did not run)."))
    else:
        collapse = [COLLAPSE_CHECKS[c["name"]] for c in failed if c["name"] in COLLAPSE_CHECKS]
        others = [check_label(c["name"]).lower() for c in failed
                  if c["name"] not in COLLAPSE_CHECKS]
        said = []
        if collapse:
            said.append(f"the kept synthetic set falls short of the real hold-out on "
                        f"{_join(collapse)}")
        if others:
            said.append(f"failed: {_join(others)}")
        sentence = (f"<strong>Gate failed</strong> on {len(failed)} of {len(checks)} checks: "
                    f"{_e('; '.join(said))}. Do not train on this set as it is.")
    out = [f"<p class='verdict {'pass' if gate['passed'] else 'fail'}'>{sentence}</p>"]

    # The flow: in -> removed per reason -> out.
    counts = report.get("rejections") or {}
    top = max(counts.values()) if counts else 1
    bars = _bar_svg([(_reason_label(k), v, _color(k), _fmt(v)) for k, v in counts.items()],
                    width=380, top=top, label_w=150, value_w=50) if counts else \
        "<p class='muted'>Nothing was removed.</p>"
    share = outp.get("synthetic_share", 0.0)
    out.append(
        "<div class='flow'>"
        f"<div class='card'><div class='k'>In</div><div class='big'>{_fmt(total_in)}</div>"
        f"<div class='sub'>{_fmt(inp['real'])} real · {_fmt(inp['synthetic'])} synthetic</div>"
        "</div><div class='arrow' aria-hidden='true'>→</div>"
        f"<div class='card wide'><div class='k'>Removed</div><div class='big'>{_fmt(removed)}"
        f"</div>{bars}<div class='sub'>A record may carry several reasons; the bars count "
        "every reason a record carries.</div></div>"
        "<div class='arrow' aria-hidden='true'>→</div>"
        f"<div class='card'><div class='k'>Out</div><div class='big'>{_fmt(total_out)}</div>"
        f"<div class='sub'>{_fmt(outp['real'])} real · {_fmt(outp['synthetic'])} synthetic"
        f"</div><div class='sub'>synthetic share <b>{_pct(share)}</b>"
        + (f" (cap {_pct(cap)})" if isinstance(cap, (int, float)) else "")
        + "</div></div></div>")

    if failed:
        todo = []
        collapse = [c for c in failed if c["name"] in COLLAPSE_CHECKS]
        if collapse:
            figures = []
            for c in collapse:
                ref, iv = _holdout_value(report, c)
                what = COLLAPSE_CHECKS[c["name"]]
                figures.append(f"{what} is {_fmt(c['observed'], 3)}"
                               + (f" where a real sample of the same size reaches "
                                  f"{_fmt(ref, 3)}" if ref is not None else "")
                               + f" (bar {_fmt(c['threshold'], 3)})")
            where = suggested_clusters(view)
            links = ", ".join(f"<a href='#cluster-{c.id}'>{_e(_cluster_name(c))}</a>"
                              + (" <span class='badge rare'>rare</span>" if c.rare else "")
                              for c in where)
            todo.append(
                f"<li>The kept synthetic set covers less of the real data, or varies less, "
                f"than a real sample does: {_e('; '.join(figures))}. "
                + (f"Generate more records like the real ones in {links}: kept synthetic "
                   "records are scarcest there relative to the real data (see Clusters)."
                   if where else "Generate more varied records, closer to the whole range "
                   "of the real data.") + "</li>")
        for c in failed:
            if c["name"] not in COLLAPSE_CHECKS:
                todo.append(f"<li><b>{_e(check_label(c['name']))}</b>: {_e(c['message'])}</li>")
        out.append("<h3>What to do</h3><ul class='todo'>" + "".join(todo) + "</ul>")
    return "\n".join(out)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# --- map

def _map_html(view: ReportView) -> str:
    m = view.map
    if m.empty:
        return (f"<p class='empty'>{_e(m.empty)}</p>"
                "<canvas id='map-canvas' width='0' height='0' data-points='0'></canvas>")
    shown = sum(g.shown for g in m.groups)
    legend = "".join(
        f"<li><label><input type='checkbox' checked data-group='{i}'> {_swatch(g.color)} "
        f"{_e(g.label)} <span class='muted'>{_fmt(g.shown)}"
        + (f" of {_fmt(g.total)}" if g.shown < g.total else "") + "</span></label></li>"
        for i, g in enumerate(m.groups))
    sampled = (f"All {_fmt(shown)} embedded records are drawn." if shown == m.embedded else
               f"{_fmt(shown)} of {_fmt(m.embedded)} embedded records are drawn: a seeded "
               f"sample that gives every group an equal slice of {_fmt(MAP_POINTS)} points "
               f"(a group smaller than its slice is drawn whole), so the groups' densities are "
               f"not to scale.")
    missing = (f" {_fmt(m.not_embedded_rejected)} rejected records are not on the map: "
               "invalid records and duplicates are removed before the embedding stage."
               if m.not_embedded_rejected else "")
    return (
        "<p class='lede'>Each dot is a record, placed by a projection of its embedding onto the "
        "two directions along which the real records vary most. Synthetic records that sit "
        "where real ones sit are like the real data; a region with real dots and no blue ones "
        "is a part of the real data the kept synthetic set does not cover. Hover a dot to read "
        "its record.</p>"
        "<div class='mapbox'><div class='mapframe'><canvas id='map-canvas' width='900' "
        f"height='560' data-points='0' aria-label='map of {shown} records'></canvas>"
        "<div id='map-tip' class='tip' hidden></div></div>"
        f"<ul class='legend'>{legend}</ul></div>"
        f"<p class='note'>{_e(m.method)}; x: {_e(m.axes[0])}, y: {_e(m.axes[1])}. "
        f"{_e(sampled)}{_e(missing)}</p>")


# --- clusters

def _clusters_html(view: ReportView) -> str:
    if view.clusters_empty:
        return f"<p class='empty'>{_e(view.clusters_empty)}</p>"
    if not view.clusters:
        return "<p class='empty'>No clusters.</p>"
    top = max(max(c.real_share, c.synthetic_in_share, c.synthetic_kept_share)
              for c in view.clusters) or 1.0
    rare = sum(c.rare for c in view.clusters)
    under = sum(c.under_covered for c in view.clusters)
    out = [f"<p class='lede'>The real records fall into {len(view.clusters)} clusters "
           f"(k-means on their embeddings); {rare} of them are <span class='badge rare'>rare"
           "</span>: the smallest, together about a tenth of the real data, the tails that "
           "collapse loses first. Each bar is the share of a set that falls in the cluster: "
           "the real records, the synthetic records that reached the embedding stage "
           "(<i>synthetic in</i>), and the synthetic records kept. Kept synthetic should "
           "follow real. "
           + (f"{under} cluster{'s are' if under != 1 else ' is'} "
              f"<span class='badge under'>under-covered</span>: kept synthetic share under "
              f"{UNDER_COVERED:g} × the real share." if under else "No cluster is under-covered.")
           + " Top terms are the cluster's most distinctive words among its real records "
           "(class-based TF-IDF).</p>"]
    records = view.records
    rows = sorted(view.clusters, key=lambda c: (-c.real_share, c.id))
    out.append("<div class='clusters'>")
    for c in rows:
        badges = ("<span class='badge rare'>rare</span>" if c.rare else "") + \
                 ("<span class='badge under'>under-covered</span>" if c.under_covered else "")
        bars = _bar_svg([("real", c.real_share, GROUP_COLORS["real"],
                          f"{_pct(c.real_share)} · {_fmt(c.real)}"),
                         ("synthetic in", c.synthetic_in_share, "#93b4f5",
                          f"{_pct(c.synthetic_in_share)} · {_fmt(c.synthetic_in)}"),
                         ("synthetic kept", c.synthetic_kept_share, GROUP_COLORS["kept"],
                          f"{_pct(c.synthetic_kept_share)} · {_fmt(c.synthetic_kept)}")],
                        width=340, top=top, label_w=92, value_w=88)
        first = (f"<p class='ex1'><span class='tag real'>real</span> "
                 f"{_e(records[c.real_examples[0]].text)}</p>") if c.real_examples else ""
        examples = "".join(f"<li><span class='tag real'>real</span> {_e(records[i].text)}</li>"
                           for i in c.real_examples)
        examples += "".join(f"<li><span class='tag kept'>kept synthetic</span> "
                            f"{_e(records[i].text)}</li>" for i in c.synthetic_examples)
        terms = " · ".join(_e(t) for t in c.terms) or "<span class='muted'>(too few words)</span>"
        out.append(
            f"<article class='cluster{' is-under' if c.under_covered else ''}' "
            f"id='cluster-{c.id}'><div class='chead'><h3>Cluster {c.id} {badges}</h3>"
            f"<p class='terms'>{terms}</p>{first}</div><div class='cbars'>{bars}</div>"
            f"<details class='cex'><summary>Examples: {len(c.real_examples)} real, "
            f"{len(c.synthetic_examples)} kept synthetic</summary><ul>{examples}</ul></details>"
            "</article>")
    out.append("</div>")
    return "\n".join(out)


# --- rejections

def _rejections_html(view: ReportView) -> str:
    if not view.rejected_total:
        return "<p class='empty'>No record was rejected.</p><div id='rej-app' hidden></div>"
    shown = len(view.rejected)
    # Every reason records carry in the run (report.json's counts), first reason or not: the
    # filter matches any reason a record carries.
    carried = view.report.get("rejections") or view.rejected_by_reason
    options = "".join(f"<option value='{_e(k)}'>{_e(_reason_label(k))} ({_fmt(v)})</option>"
                      for k, v in carried.items())
    sample = (f"All {_fmt(shown)} rejected records are in this page."
              if shown == view.rejected_total else
              f"This page holds {_fmt(shown)} of the {_fmt(view.rejected_total)} rejected "
              f"records: a seeded sample that gives every first reason an equal slice (a reason "
              f"with fewer records is here whole). decisions.parquet lists every one, e.g. "
              f"pandas.read_parquet('decisions.parquet').query('not kept').")
    return (
        "<p class='lede'>Every rejected record with why, and beside it the record it "
        "duplicates or copies (with their similarity), or for other reasons the nearest real "
        "record in embedding space. Filter by reason, search the text or id, sort by the "
        "reason's score.</p>"
        f"<p class='note'>{_e(sample)}</p>"
        "<div id='rej-app' class='controls'>"
        "<label>Reason <select id='rej-reason'><option value=''>All reasons</option>"
        f"{options}</select></label>"
        "<label>Search <input id='rej-q' type='search' placeholder='text or id' "
        "autocomplete='off'></label>"
        "<label>Sort <select id='rej-sort'><option value='order'>input order</option>"
        "<option value='score-desc'>score, highest first</option>"
        "<option value='score-asc'>score, lowest first</option></select></label>"
        "<span id='rej-count' class='muted'></span></div>"
        "<div id='rej-list' data-matching='0'></div>"
        "<nav id='rej-pager' class='pager'></nav>"
        "<noscript><p class='empty'>The rejection browser needs JavaScript; report.json "
        "holds examples of each reason.</p></noscript>")


# --- gate

def _scale_svg(observed: Any, threshold: Any, ref: Any, interval: Any, passed: bool) -> str:
    """Observed (dot) against the bar (dark line) and the real hold-out (grey tick, its
    interval as a band when known), on one 0-based scale."""
    values = [v for v in (observed, threshold, ref) if isinstance(v, (int, float))]
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        values += [v for v in interval if isinstance(v, (int, float))]
    if not isinstance(observed, (int, float)) or not values or min(values) < 0:
        return ""
    width, top = 150.0, max(values) * 1.12 or 1.0

    def x(v: float) -> float:
        return 6 + (width - 12) * v / top
    parts = [f'<svg class="scale" width="{width:.0f}" height="20" viewBox="0 0 {width:.0f} 20" '
             f'role="img"><title>observed {_fmt(observed)} · bar {_fmt(threshold)}'
             + (f" · real hold-out {_fmt(ref)}" if ref is not None else "") + "</title>"
             f'<line x1="6" y1="10" x2="{width - 6:.0f}" y2="10" stroke="#e2e8f0" '
             'stroke-width="2"/>']
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and \
            all(isinstance(v, (int, float)) for v in interval):
        parts.append(f'<rect x="{x(interval[0]):.1f}" y="5" width="'
                     f'{max(1.0, x(interval[1]) - x(interval[0])):.1f}" height="10" '
                     'fill="#cbd5e1" opacity=".7"/>')
    if isinstance(ref, (int, float)):
        parts.append(f'<line x1="{x(ref):.1f}" y1="3" x2="{x(ref):.1f}" y2="17" '
                     'stroke="#94a3b8" stroke-width="3"/>')
    if isinstance(threshold, (int, float)):
        parts.append(f'<line x1="{x(threshold):.1f}" y1="1" x2="{x(threshold):.1f}" y2="19" '
                     'stroke="#0f172a" stroke-width="2"/>')
    parts.append(f'<circle cx="{x(observed):.1f}" cy="10" r="5" '
                 f'fill="{"#15803d" if passed else "#b91c1c"}"/></svg>')
    return "".join(parts)


def _gate_html(view: ReportView) -> str:
    report = view.report
    checks = report["gate"]["checks"]
    # Failed checks first; otherwise in the order the pipeline ran them.
    ordered = [c for c in checks if not c["passed"]] + [c for c in checks if c["passed"]]
    rows = []
    for c in ordered:
        ref, iv = _holdout_value(report, c)
        held = f"{_fmt(ref)}{_interval(iv)}" if ref is not None else \
            ("<span class='muted'>–</span>" if iv is None else _interval(iv))
        chart = _scale_svg(c["observed"], c["threshold"], ref, iv, c["passed"]) \
            if ref is not None or iv is not None else ""
        rows.append(
            f"<tr class='{'ok' if c['passed'] else 'bad'}'>"
            f"<td><span class='pill {'pass' if c['passed'] else 'fail'}'>"
            f"{'pass' if c['passed'] else 'FAIL'}</span></td>"
            f"<td><div>{_e(check_label(c['name']))}</div><code>{_e(c['name'])}</code></td>"
            f"<td class='num'>{_fmt(c['observed'])}</td><td class='num'>{_fmt(c['threshold'])}"
            f"</td><td class='num'>{held}</td><td>{chart}</td>"
            f"<td class='msg'>{_e(c['message'])}</td></tr>")
    failed = sum(not c["passed"] for c in checks)
    return (f"<p class='lede'>{len(rows)} checks, {failed} failed"
            + (" (listed first)" if failed else "") + ". The collapse checks read the kept "
            "synthetic set against a held-out part of the real data, measured the same way at "
            "the same size; the others are data contracts on the input and the output.</p>"
            "<p class='note key'>"
            + _scale_svg(0.62, 0.7, 0.88, None, False)
            + " the red or green dot is the kept synthetic set, the dark line the bar it must "
            "reach, the grey tick the real hold-out (its interval as a band when known).</p>"
            "<table class='grid gate'><thead><tr><th></th><th>Check</th><th class='num'>Observed"
            "</th><th class='num'>Bar</th><th class='num'>Real hold-out</th><th></th><th>Why</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


# --- metrics

def _metric_row(name: str, cells: list[str]) -> str:
    label, meaning = METRIC_TEXT.get(name, (name, ""))
    return (f"<tr><th scope='row'><div>{_e(label)}</div><div class='meaning'>{_e(meaning)}"
            "</div></th>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")


def _kept_cell(value: Any, failed: bool) -> str:
    """The kept synthetic figure, in bold, red when the gate check on it failed."""
    return f"<b class='{'bad' if failed else ''}'>{_fmt(value)}</b>"


def _head(first: str, columns: list[str]) -> str:
    return (f"<table class='grid metrics'><thead><tr><th>{first}</th>"
            + "".join(f"<th class='num'>{c}</th>" for c in columns) + "</tr></thead><tbody>")


def _metrics_html(view: ReportView) -> str:
    metrics = view.report.get("metrics") or {}
    if not metrics:
        return "<p class='empty'>No metrics were computed in this run.</p>"
    failed = {c["name"].split(".", 1)[-1] for c in view.report["gate"]["checks"]
              if not c["passed"] and c["name"] in COLLAPSE_CHECKS}
    out = []
    fid_in, fid_kept = metrics.get("fidelity") or {}, metrics.get("fidelity_kept") or {}
    base = fid_kept.get("real_holdout") or fid_in.get("real_holdout") or {}
    intervals = fid_kept.get("real_holdout_interval") or fid_in.get("real_holdout_interval") or {}
    columns = ["Synthetic in", "Synthetic kept", "Real hold-out"]
    if fid_in or fid_kept:
        size = fid_kept.get("sample_size") or fid_in.get("sample_size")
        rows = [_metric_row(k, [_fmt(fid_in.get(k)), _kept_cell(fid_kept.get(k), k in failed),
                                _fmt(base.get(k)) + _interval(intervals.get(k))])
                for k in FIDELITY_KEYS if k in fid_in or k in fid_kept]
        out.append("<h3>Fidelity against the real data</h3><p class='note'>k-NN neighbourhoods "
                   "in embedding space (Naeem et al. 2020, k = 5). Each synthetic set and the "
                   "real hold-out are measured against the same real reference"
                   + (f", on {_fmt(size)} records each" if size else "") + ". A kept figure "
                   "in red failed its gate check.</p>"
                   + _head("Metric", columns) + "".join(rows) + "</tbody></table>")
    tails = metrics.get("tails") or {}
    if tails:
        said = (f"The real data falls into {_fmt(tails.get('clusters'))} clusters, "
                f"{_fmt(tails.get('rare_clusters'))} of them rare (the smallest, together about "
                "a tenth of the real records: the tails that collapse loses first).")
        table = ""
        if any(k.startswith("rare_coverage") for k in tails):
            table = _head("Metric", columns) + _metric_row("rare_coverage", [
                _fmt(tails.get("rare_coverage_in")),
                _kept_cell(tails.get("rare_coverage_kept"), "rare_coverage" in failed),
                _fmt(tails.get("rare_coverage_real_holdout"))
                + _interval(tails.get("rare_coverage_interval"))]) + "</tbody></table>"
        out.append(f"<h3>Tails</h3><p class='note'>{_e(said)}</p>{table}")
    sets = [k for k in ("real", "synthetic_in", "synthetic_kept")
            if isinstance(metrics.get(k), dict)]
    if sets:
        keys = [k for k in DIVERSITY_KEYS if any(k in metrics[s] for s in sets)]
        rows = [_metric_row(k, [(_kept_cell(metrics[s].get(k), k in failed)
                                 if s == "synthetic_kept" else _fmt(metrics[s].get(k)))
                                for s in sets]) for k in keys]
        names = {"real": "Real (all)", "synthetic_in": "Synthetic in",
                 "synthetic_kept": "Synthetic kept"}
        out.append("<h3>Diversity</h3><p class='note'>Model-free measures on up to 5,000 "
                   "records per set; the Vendi score on equal-size samples. The real column is "
                   "all the real records; the gate compares the kept synthetic set with the "
                   "real hold-out at equal size (see Gate).</p>"
                   + _head("Metric", [names[s] for s in sets]) + "".join(rows)
                   + "</tbody></table>")
    rest = {k: v for k, v in metrics.items() if k not in
            ("fidelity", "fidelity_kept", "tails", "real", "synthetic_in", "synthetic_kept")}
    if rest:
        from .report import _render
        out.append("<h3>Other metrics</h3><div class='generic'>" + _render(rest, 3) + "</div>")
    return "\n".join(out)


# --- stages

def _stages_html(view: ReportView) -> str:
    from .report import _render

    report = view.report
    stages = report.get("stages") or []
    longest = max([s.get("seconds") or 0 for s in stages] + [1e-9])
    total = sum(s.get("seconds") or 0 for s in stages)
    rows = []
    for s in stages:
        secs = s.get("seconds") or 0
        width = 160 * secs / longest
        removed = (s.get("records_in") or 0) - (s.get("records_out") or 0)
        rows.append(
            f"<tr><td><div>{_e(STAGE_LABELS.get(s['name'], s['name']))}</div>"
            f"<code>{_e(s['name'])}</code></td>"
            f"<td class='num'>{secs:.2f} s</td><td><svg width='160' height='10' "
            f"class='tbar' role='img'><rect width='{width:.1f}' height='10' fill='#64748b'/>"
            f"</svg></td><td class='num'>{_fmt(s.get('records_in'))}</td>"
            f"<td class='num'>{_fmt(s.get('records_out'))}</td>"
            f"<td class='num'>{_fmt(removed) if removed else '–'}</td></tr>")
    out = [f"<p class='lede'>The stages in the order they ran, {total:.2f} s in all. "
           "<i>In</i> and <i>out</i> count the records still kept before and after each "
           "stage.</p><table class='grid'><thead><tr><th>Stage</th><th class='num'>Time</th>"
           "<th></th><th class='num'>In</th><th class='num'>Out</th><th class='num'>Removed</th>"
           "</tr></thead><tbody>"
           + "".join(rows) + "</tbody></table>"]
    details = report.get("details") or {}
    if details:
        out.append("<h3>What each stage found</h3>")
        for name, detail in details.items():
            out.append(f"<details class='stage'><summary>{_e(STAGE_LABELS.get(name, name))} "
                       f"<code>{_e(name)}</code></summary>{_render(detail, 3)}</details>")
    config = report.get("config") or {}
    out.append("<details class='stage'><summary>Configuration <code>"
               f"{_e(config.get('hash', ''))}</code></summary><pre>"
               f"{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre></details>")
    return "\n".join(out)
