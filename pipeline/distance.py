"""Embed stage: judge each synthetic record against the real distribution in embedding space.

The real records are the yardstick (DESIGN.md section 5). A seeded part of them is held out;
the rest is the *reference*. Every threshold is the same statistic measured on the held-out
records against the same reference, so it means "as far as real data goes":

    off_distribution  `KnnDistanceScorer`: the cosine distance to the k-th nearest reference
                      record, above the configured quantile of the held-out records' own
    copies_real       `ParaphraseScorer`: cosine to the nearest real record above what real
                      records reach with each other, or closer to a real record, relative to
                      that record's own nearest real neighbour, than nearly any held-out
                      record comes (authenticity, Alaa et al. 2022)

The neighbours both scorers read are searched once (`RealNeighbours`). The stage turns their
scores into decisions, assigns every record its nearest real cluster, measures the synthetic
input (fidelity, rare coverage) beside the hold-out, and hands the `Embeddings` to the stages
after it: the share cap spreads its picks over the clusters, and the kept-set measurement
(pipeline/measure.py) gates the output for collapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .checks import Check
from .embed import embed_texts, ensure_embedder
from .fidelity import RealReference, SetMeter, assign_clusters, fit_real_clusters
from .neighbours import NeighbourIndex
from .records import Reason, holdout_mask, is_real, is_synthetic, reject, scorable
from .report import histogram
from .stage import BaseStage, Embeddings, RunContext, StageOutcome

# Fewer held-out real records than this and no threshold can be calibrated.
MIN_HOLDOUT = 10
HISTOGRAM_BINS = 30


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


# ----------------------------------------------------------------------------- neighbours

@dataclass
class RealNeighbours:
    """For every record of the table (NaN / -1 where not embedded): the similarities to its k
    nearest reference records, which reference record is nearest, and its nearest held-out
    record. A reference or held-out record never counts as its own neighbour."""

    ref_sims: np.ndarray     # (n, k) best first
    ref_nearest: np.ndarray  # (n,) table row of the nearest reference record, -1 if none
    hold_sim: np.ndarray     # (n,) similarity to the nearest held-out record
    hold_nearest: np.ndarray  # (n,) its table row
    exact: bool              # whether the search was exact (else HNSW)

    @classmethod
    def search(cls, vectors: np.ndarray, rows: np.ndarray, ref_rows: np.ndarray,
               hold_rows: np.ndarray, k: int) -> "RealNeighbours":
        n = len(vectors)
        # Position of each table row inside the reference / hold-out, for self-exclusion.
        pos_ref = np.full(n, -1, dtype=np.int64)
        pos_ref[ref_rows] = np.arange(len(ref_rows))
        pos_hold = np.full(n, -1, dtype=np.int64)
        pos_hold[hold_rows] = np.arange(len(hold_rows))
        ref_index = NeighbourIndex(vectors[ref_rows])
        ref_sims, ref_idx = ref_index.search(vectors[rows], k, exclude=pos_ref[rows])
        hold_sims, hold_idx = NeighbourIndex(vectors[hold_rows]).search(
            vectors[rows], 1, exclude=pos_hold[rows])
        out = cls(ref_sims=np.full((n, k), -np.inf, dtype=np.float32),
                  ref_nearest=np.full(n, -1, dtype=np.int64),
                  hold_sim=np.full(n, np.nan), hold_nearest=np.full(n, -1, dtype=np.int64),
                  exact=ref_index.use_exact(len(rows)))
        out.ref_sims[rows] = ref_sims
        out.ref_nearest[rows] = ref_rows[np.maximum(ref_idx[:, 0], 0)]
        out.hold_sim[rows] = hold_sims[:, 0]
        out.hold_nearest[rows] = hold_rows[np.maximum(hold_idx[:, 0], 0)]
        return out

    def nearest_real(self) -> tuple[np.ndarray, np.ndarray]:
        """(similarity, table row) of each record's nearest real record: the better of the
        reference and the hold-out."""
        ref_sim = self.ref_sims[:, 0].astype(float)
        from_ref = ref_sim >= self.hold_sim
        embedded = self.ref_nearest >= 0
        sim = np.where(embedded, np.where(from_ref, ref_sim, self.hold_sim), np.nan)
        row = np.where(embedded, np.where(from_ref, self.ref_nearest, self.hold_nearest), -1)
        return sim, row


# ----------------------------------------------------------------------------- scorers

class KnnDistanceScorer:
    """Off-distribution: a record's cosine distance to its k-th nearest reference record,
    against the held-out real records' own (`threshold_` at `quantile` of theirs)."""

    def __init__(self, k: int = 5, quantile: float = 0.99):
        self.k = k
        self.quantile = quantile

    def score_samples(self, neighbours: RealNeighbours) -> np.ndarray:
        return (1.0 - neighbours.ref_sims[:, self.k - 1]).astype(float)

    def fit(self, neighbours: RealNeighbours, holdout_rows: np.ndarray) -> "KnnDistanceScorer":
        self.holdout_scores_ = np.sort(self.score_samples(neighbours)[holdout_rows])
        self.threshold_ = _quantile(self.holdout_scores_, self.quantile)
        return self

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Where each score falls among the held-out records' own, 0..100."""
        return 100.0 * np.searchsorted(self.holdout_scores_, scores, side="right") \
            / len(self.holdout_scores_)


