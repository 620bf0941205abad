"""report.html, the report people read: verdict, map, clusters, rejections, gate, metrics, stages.

Two steps, so that what the page shows is explicit data, testable without a browser:

    build_view(table, report, vectors, embedded, clusters) -> ReportView    report_view.py
    render(view) -> str                                                     this module

`to_html(...)` does both: it is the one call the runner makes once the report is built.

What goes where. report.json stays the machine contract (DESIGN.md §4) and gains nothing per
record: its per-cluster counts are already in `details.mix.clusters`, every decision is in
decisions.parquet. What only a person needs (map coordinates, a bounded sample of rejected
records beside the record each one matched, example texts and top terms per cluster) lives in
the HTML only, bounded by report_view.py's constants (MAP_POINTS and REJECTED_SAMPLE are
read from this module when a view is built, so a caller may set them here); the page says
whenever it shows a sample. The sections are rendered in page order below, each from the view
and report.json's dict.

Every record text is untrusted. Text rendered here goes through html.escape. The data the
page's script reads is JSON inside <script type="application/json"> with <, >, &, U+2028 and
U+2029 written as \\u escapes, so no record can end that element; the script writes record
text only through textContent and never builds a URL from data. A Content-Security-Policy meta
tag (default-src 'none') admits only the page's own inline script and style, by SHA-256 hash:
hashes rather than a nonce, so the same run gives a byte-identical file.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import html
import json
import math
import re
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from . import report_view
from .records import REAL
from .report_view import (  # noqa: F401  (re-exported: the page's API is this module's)
    GROUP_COLORS, MAP_POINTS, REASON_LABELS, REJECTED_SAMPLE, UNDER_COVERED, ClusterView,
    MapGroup, MapView, Match, RecordView, RejectedView, ReportView, _color, _reason_label,
    fair_sample, pca_2d, signal_label, signal_parts, top_terms)

SECTIONS = ("summary", "map", "clusters", "rejections", "gate", "metrics", "stages")

STAGE_LABELS = {
    "ingest": "Read and validate the inputs", "dedup": "Remove duplicates and copies",
    "decontaminate": "Remove benchmark items", "formulaic": "Score formulaic text",
    "embed": "Embed and compare with the real data", "mix": "Cap the synthetic share",
    "measure": "Measure the kept set against the real hold-out",
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
    "synthetic.rejected_share": "Share of the valid synthetic records rejected for quality",
    "decontaminate.semantic_calibrated": "Enough real passages to calibrate the benchmark "
                                         "rewording test",
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

# The check that the generator is degenerating (measure.py).
REJECTED_SHARE = "synthetic.rejected_share"
# The quality reasons synthetic.rejected_share counts, as a count of records reads them.
QUALITY_PHRASES = {"exact_duplicate": "exact duplicates", "near_duplicate": "near duplicates",
                   "copies_real": "copies of real records", "formulaic": "formulaic",
                   "off_distribution": "off-distribution"}
# The decontaminate stage's two tests, as the page names them.
BENCHMARK_TESTS = {"ngram": "word n-grams", "semantic": "rewording (passage embeddings)"}

# A signal's histogram spans the bins holding at least this share of the real hold-out, the
# bars, and this many bins more each side; what lies beyond is gathered at either end.
WINDOW_SHARE = 0.005
WINDOW_MARGIN = 2

# How many under-covered clusters the summary names at most.
SUGGESTED_CLUSTERS = 3


def to_html(table: pd.DataFrame | None, report: dict, vectors: np.ndarray | None = None,
            embedded: np.ndarray | None = None, clusters: Any = None) -> str:
    """report.html from the final records table, the report dict and, when the embed stage
    ran, its vectors (one row per table row, or one per embedded row), the mask of embedded
    rows and the real clusters ({"sizes", "rare"} or an object with those attributes). Any of
    them may be None: the page then says what it cannot show and why."""
    return render(build_view(table, report, vectors, embedded, clusters))



def build_view(table: pd.DataFrame | None, report: dict, vectors: np.ndarray | None = None,
               embedded: np.ndarray | None = None, clusters: Any = None) -> ReportView:
    """report_view.build_view within this page's bounds, MAP_POINTS and REJECTED_SAMPLE, read
    when called so that a caller (a test, a benchmark) may set them on this module."""
    return report_view.build_view(table, report, vectors, embedded, clusters,
                                  map_points=MAP_POINTS, rejected_sample=REJECTED_SAMPLE)


def check_label(name: str) -> str:
    if name in CHECK_LABELS:
        return CHECK_LABELS[name]
    for prefix, label in CHECK_LABELS.items():
        if name.startswith(prefix + "."):
            return f"{label} ({name[len(prefix) + 1:]})"
    return name



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


def _holdout_value(check: dict) -> tuple[Any, Any]:
    """The real hold-out's figure and interval a check was read against (`reference`,
    `interval`, which measure.py's collapse checks carry), or (None, None)."""
    return check.get("reference"), check.get("interval")


