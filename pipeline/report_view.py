"""The view of report.html: what the page shows, as typed data built from the run.

    build_view(table, report, vectors, embedded, clusters) -> ReportView

The records table, report.json's dict and (when the embed stage ran) the embeddings, their
mask and the real clusters go in; out comes a `ReportView`: a bounded set of records (each
once, its text cut to what its longest use needs), the map's projected points, the per-cluster
shares with top terms and examples, and a stratified sample of the rejected records, each
beside what it matched. Nothing here writes HTML (report_html.py renders the view), so what
the page shows is testable without a browser; every sample is seeded, so the same run gives
the same view.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .records import REAL, SYNTHETIC, ColumnRows, Reason
from .text import LEXICAL_WORD, UNSPACED, words

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
# The PCA is fitted on at most this many real embeddings, and a rejected record's nearest real
# record is searched among at most this many real records (both seeded samples).
PCA_FIT_SAMPLE = 5_000
NEAREST_REAL_SAMPLE = 50_000

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

# Score columns shown beside a record (with which test matched it, the off-distribution signal
# that fired, the benchmark item it carries), and the one that ranks records of each first
# reason.
SCORE_COLUMNS = ("dup_similarity", "real_nn_sim", "formulaic", "distance_pctl", "cluster",
                 "generation", "benchmark_match", "dup_test", "off_distribution_signal")
RANK_SCORE = {"exact_duplicate": "dup_similarity", "near_duplicate": "dup_similarity",
              "copies_real": "dup_similarity", "formulaic": "formulaic",
              "off_distribution": "distance_pctl", "benchmark_overlap": "benchmark_similarity",
              "share_cap": "real_nn_sim"}
# Which test matched a duplicate or copy (decisions' `dup_test`), as the page says it.
DUP_TESTS = {"exact": "the same text once normalized",
             "jaccard": "MinHash, confirmed by word-shingle Jaccard similarity",
             "cosine": "embedding cosine similarity (a rewording)",
             "closeness": "embedding closeness, relative to the real record's own neighbours"}


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
    # synthetic.rejected_share's count: valid synthetic records, those rejected for quality,
    # and per quality reason the records carrying it.
    synthetic_valid: int = 0
    synthetic_quality_rejected: int = 0
    quality_reasons: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def page_data(self) -> dict[str, Any]:
        """What the page's script reads: records, map points and the rejected sample."""
        return _jsonable({"records": [asdict(r) for r in self.records],
                          "map": asdict(self.map),
                          "rejected": [asdict(r) for r in self.rejected],
                          "rejected_total": self.rejected_total,
                          "reasons": {k: {"label": _reason_label(k), "color": _color(k),
                                          "total": v} for k, v in self.rejected_by_reason.items()},
                          "signals": self._signal_labels(), "tests": DUP_TESTS})

    def _signal_labels(self) -> dict[str, str]:
        """The off-distribution signals the records carried, as the page says them."""
        names = {r.scores.get("off_distribution_signal") for r in self.records}
        return {n: signal_label(n) for n in sorted(n for n in names if isinstance(n, str))}



def build_view(table: pd.DataFrame | None, report: dict, vectors: np.ndarray | None = None,
               embedded: np.ndarray | None = None, clusters: Any = None,
               map_points: int = MAP_POINTS, rejected_sample: int = REJECTED_SAMPLE
               ) -> ReportView:
    """The page's data from the final records table, the report dict and, when the embed
    stage ran, its vectors (one row per table row, or one per embedded row), the mask of
    embedded rows and the real clusters ({"sizes", "rare"} or an object with those
    attributes). Any of them may be None: the view then says what it cannot show and why.
    At most `map_points` points on the map and `rejected_sample` rejected records."""
    seed = int((report.get("config") or {}).get("seed") or 0)
    view = ReportView(report=report, seed=seed)
    if table is None or len(table) == 0:
        why = "this report was built without its records table" if table is None \
            else "the run had no records"
        view.map.empty = f"No map: {why}."
        view.clusters_empty = f"No clusters: {why}."
        return view
    from .measure import quality_rejections

    view.synthetic_valid, view.synthetic_quality_rejected, view.quality_reasons = \
        quality_rejections(table)
    store = _RecordStore(table)
    vectors, embedded = _full_vectors(vectors, embedded, len(table))
    _rejections(view, table, store, vectors, embedded, seed, rejected_sample)
    view.map = _map(table, store, vectors, embedded, seed, report, map_points)
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
        # Texts row by row, only for the records the page shows: a list of every text would
        # be a second copy of all of them (gigabytes at a million records).
        self.texts = ColumnRows(table["text"])
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
                vectors: np.ndarray | None, embedded: np.ndarray, seed: int,
                budget: int) -> None:
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
    sample = rows[fair_sample(first, budget, np.random.default_rng(seed))]

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
         embedded: np.ndarray, seed: int, report: dict, budget: int) -> MapView:
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
    pick = fair_sample(keys, budget, rng)
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
    log(1 + mean class size / the word's frequency over all classes). Words are synthgate's
    (text.words: normalized, a character of an unspaced script a word of its own) cut to
    their lexical part (text.LEXICAL_WORD); a term holds a letter and is 3 characters or more
    (one unspaced-script character counts). English stop words and words seen once in a class
    are left out; ties go alphabetically."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    counts = []
    for texts in docs:
        c = Counter(w for t in texts for piece in words(t) for w in LEXICAL_WORD.findall(piece)
                    if _is_term(w) and w not in ENGLISH_STOP_WORDS)
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


def _is_term(word: str) -> bool:
    return (len(word) >= 3 or UNSPACED.fullmatch(word) is not None) and \
        any(ch.isalpha() for ch in word)


# ----------------------------------------------------------------------------- labels

def signal_parts(name: str) -> tuple[str, str]:
    """(raw signal, side) of an off-distribution signal's name: `word_length_low` ->
    ("word_length", "low"); a name without a side is the high one (offdist.signal_name)."""
    from .offdist import DESCRIPTIONS

    for suffix in ("_low", "_high"):
        if name.endswith(suffix) and name[:-len(suffix)] in DESCRIPTIONS:
            return name[:-len(suffix)], suffix[1:]
    return name, "high"


def signal_label(name: str) -> str:
    """An off-distribution signal (`word_length_low`, `char_lm`) as a person reads it: what it
    measures and which side of the real records' values is strange."""
    from .offdist import DESCRIPTIONS

    raw, side = signal_parts(name)
    return f"{DESCRIPTIONS[raw]}, too {side}" if raw in DESCRIPTIONS else name.replace("_", " ")


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


def _jsonable(value: Any) -> Any:
    from .report import jsonable
    return jsonable(value)