class ParaphraseScorer:
    """copies_real in embedding space, two tests each fitted on the held-out real records:

    similarity  cosine to the nearest real record above the `quantile` of the held-out
                records' own (`similarity_threshold_`)
    closeness   authenticity (Alaa et al. 2022): the distance to the nearest reference
                record over that record's own distance to its nearest other reference
                record, below the 1 - `quantile` quantile of the held-out records' own
                (`closeness_threshold_`). Against the reference only, a held-out record is
                judged exactly like a synthetic one (it could not be anyone's neighbour), so
                the hold-out gives the null distribution.
    """

    def __init__(self, quantile: float = 0.995):
        self.quantile = quantile

    @staticmethod
    def closeness(neighbours: RealNeighbours, reference: np.ndarray) -> np.ndarray:
        """Each record's closeness (NaN for reference records and records not embedded)."""
        gap = (1.0 - neighbours.ref_sims[:, 0]).astype(float)   # reference rows: to another
        gap[neighbours.ref_nearest < 0] = np.nan
        own = gap[np.maximum(neighbours.ref_nearest, 0)]
        closeness = np.where(own > 1e-6, gap / np.maximum(own, 1e-6),
                             np.where(gap > 1e-6, np.inf, 0.0))
        closeness[reference | (neighbours.ref_nearest < 0)] = np.nan
        return closeness

    def fit(self, neighbours: RealNeighbours, reference: np.ndarray,
            holdout_rows: np.ndarray) -> "ParaphraseScorer":
        sim, _ = neighbours.nearest_real()
        self.similarity_threshold_ = _quantile(sim[holdout_rows], self.quantile)
        self.closeness_threshold_ = _quantile(self.closeness(neighbours, reference)[holdout_rows],
                                              1.0 - self.quantile)
        return self


# ----------------------------------------------------------------------------- the stage