def _bounds(iv: Any) -> tuple[str, str] | None:
    """A check's hold-out interval as two printed numbers (None when it has none)."""
    if isinstance(iv, (list, tuple)) and len(iv) == 2:
        return _fmt(iv[0], 3), _fmt(iv[1], 3)
    return None


def _interval(iv: Any) -> str:
    bounds = _bounds(iv)
    return f" <span class='iv'>[{bounds[0]}–{bounds[1]}]</span>" if bounds else ""


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
                  if c["name"] not in COLLAPSE_CHECKS and c["name"] != REJECTED_SHARE]
        said = []
        degenerate = next((c for c in failed if c["name"] == REJECTED_SHARE), None)
        if degenerate:
            said.append(f"the generator is degenerating, {_pct(degenerate['observed'])} of the "
                        f"valid synthetic records were rejected for quality (at most "
                        f"{_pct(degenerate['threshold'])} may be)")
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
    quality = next((c for c in checks if c["name"] == REJECTED_SHARE), None)
    quality_line = (
        f"<div class='sub quality'>Rejected for quality: <b>{_fmt(view.synthetic_quality_rejected)}"
        f"</b> of {_fmt(view.synthetic_valid)} valid synthetic records "
        f"({_pct(quality['observed'])}; the gate fails above {_pct(quality['threshold'])})</div>"
        if quality and view.synthetic_valid else "")
    out.append(
        "<div class='flow'>"
        f"<div class='card'><div class='k'>In</div><div class='big'>{_fmt(total_in)}</div>"
        f"<div class='sub'>{_fmt(inp['real'])} real · {_fmt(inp['synthetic'])} synthetic</div>"
        "</div><div class='arrow' aria-hidden='true'>→</div>"
        f"<div class='card wide'><div class='k'>Removed</div><div class='big'>{_fmt(removed)}"
        f"</div>{bars}{quality_line}<div class='sub'>A record may carry several reasons; the "
        "bars count every reason a record carries.</div></div>"
        "<div class='arrow' aria-hidden='true'>→</div>"
        f"<div class='card'><div class='k'>Out</div><div class='big'>{_fmt(total_out)}</div>"
        f"<div class='sub'>{_fmt(outp['real'])} real · {_fmt(outp['synthetic'])} synthetic"
        f"</div><div class='sub'>synthetic share <b>{_pct(share)}</b>"
        + (f" (cap {_pct(cap)})" if isinstance(cap, (int, float)) else "")
        + "</div></div></div>")

    if failed:
        todo = []
        degenerate = next((c for c in failed if c["name"] == REJECTED_SHARE), None)
        if degenerate:
            todo.append(_degenerate_todo(view, degenerate))
        collapse = [c for c in failed if c["name"] in COLLAPSE_CHECKS]
        if collapse:
            figures = []
            for c in collapse:
                ref, iv = _holdout_value(c)
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
            if c["name"] not in COLLAPSE_CHECKS and c["name"] != REJECTED_SHARE:
                todo.append(f"<li><b>{_e(check_label(c['name']))}</b>: {_e(c['message'])}</li>")
        out.append("<h3>What to do</h3><ul class='todo'>" + "".join(todo) + "</ul>")
    decontaminate = (report.get("details") or {}).get("decontaminate")
    if isinstance(decontaminate, dict):
        out.append(_contamination_html(decontaminate))
    return "\n".join(out)


