"""report.json and report.html.

report.json follows DESIGN.md §4; a metric that was not computed is absent, never faked.
Besides the contract's keys it carries `details` (what each stage found: thresholds, top
over-represented n-grams, duplicate-group sizes, per-cluster shares) and `examples` (a few
records per rejection reason), which report.html shows to people.

report.html is built by report_html.py (the page people read); the generic renderer of
`details` below (`_render`: histograms as inline SVG, rows as tables, everything escaped)
draws the stages' findings inside it.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from .checks import Check

from .records import REAL, SYNTHETIC, ColumnRows, Reason, reason_counts

EXAMPLES_PER_REASON = 5
EXAMPLE_CHARS = 400


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf to null (strict JSON has none)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if value is pd.NA:
        return None
    return value


def examples(table: pd.DataFrame) -> dict[str, list[dict]]:
    """A few records per reason, first reason only, in input order (deterministic)."""
    out: dict[str, list[dict]] = {}
    texts = ColumnRows(table["text"])    # only the examples' texts are read
    for i, reasons in enumerate(table["reasons"].tolist()):
        if not reasons:
            continue
        bucket = out.setdefault(reasons[0], [])
        if len(bucket) >= EXAMPLES_PER_REASON:
            continue
        text = texts[i] if isinstance(texts[i], str) else ""
        bucket.append({"id": table["id"].iat[i], "source": table["source"].iat[i],
                       "reasons": list(reasons), "dup_of": table["dup_of"].iat[i],
                       "explanation": table["explanation"].iat[i],
                       "text": text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else "")})
    order = [r.value for r in Reason]
    return {k: out[k] for k in order if k in out}


def build(table: pd.DataFrame, *, version: str, config: dict, stages: list[dict],
          metrics: dict, checks: list[Check], details: dict) -> dict[str, Any]:
    real, synth = table["source"] == REAL, table["source"] == SYNTHETIC
    kept = table["kept"]
    return assemble(inputs={"real": int(real.sum()), "synthetic": int(synth.sum())},
                    kept={"real": int((kept & real).sum()), "synthetic": int((kept & synth).sum())},
                    rejections=reason_counts(table), examples=examples(table),
                    version=version, config=config, stages=stages, metrics=metrics,
                    checks=checks, details=details)


def assemble(*, inputs: dict, kept: dict, rejections: dict, examples: dict, version: str,
             config: dict, stages: list[dict], metrics: dict, checks: list[Check],
             details: dict) -> dict[str, Any]:
    """report.json from counts (an engine that never holds the records, engines/ray, adds
    them up over its blocks)."""
    out_real, out_synth = kept["real"], kept["synthetic"]
    total_out = out_real + out_synth
    report = {
        "version": 1,
        "synthgate_version": version,
        "config": config,
        "inputs": inputs,
        "output": {"real": out_real, "synthetic": out_synth,
                   "synthetic_share": round(out_synth / total_out, 6) if total_out else 0.0},
        "rejections": rejections,
        "stages": stages,
        "metrics": metrics,
        "gate": {"passed": all(c.passed for c in checks),
                 "checks": [c.to_dict() for c in checks]},
        "details": details,
        "examples": examples,
    }
    return jsonable(report)


def histogram(series: dict[str, np.ndarray], bins: int = 30,
              bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """{"bins": edges, "counts": {series: counts}}: the shape report.html draws as an SVG
    histogram. Edges span `bounds` (values clipped into them) or else all the values."""
    if bounds is not None:
        edges = np.linspace(bounds[0], bounds[1], bins + 1)
        series = {k: np.clip(v, *bounds) for k, v in series.items()}
    else:
        values = np.concatenate([np.asarray(v) for v in series.values() if len(v)]
                                or [np.zeros(1)])
        edges = np.histogram_bin_edges(values, bins=bins)
    return {"bins": [round(float(e), 4) for e in edges],
            "counts": {name: np.histogram(v, bins=edges)[0].tolist()
                       for name, v in series.items()}}


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)


# ----------------------------------------------------------------------------- HTML

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _cell(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{_num(value)}</td>'
    if isinstance(value, (list, dict)):
        return f"<td><code>{_e(json.dumps(value, ensure_ascii=False))}</code></td>"
    return f"<td>{_e('' if value is None else value)}</td>"


def _table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        for k in row:
            if k not in columns:
                columns.append(k)
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _histogram(spec: dict) -> str:
    """Inline SVG bars for {"bins": edges, "counts": {series: counts}}; no script needed."""
    edges = spec["bins"]
    series = spec["counts"] if isinstance(spec["counts"], dict) else {"": spec["counts"]}
    colors = ["#3b6fd8", "#e07b39", "#2a9d8f", "#8e5bd6"]
    width, height, pad = 520, 160, 24
    n = max(1, len(edges) - 1)
    # Each series is drawn as shares of its own total, so sets of different sizes compare.
    shares = {name: [c / (sum(counts) or 1) for c in counts] for name, counts in series.items()}
    top = max([max(v) for v in shares.values() if v] + [1e-12])
    bar_w = (width - 2 * pad) / n / max(1, len(series))
    parts = [f'<svg width="{width}" height="{height + 30}" role="img">']
    for s, (name, counts) in enumerate(series.items()):
        for i, c in enumerate(counts):
            h = shares[name][i] / top * (height - pad)
            x = pad + (i * len(series) + s) * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{colors[s % len(colors)]}"><title>'
                         f'{_e(name)} [{edges[i]:.3g}, {edges[i + 1]:.3g}): {c}</title></rect>')
    parts.append(f'<text x="{pad}" y="{height + 14}" font-size="11">{edges[0]:.3g}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 14}" font-size="11" '
                 f'text-anchor="end">{edges[-1]:.3g}</text>')
    for s, name in enumerate(series):
        parts.append(f'<text x="{pad + 120 * s}" y="{height + 28}" font-size="11" '
                     f'fill="{colors[s % len(colors)]}">■ {_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _render(value: Any, depth: int = 3) -> str:
    """Renders a details value: histograms as SVG, lists of rows as tables, dicts as
    key/value tables with nested sections, scalars as text. Everything escaped."""
    if isinstance(value, dict) and "bins" in value and "counts" in value:
        return _histogram(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _table(value)
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items()
                   if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                       and isinstance(v[0], dict))}
        nested = {k: v for k, v in value.items() if k not in scalars}
        out = ""
        if scalars:
            out += "<table>" + "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>"
                                       for k, v in scalars.items()) + "</table>"
        tag = f"h{min(depth + 1, 6)}"
        for k, v in nested.items():
            out += f"<{tag}>{_e(k)}</{tag}>" + _render(v, depth + 1)
        return out
    return f"<p>{_e(value)}</p>"


def to_html(report: dict) -> str:
    """report.html from the report alone (no records table, no embeddings): the page then
    says why its map, clusters and rejections are empty. A run renders the full page through
    report_html.to_html(table, report, vectors, embedded, clusters)."""
    from .report_html import to_html as render_page
    return render_page(None, report)


def summary(report: dict) -> str:
    """The short terminal summary: verdict, counts, top reasons, failed checks."""
    inp, outp = report["inputs"], report["output"]
    lines = [f"synthgate: gate {'PASSED' if report['gate']['passed'] else 'FAILED'}",
             f"  input  {inp['real']} real, {inp['synthetic']} synthetic",
             f"  output {outp['real']} real, {outp['synthetic']} synthetic "
             f"(synthetic share {outp['synthetic_share']:.3f})"]
    top = sorted(report["rejections"].items(), key=lambda kv: -kv[1])
    if top:
        lines.append("  rejected: " + ", ".join(f"{k} {v}" for k, v in top))
    for c in report["gate"]["checks"]:
        if not c["passed"]:
            lines.append(f"  FAIL {c['name']}: {c['message']}")
    return "\n".join(lines)