class EmbedStage(BaseStage):
    """Embeds the records; rejects synthetic records that paraphrase a real one, reword
    another synthetic record, or lie off the real distribution on any calibrated signal
    (embedding distance, local density, language, script, character model, text make-up);
    measures the synthetic input against the real hold-out.

    setup() makes the embedder (the model itself loads on the first text not in the cache)."""

    name = "embed"
    reads = ("text", "source", "id", "reasons")
    writes = ("real_nn_sim", "distance_pctl", "cluster", "dup_of", "dup_similarity",
              "dup_test", "off_distribution_signal")
    reasons = (Reason.COPIES_REAL, Reason.NEAR_DUPLICATE, Reason.OFF_DISTRIBUTION)

    def setup(self, ctx: RunContext) -> None:
        ensure_embedder(ctx)

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        cfg, seed = ctx.config.embed, ctx.config.seed
        n = len(table)
        texts = table["text"].tolist()
        embedded = scorable(table) & np.array([isinstance(t, str) for t in texts], dtype=bool)
        rows = np.flatnonzero(embedded)
        self.setup(ctx)   # idempotent: a caller that runs the stage alone needs no setup call
        embedder = ctx.embedder
        vecs = embed_texts([texts[i] for i in rows], embedder, ctx.progress)
        emb = np.zeros((n, vecs.shape[1] if len(rows) else 0), dtype=np.float32)
        emb[rows] = vecs

        details: dict[str, Any] = {"embedded": int(embedded.sum()),
                                   "dimensions": int(emb.shape[1])}
        if hasattr(embedder, "details"):   # ModelEmbedder, engines.ray_embed.RayEmbedder
            details.update(embedder.details())
        table["real_nn_sim"] = np.full(n, np.nan)
        table["distance_pctl"] = np.full(n, np.nan)
        table["cluster"] = pd.array([pd.NA] * n, dtype="Int64")

        real = is_real(table) & embedded
        holdout = holdout_mask(table, cfg.holdout_fraction, seed) & embedded
        reference = real & ~holdout
        ref_rows, hold_rows = np.flatnonzero(reference), np.flatnonzero(holdout)
        if len(hold_rows) < MIN_HOLDOUT or len(ref_rows) <= 2 * cfg.k:
            details["skipped"] = (f"too few real records to calibrate: {len(ref_rows)} "
                                  f"reference and {len(hold_rows)} held out (need more than "
                                  f"{2 * cfg.k} and at least {MIN_HOLDOUT})")
            # The gate cannot vouch for what it could not measure: say so as a failing check
            # rather than pass silently. A user who means it drops `embed` from --stages.
            check = Check("embed.calibrated", False, int(len(hold_rows)), MIN_HOLDOUT,
                          f"the embedding checks could not run: {details['skipped']}; add "
                          f"real records, or leave embed out of --stages to gate without them")
            return StageOutcome(details=details, checks=[check])

        neighbours = RealNeighbours.search(emb, rows, ref_rows, hold_rows, cfg.k)
        details["neighbour_search"] = "exact" if neighbours.exact else "hnsw (usearch)"
        distance = KnnDistanceScorer(cfg.k, cfg.off_distribution_quantile).fit(neighbours,
                                                                              hold_rows)

        kdist = np.where(embedded, distance.score_samples(neighbours), np.nan)
        pctl = np.full(n, np.nan)
        pctl[rows] = distance.percentile(kdist[rows])
        table["distance_pctl"] = np.round(pctl, 2)
        nn_sim, nn_row = neighbours.nearest_real()
        table["real_nn_sim"] = np.round(nn_sim, 4)

        synth = is_synthetic(table) & embedded
        # Copies of real records first (a copy is not judged as off-distribution), then what
        # lies off the real distribution, then rewordings among the synthetic records kept.
        copies = ParaphraseScorer(cfg.copy_quantile).fit(neighbours, reference, hold_rows)
        thresholds = {"copies_real_similarity": copies.similarity_threshold_,
                      "copies_real_closeness": copies.closeness_threshold_}
        by_test = _reject_copies(table, synth, nn_sim, nn_row,
                                 copies.closeness(neighbours, reference),
                                 neighbours.ref_nearest, copies)
        if cfg.signals:
            _reject_off_distribution(table, texts, emb, real, synth, cfg, seed, details,
                                     ctx.tasks)
        else:
            thresholds["off_distribution_knn_distance"] = distance.threshold_
            off = synth & scorable(table) & (kdist > distance.threshold_)
            reject(table, off, Reason.OFF_DISTRIBUTION,
                   [f"k-NN distance {kdist[i]:.3f} to real > {distance.threshold_:.3f}, the "
                    f"{cfg.off_distribution_quantile:g} quantile of held-out real records' own"
                    for i in np.flatnonzero(off)])
        if cfg.semantic_dedup:
            # Among the records still kept: junk of one kind (hex dumps, log lines) sits close
            # together in embedding space, but it is off-distribution first.
            bar = _quantile(nn_sim[hold_rows], cfg.semantic_dedup_quantile)
            thresholds["near_duplicate_similarity"] = bar
            by_test["near_duplicate_cosine"] = _reject_rewordings(
                table, emb, synth & table["kept"].to_numpy(), bar)

        clusters = fit_real_clusters(emb[ref_rows], seed)
        cluster = np.full(n, np.nan)
        cluster[rows] = assign_clusters(emb[rows], clusters.centroids)
        table["cluster"] = pd.array(cluster, dtype="Int64")          # NaN -> <NA>

        meter = SetMeter(reference=RealReference(emb[ref_rows], cfg.k,
                                                 self_sims=neighbours.ref_sims[ref_rows]),
                         holdout_rows=hold_rows, clusters=clusters, vectors=emb, texts=texts,
                         seed=seed)
        ctx.embeddings = Embeddings(vectors=emb, embedded=embedded, reference_rows=ref_rows,
                                    holdout_rows=hold_rows, clusters=clusters, meter=meter)

        details.update({
            "real_reference": len(ref_rows), "real_holdout": len(hold_rows),
            "thresholds": {name: round(value, 4) for name, value in thresholds.items()},
            "rejected_by_test": by_test,
            "knn_distance": histogram({"real hold-out": kdist[hold_rows],
                                       "synthetic": kdist[synth]}, bins=HISTOGRAM_BINS),
            "nearest_real_similarity": histogram({"real hold-out": nn_sim[hold_rows],
                                                  "synthetic": nn_sim[synth]},
                                                 bins=HISTOGRAM_BINS),
        })
        tails: dict[str, Any] = {"clusters": len(clusters.sizes),
                                 "rare_clusters": len(clusters.rare)}
        metrics: dict[str, Any] = {"tails": tails}
        synth_rows = np.flatnonzero(synth)
        if len(synth_rows):
            measured, base, size = meter.measure(synth_rows)
            metrics["fidelity"] = SetMeter.fidelity_report(measured, base, size)
            tails["rare_coverage_in"] = round(measured["rare_coverage"], 4)
            tails["rare_coverage_real_holdout"] = round(base["rare_coverage"], 4)
        return StageOutcome(details=details, metrics=metrics)