def _degenerate_todo(view: ReportView, check: dict) -> str:
    """What a failed synthetic.rejected_share means: the generator, not the kept records."""
    counts = sorted(((v, k) for k, v in view.quality_reasons.items() if v), reverse=True)
    which = ", ".join(f"{_fmt(v)} {QUALITY_PHRASES.get(k, _reason_label(k).lower())}"
                      for v, k in counts)
    numbers = (f"{_fmt(view.synthetic_quality_rejected)} of the "
               f"{_fmt(view.synthetic_valid)} valid synthetic records "
               if view.synthetic_valid else "")
    kept = view.report["output"]["synthetic"]
    return (f"<li><b>The generator is degenerating.</b> {_e(numbers)}"
            f"({_pct(check['observed'])}) were rejected for quality, where at most "
            f"{_pct(check['threshold'])} may be" + (f": {_e(which)}" if which else "") + ". "
            f"The filters removed them, so the {_fmt(kept)} synthetic records kept can look "
            "healthy, but the generator that wrote them repeats itself. Read what it repeats "
            "(<a href='#reason=near_duplicate'>near duplicates</a>, "
            "<a href='#reason=formulaic'>formulaic</a> in Rejections), then fix the generator "
            "(what it was trained on, how it samples) before generating more: filtering "
            "cannot give back the variety it lost.</li>")


def _contamination_html(details: dict) -> str:
    """The decontaminate stage, per benchmark: items, items seen in the training data, the
    records removed (real and synthetic) and by which test, examples with the matched span."""
    per = details.get("per_benchmark") or {}
    if not per:
        return ""
    rows, examples = [], []
    for name, b in per.items():
        removed = b.get("records_removed") or {}
        by_test = b.get("by_test") or {}
        rows.append(
            f"<tr><td><b>{_e(name)}</b></td><td class='num'>{_fmt(b.get('items'))}</td>"
            f"<td class='num'>{_fmt(b.get('items_seen'))}</td>"
            f"<td class='num'>{_fmt(removed.get('real'))}</td>"
            f"<td class='num'>{_fmt(removed.get('synthetic'))}</td>"
            f"<td class='num'>{_fmt(by_test.get('ngram'))}</td>"
            f"<td class='num'>{_fmt(by_test.get('semantic'))}</td></tr>")
        for ex in b.get("examples") or []:
            test = BENCHMARK_TESTS.get(ex.get("test"), ex.get("test"))
            tag = "real" if ex.get("source") == REAL else "kept"
            examples.append(
                f"<li><div><span class='tag {tag}'>{_e(ex.get('source'))}</span> "
                f"<b>{_e(ex.get('id'))}</b> carries <code>{_e(ex.get('item'))}</code> "
                f"<span class='muted'>· {_e(test)}</span></div>"
                f"<div class='span'>matched: <q>{_e(ex.get('matched'))}</q></div>"
                f"<div class='rec'>{_e(ex.get('text'))}</div></li>")
    seen = sum(int(b.get("items_seen") or 0) for b in per.values())
    removed = sum(int(v or 0) for b in per.values()
                  for v in (b.get("records_removed") or {}).values())
    lede = (f"{_fmt(seen)} evaluation item{'s' if seen != 1 else ''} turned up in the "
            f"training data and {_fmt(removed)} record{'s were' if removed != 1 else ' was'} "
            "removed for carrying one (real records too): trained on, they would inflate the "
            "benchmark's scores." if seen else
            "No evaluation item turned up in the training data: nothing was removed for it.")
    return ("<h3 id='contamination'>Benchmark contamination</h3>"
            f"<p class='note'>{_e(lede)} A record carries an item when it holds most of the "
            "item's words in matching 8-word runs or a long common span (word n-grams), or "
            "when one of its passages rewords the item more closely than real passages come "
            "to any item (passage embeddings).</p>"
            "<table class='grid contam'><thead><tr><th>Benchmark</th><th class='num'>Items</th>"
            "<th class='num'>Seen in the data</th><th class='num'>Real removed</th>"
            "<th class='num'>Synthetic removed</th><th class='num'>By n-grams</th>"
            "<th class='num'>By rewording</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>"
            + (f"<details class='cex contam-ex' open><summary>{len(examples)} example"
               f"{'s' if len(examples) != 1 else ''} with the matched span</summary>"
               f"<ul>{''.join(examples)}</ul></details>" if examples else ""))


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

def _scale_svg(observed: Any, threshold: Any, ref: Any, interval: Any, passed: bool,
               share: bool = False) -> str:
    """Observed (dot) against the bar (dark line) and the real hold-out (grey tick, its
    interval as a band when known), on one 0-based scale (0 to 1 for a `share`)."""
    values = [v for v in (observed, threshold, ref) if isinstance(v, (int, float))]
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        values += [v for v in interval if isinstance(v, (int, float))]
    if not isinstance(observed, (int, float)) or not values or min(values) < 0:
        return ""
    width, top = 150.0, (1.0 if share else max(values) * 1.12) or 1.0

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
        ref, iv = _holdout_value(c)
        held = f"{_fmt(ref)}{_interval(iv)}" if ref is not None else \
            ("<span class='muted'>–</span>" if iv is None else _interval(iv))
        chart = _scale_svg(c["observed"], c["threshold"], ref, iv, c["passed"],
                           share=c["name"] == REJECTED_SHARE) \
            if ref is not None or iv is not None or c["name"] == REJECTED_SHARE else ""
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
            "synthetic set against a held-out part of the real data, measured the same way on "
            "subsamples of the same size: a check fails when the kept set's median falls more "
            "than the margin under the low end of the hold-out's interval. The share of valid "
            "synthetic records rejected for quality (duplicates, copies, formulaic, "
            "off-distribution) says whether the generator itself is degenerating, whatever "
            "the records kept look like. The others are data contracts on the input and the "
            "output.</p>"
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
    # The hold-out's interval is measured on subsamples of the gate's size, smaller than the
    # sets above are measured at: a column of its own, not a bracket beside a figure of
    # another size.
    sub = fid_kept.get("interval_sample_size")
    level = ((view.report.get("config") or {}).get("embed") or {}).get("interval_level")
    level = f"{level:.0%} " if isinstance(level, (int, float)) else ""
    columns = ["Synthetic in", "Synthetic kept", "Real hold-out"] + \
        ([f"Hold-out {level}interval ({_fmt(sub)} records)"] if sub else [])
    interval_note = (f" The last column is the real hold-out's {level}interval over subsamples "
                     f"of {_fmt(sub)} records, the size the gate compares at: the range it "
                     "reads the kept set against (both medians are on Gate)." if sub else "")
    if fid_in or fid_kept:
        size = fid_kept.get("sample_size") or fid_in.get("sample_size")
        rows = [_metric_row(k, [_fmt(fid_in.get(k)), _kept_cell(fid_kept.get(k), k in failed),
                                _fmt(base.get(k))] + ([_interval_cell(intervals.get(k))]
                                                       if sub else []))
                for k in FIDELITY_KEYS if k in fid_in or k in fid_kept]
        out.append("<h3>Fidelity against the real data</h3><p class='note'>k-NN neighbourhoods "
                   "in embedding space (Naeem et al. 2020, k = 5). Each synthetic set and the "
                   "real hold-out are measured against the same real reference"
                   + (f", on {_fmt(size)} records each" if size else "") + ". A kept figure "
                   f"in red failed its gate check.{_e(interval_note)}</p>"
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
                _fmt(tails.get("rare_coverage_real_holdout"))]
                + ([_interval_cell(tails.get("rare_coverage_interval"))] if sub else [])
            ) + "</tbody></table>"
        if sub and tails.get("rare_coverage_interval"):
            said += interval_note
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


def _interval_cell(iv: Any) -> str:
    bounds = _bounds(iv)
    return (f"<span class='iv'>{bounds[0]} – {bounds[1]}</span>" if bounds
            else "<span class='muted'>–</span>")


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
    signals = (details.get("embed") or {}).get("off_distribution_signals")
    if isinstance(signals, dict) and signals.get("thresholds"):
        out.append(_offdist_html(signals))
    if details:
        out.append("<h3>What each stage found</h3>")
        for name, detail in details.items():
            if name == "embed" and isinstance(signals, dict):   # drawn above
                detail = {k: v for k, v in detail.items() if k != "off_distribution_signals"}
            out.append(f"<details class='stage'><summary>{_e(STAGE_LABELS.get(name, name))} "
                       f"<code>{_e(name)}</code></summary>{_render(detail, 3)}</details>")
    config = report.get("config") or {}
    out.append("<details class='stage'><summary>Configuration <code>"
               f"{_e(config.get('hash', ''))}</code></summary><pre>"
               f"{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre></details>")
    return "\n".join(out)