def _reject_copies(table: pd.DataFrame, synth: np.ndarray, nn_sim: np.ndarray,
                   nn_row: np.ndarray, closeness: np.ndarray, ref_nearest: np.ndarray,
                   scorer: ParaphraseScorer) -> dict[str, int]:
    """Paraphrased copies: too similar to a real record, or too close to one relative to
    how close real records sit to it. `dup_of` names the copied real record."""
    sim_cut = scorer.similarity_threshold_
    close_cut = scorer.closeness_threshold_
    by_sim = synth & (nn_sim > sim_cut)
    by_closeness = synth & ~by_sim & (closeness < close_cut)
    copied = np.where(by_sim, nn_row, ref_nearest)
    ids = table["id"].tolist()
    dup_of = table["dup_of"].to_numpy(copy=True)
    copies = by_sim | by_closeness
    dup_of[copies] = [ids[r] for r in copied[copies]]
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    sim = table["dup_similarity"].to_numpy(copy=True) if "dup_similarity" in table \
        else np.full(len(table), np.nan)
    how = table["dup_test"].to_numpy(dtype=object, copy=True) if "dup_test" in table \
        else np.full(len(table), None, dtype=object)
    sim[by_sim], how[by_sim] = nn_sim[by_sim], "cosine"
    sim[by_closeness], how[by_closeness] = closeness[by_closeness], "closeness"
    table["dup_similarity"], table["dup_test"] = sim, how
    reject(table, by_sim, Reason.COPIES_REAL,
           [f"paraphrase of real record {ids[copied[i]]}: cosine {nn_sim[i]:.3f} > "
            f"{sim_cut:.3f}, the {scorer.quantile:g} quantile of real records' "
            f"nearest-real similarity" for i in np.flatnonzero(by_sim)])
    reject(table, by_closeness, Reason.COPIES_REAL,
           [f"paraphrase of real record {ids[copied[i]]}: {closeness[i]:.3f} of that record's "
            f"own nearest-real distance, below {close_cut:.3f}, the "
            f"{1 - scorer.quantile:.3g} quantile of held-out real records' own"
            for i in np.flatnonzero(by_closeness)])
    return {"copies_real_similarity": int(by_sim.sum()),
            "copies_real_closeness": int(by_closeness.sum())}