# --- off-distribution signals (the embed stage's details)

def _offdist_html(sig: dict) -> str:
    """Which signal fired how often, each signal's bar, the real language mix, and per raw
    signal the real hold-out's values against the synthetic records' as small histograms."""
    thresholds = sig.get("thresholds") or {}
    fired = {k: int(v) for k, v in (sig.get("fired") or {}).items()}
    listed = list(thresholds) + [n for n in fired if n not in thresholds]
    names = sorted(listed, key=lambda n: (-fired.get(n, 0), listed.index(n)))
    total = sum(fired.values())
    level, quantile = sig.get("per_signal_level"), sig.get("quantile")
    rows = []
    for n in names:
        raw, side = signal_parts(n)
        bar = thresholds.get(n)
        count = fired.get(n, 0)
        width = 120 * count / total if total else 0
        rows.append(
            f"<tr class='{'' if count else 'quiet'}'><td>{_e(signal_label(n))} "
            f"<code>{_e(n)}</code></td><td class='num'>"
            + (f"{'&lt;' if side == 'low' else '&gt;'} {_fmt(bar, 4)}" if bar is not None
               else "–") + f"</td><td class='num'>{_fmt(count) if count else '–'}</td>"
            f"<td><svg width='120' height='10' class='tbar' role='img'><rect width='"
            f"{width:.1f}' height='10' fill='{GROUP_COLORS['off_distribution']}'/></svg></td>"
            "</tr>")
    langs = sig.get("real_languages") or {}
    mix = ", ".join(f"{k} {float(v):.1%}" for k, v in langs.items()) if langs else ""
    one_in = (f"about 1 in {_fmt(round(1 / level))} real records"
              if isinstance(level, (int, float)) and level > 0 else "rarely")
    lede = (f"A synthetic record is off-distribution when any one of {len(thresholds)} "
            f"signals lies beyond its bar: each bar is learned from the real records "
            f"(scored as held-out ones), where {one_in} cross it, so that a record like the "
            "real ones is rejected "
            + (f"with probability at most {_pct(1 - quantile)}" if isinstance(quantile, float)
               else "rarely") + " whichever signal would fire. "
            + (f"{_fmt(total)} synthetic records were off-distribution; each counts once, "
               "under its rarest signal." if total else
               "No synthetic record was off-distribution.")
            + (f" The real records' languages: {mix}." if mix else ""))
    table = ("<table class='grid signals'><thead><tr><th>Signal</th><th class='num'>Bar</th>"
             "<th class='num'>Fired on</th><th></th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>")
    hists = []
    dists = sig.get("distributions") or {}
    by_raw: dict[str, list[str]] = {}
    for n in thresholds:
        by_raw.setdefault(signal_parts(n)[0], []).append(n)
    order = sorted(dists, key=lambda r: (-sum(fired.get(n, 0) for n in by_raw.get(r, [])),
                                         list(dists).index(r)))
    for raw in order:
        sides = by_raw.get(raw, [])
        bars = [(thresholds[n], signal_parts(n)[1]) for n in sides]
        hists.append(_signal_histogram(raw, dists[raw], bars,
                                       sum(fired.get(n, 0) for n in sides)))
    return ("<h3 id='off-distribution'>Off-distribution: which signal fired</h3>"
            f"<p class='note'>{_e(lede)}</p>{table}"
            "<p class='note'>Each signal's values: the real records scored as held-out ones "
            "(grey) against the synthetic records the embedding stage scored (red), each as "
            "shares of its own set, bar heights on a square-root scale so that a few records "
            "in a tail show; the dashed line is the bar. The axis spans the real records' "
            "bulk and the bar; ‹ and › gather the records beyond it.</p>"
            f"<div class='hists'>{''.join(hists)}</div>")


def _signal_histogram(raw: str, spec: dict, bars: list[tuple[float, str]], fired: int) -> str:
    """One small SVG histogram of a signal: the real hold-out and the synthetic records as
    shares of their own set on a square-root scale, the bars as dashed lines. The axis spans
    the real records' bulk and the bars; records beyond it are gathered at either end (a
    signal's range can run far out, a hex dump's digit share say, and would squash the rest)."""
    from .offdist import DESCRIPTIONS

    edges = [float(e) for e in spec.get("bins") or []]
    series = list((spec.get("counts") or {}).items())
    if len(edges) < 2 or not series:
        return ""
    n = len(edges) - 1
    shares = [[c / (sum(counts) or 1) for c in counts] for _, counts in series]
    keep = [i for i, v in enumerate(shares[0]) if v >= WINDOW_SHARE]
    keep += [min(max(bisect.bisect_right(edges, v) - 1, 0), n - 1) for v, _ in bars
             if isinstance(v, (int, float))]
    first = max(0, min(keep or [0]) - WINDOW_MARGIN)
    last = min(n - 1, max(keep or [n - 1]) + WINDOW_MARGIN)
    # Bins first..last, and a bin each side for what lies beyond (empty ones are not drawn).
    cols = [[sum(sh[:first])] + sh[first:last + 1] + [sum(sh[last + 1:])] for sh in shares]
    lo, hi = edges[first], edges[last + 1]
    width, height, pad, base, gap = 300, 92, 6, 74, 6
    step = (width - 2 * pad - 2 * gap) / (last - first + 3)

    def left(j: int) -> float:     # x of column j (0: below the axis, last: beyond it)
        return pad + j * step + (gap if j > 0 else 0) + (gap if j > last - first + 1 else 0)

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return left(1) + (left(last - first + 2) - gap - left(1)) * (v - lo) / ((hi - lo) or 1)
    top = math.sqrt(max([max(c) for c in cols] + [1e-12]))
    colors = [GROUP_COLORS["real"], GROUP_COLORS["off_distribution"]]
    parts = [f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} '
             f'{height}" role="img"><title>{_e(DESCRIPTIONS.get(raw, raw))}</title>']
    for s, ((name, _), col) in enumerate(zip(series, cols)):
        inset = 0.0 if s == 0 else step * 0.25
        for j, v in enumerate(col):
            if not v:
                continue
            h = (base - 4) * math.sqrt(v) / top
            where = (f"below {_fmt(lo, 3)}" if j == 0 else f"above {_fmt(hi, 3)}"
                     if j == len(col) - 1 else
                     f"[{_fmt(edges[first + j - 1], 3)}, {_fmt(edges[first + j], 3)})")
            parts.append(f'<rect x="{left(j) + inset:.1f}" y="{base - h:.1f}" '
                         f'width="{max(step - 2 * inset - 0.6, 0.8):.1f}" height="{h:.1f}" '
                         f'fill="{colors[s % 2]}" opacity="{0.9 if s else 0.75}"><title>'
                         f'{_e(name)} {where}: {_pct(v)}</title></rect>')
    for value, side in bars:
        if isinstance(value, (int, float)):
            bx = x(float(value))
            parts.append(f'<line x1="{bx:.1f}" y1="2" x2="{bx:.1f}" y2="{base}" '
                         f'stroke="#0f172a" stroke-width="1.5" stroke-dasharray="3 2"><title>'
                         f'bar ({side}) {_fmt(value, 4)}</title></line>')
    for j in (0, last - first + 2):
        if any(c[j] for c in cols):
            parts.append(f'<text x="{left(j) + step / 2:.1f}" y="{height - 4}" class="ax" '
                         f'text-anchor="middle">{"‹" if j == 0 else "›"}</text>')
    parts.append(f'<line x1="{left(1):.1f}" y1="{base}" x2="{left(last - first + 2) - gap:.1f}" '
                 f'y2="{base}" stroke="#cbd5e1"/>'
                 f'<text x="{left(1):.1f}" y="{height - 4}" class="ax">{_fmt(lo, 3)}</text>'
                 f'<text x="{left(last - first + 2) - gap:.1f}" y="{height - 4}" class="ax" '
                 f'text-anchor="end">{_fmt(hi, 3)}</text></svg>')
    said = f"fired on {_fmt(fired)}" if fired else "fired on none"
    bar_text = " · ".join(f"{'&lt;' if side == 'low' else '&gt;'} {_fmt(v, 3)}"
                          for v, side in bars)
    return (f"<figure class='hist{'' if fired else ' quiet'}'><figcaption><b>"
            f"{_e(DESCRIPTIONS.get(raw, raw))}</b><span class='muted'> · {said}"
            + (f" · bar {bar_text}" if bar_text else "") + "</span></figcaption>"
            + "".join(parts) + "</figure>")