def _reject_rewordings(table: pd.DataFrame, emb: np.ndarray, synth: np.ndarray,
                       bar: float) -> int:
    """Reworded near-duplicates among the synthetic records still in the running
    (`near_duplicate`, test `cosine`): cosine to a synthetic record kept before it above
    `bar`, what nearly no real record reaches with its nearest real record."""
    from .rewording import SemanticDuplicates

    rows = np.flatnonzero(synth & scorable(table))
    dropped, matched, cosine = SemanticDuplicates(bar).find(emb[rows])
    hit = rows[dropped]
    ids = table["id"].tolist()
    dup_of = table["dup_of"].to_numpy(copy=True)
    sim = table["dup_similarity"].to_numpy(copy=True) if "dup_similarity" in table \
        else np.full(len(table), np.nan)
    how = table["dup_test"].to_numpy(dtype=object, copy=True) if "dup_test" in table \
        else np.full(len(table), None, dtype=object)
    dup_of[hit] = [ids[r] for r in rows[matched[dropped]]]
    sim[hit] = cosine[dropped]
    how[hit] = "cosine"
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    table["dup_similarity"], table["dup_test"] = sim, how
    mask = np.zeros(len(table), dtype=bool)
    mask[hit] = True
    return reject(table, mask, Reason.NEAR_DUPLICATE,
                  [f"rewords synthetic record {dup_of[r]}: cosine {sim[r]:.3f} > {bar:.3f}, "
                   f"what real records reach with their nearest real record" for r in hit])


def _reject_off_distribution(table: pd.DataFrame, texts: list, emb: np.ndarray,
                             real: np.ndarray, synth: np.ndarray, cfg, seed: int,
                             details: dict, tasks=None) -> int:
    """`offdist.OffDistributionScorer` fitted on every embedded real record (cross-fitted),
    applied to the synthetic records still in the running; the signal that fired goes to
    `off_distribution_signal`."""
    from .offdist import OffDistributionScorer

    real_rows = np.flatnonzero(real)
    scorer = OffDistributionScorer(cfg.off_distribution_quantile, cfg.k, seed=seed).fit(
        [texts[i] for i in real_rows], emb[real_rows], tasks=tasks)
    rows = np.flatnonzero(synth & scorable(table))
    values = scorer.signal_values([texts[i] for i in rows], emb[rows], tasks=tasks)
    decided = scorer.decide(values)
    signal = np.full(len(table), None, dtype=object)
    signal[rows] = decided["signal"].to_numpy()
    table["off_distribution_signal"] = signal
    off = decided["off_distribution"].to_numpy()
    details["off_distribution_signals"] = {
        "quantile": cfg.off_distribution_quantile, "per_signal_level": scorer.level_,
        "thresholds": {k: round(float(v), 4) for k, v in scorer.thresholds_.items()},
        # ties in the order signals first fired (pandas 2's value_counts sort is unstable)
        "fired": {k: int(v) for k, v in decided["signal"].value_counts(sort=False)
                  .sort_values(ascending=False, kind="stable").items()},
        "real_languages": scorer.language_.top_languages_,
        "distributions": {name: histogram(pair, bins=HISTOGRAM_BINS) for name, pair in
                          scorer.distributions(values).items()}}
    return reject(table, np.isin(np.arange(len(table)), rows[off]), Reason.OFF_DISTRIBUTION,
                  decided["explanation"].to_numpy()[off].tolist())
