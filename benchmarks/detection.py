"""Detection benchmark: how much of each planted defect the gate rejects, and for the right
reason; how many clean synthetic and real records it wrongly rejects; and its verdict on
recursive self-training series (model collapse).

    python benchmarks/detection.py [--size small|full] [--series calibration|all|none|LIST]
                                   [--no-defects] [--json OUT] [--corpus DIR]

The labelled corpus is built by benchmarks/corpora/build_detection.py (real English text
from Debian packages, never sample_data/; see its docstring for the classes) into a
git-ignored folder; this script builds it first when it is missing. synthgate runs through
its Python API with its default config and the default embedding model (cached in
~/.cache/synthgate, so reruns only embed what is new), except that the defect corpus is run
with no share cap (max_synthetic_share = 1), so that no acceptable record is dropped for
`share_cap` and every rejection is a judgement on the record.

- Defect classes: `rejected` is the share of the class's records the gate rejected for any
  reason; `right` the share rejected with the reason a correct gate gives (`expect` in the
  corpus; the record may carry others too). Clean synthetic and real records: the share
  rejected at all (false rejects).
- Series: one run per (series, generation) against the same real records; the gate verdict
  and every collapse check of the kept synthetic set (observed / bar, ✓ passed, ✗ failed).
  Generation 1 is sampled from a model fitted on real text (the issue's "generation 0");
  each later generation from a model refitted on the previous one's samples. Three
  "calibration" series (ngram, topic, rephrase: a gate should pass generation 1 and fail by
  generation 4, the issue's "third") run by default; `--series all` adds the "control", a
  weak GRU generator whose first generation is already far from the real text.

Sizes: small (800 real, 917 synthetic, 3 series x 4 generations x 150 records) runs in a few
minutes on two busy cores; full (3,000 real, 3,295 synthetic, 3 x 6 x 400).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "corpora"))

try:                                        # the import name after the issue-9 refactor
    from synthgate import Config, run       # noqa: E402
except ImportError:                         # before it
    from pipeline import Config, run        # noqa: E402

import build_detection  # noqa: E402

CLASS_ORDER = ["exact_duplicate", "near_duplicate", "copy_of_real", "paraphrase_of_real",
               "formulaic", "off_distribution", "invalid"]
IGNORED_REASONS = {"share_cap"}             # a cap, not a judgement on the record


def load_jsonl(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype={"id": str, "text": str, "variant_of": str})


def ensure_corpus(corpus: Path) -> dict:
    manifest = corpus / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("builder_version") == build_detection.BUILDER_VERSION:
            return data
    print(f"building the detection corpus in {corpus} (once; a few minutes)...", flush=True)
    return build_detection.build(corpus, log=lambda m: print("  " + m, flush=True))


def rejected_reasons(reasons) -> list[str]:
    return [r for r in (list(reasons) if reasons is not None else []) if r not in IGNORED_REASONS]


# --- defect classes ----------------------------------------------------------------------------

def score_defects(real: pd.DataFrame, synth: pd.DataFrame, decisions: pd.DataFrame) -> dict:
    by_key = {(s, i): list(r) if r is not None else []
              for s, i, r in zip(decisions["source"], decisions["id"], decisions["reasons"])}
    out: dict = {"classes": {}, "false_rejects": {}}
    groups: dict[str, list] = defaultdict(list)
    for row in synth.itertuples(index=False):
        groups[row.defect].append(row)
    for defect in CLASS_ORDER:
        rows = groups.get(defect, [])
        if not rows:
            continue
        per_kind: dict[str, list] = defaultdict(list)
        for row in rows:
            per_kind[row.kind].append(row)
        out["classes"][defect] = _class_stats(rows, by_key)
        out["classes"][defect]["kinds"] = {k: _class_stats(v, by_key) for k, v in per_kind.items()}
    clean = groups.get("clean", [])
    out["false_rejects"]["clean_synthetic"] = _false_rejects(
        [("synthetic", r.id, r.kind) for r in clean], by_key)
    out["false_rejects"]["real"] = _false_rejects(
        [("real", r.id, r.origin) for r in real.itertuples(index=False)], by_key)
    return out


def _class_stats(rows: list, by_key: dict) -> dict:
    reasons = [rejected_reasons(by_key[("synthetic", r.id)]) for r in rows]
    rejected = sum(bool(rs) for rs in reasons)
    right = sum(r.expect in rs for r, rs in zip(rows, reasons))
    given = Counter(x for rs in reasons for x in rs)
    return {"n": len(rows), "rejected": rejected / len(rows), "right": right / len(rows),
            "reasons": dict(given.most_common())}


def _false_rejects(keys: list[tuple[str, str, str]], by_key: dict) -> dict:
    per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    given: Counter = Counter()
    for source, rid, group in keys:
        rs = rejected_reasons(by_key[(source, rid)])
        per_group[group][0] += bool(rs)
        per_group[group][1] += 1
        given.update(rs)
    total = sum(v[1] for v in per_group.values())
    wrong = sum(v[0] for v in per_group.values())
    return {"n": total, "rate": wrong / total if total else 0.0,
            "by_group": {g: {"n": v[1], "rate": v[0] / v[1]} for g, v in sorted(per_group.items())},
            "reasons": dict(given.most_common())}


def print_defects(scores: dict, seconds: float) -> None:
    print(f"\n## Planted defects ({seconds:.0f} s)\n")
    print("| planted defect | kind | records | rejected | right reason | reasons given |")
    print("|---|---|---:|---:|---:|---|")
    for defect, stats in scores["classes"].items():
        print(f"| **{defect}** | all | {stats['n']} | {stats['rejected']:.2f} | "
              f"**{stats['right']:.2f}** | {_reasons(stats['reasons'])} |")
        for kind, ks in sorted(stats["kinds"].items()):
            print(f"| | {kind} | {ks['n']} | {ks['rejected']:.2f} | {ks['right']:.2f} | "
                  f"{_reasons(ks['reasons'])} |")
    print("\n| wrongly rejected | records | rate | by group | reasons given |")
    print("|---|---:|---:|---|---|")
    for name, fr in scores["false_rejects"].items():
        groups = ", ".join(f"{g} {v['rate']:.3f}" for g, v in fr["by_group"].items())
        print(f"| {name} | {fr['n']} | **{fr['rate']:.3f}** | {groups} | "
              f"{_reasons(fr['reasons'])} |")


def _reasons(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "-"


# --- generation series -------------------------------------------------------------------------

def run_series(real: pd.DataFrame, corpus: Path, names: list[str], records: int,
               generations: int) -> dict:
    out: dict = {}
    for name in names:
        rows = []
        for k in range(1, generations + 1):
            path = corpus / "series" / name / f"gen{k}.jsonl"
            synth = load_jsonl(path).head(records)
            start = time.perf_counter()
            result = run(real=real[["id", "text"]], synthetic=synth[["id", "text", "generation"]],
                         config=Config())
            rows.append(_series_row(k, synth, result, time.perf_counter() - start))
            print(f"  {name} generation {k}: {'PASS' if rows[-1]['passed'] else 'FAIL'} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
        out[name] = rows
    return out


def _series_row(k: int, synth: pd.DataFrame, result, seconds: float) -> dict:
    report = result.report
    checks = [c for c in report["gate"]["checks"]]
    collapse = [c for c in checks
                if c["name"].startswith("embed.") and c["name"] != "embed.calibrated"]
    fid = report.get("metrics", {}).get("fidelity_kept", {})
    tails = report.get("metrics", {}).get("tails", {})
    return {
        "generation": k, "records": len(synth), "passed": bool(result.passed),
        "kept": int(result.report["output"]["synthetic"]),
        "rejections": {r: n for r, n in report.get("rejections", {}).items() if n},
        "failed": [c["name"] for c in checks if not c["passed"]],
        "checks": [{key: c.get(key) for key in c} for c in collapse],
        # The whole synthetic input, before any record was rejected: collapse as generated.
        "synthetic_in": {"fidelity": report.get("metrics", {}).get("fidelity"),
                         "rare_coverage": tails.get("rare_coverage_in"),
                         "diversity": report.get("metrics", {}).get("synthetic_in")},
        "holdout": {"recall": fid.get("real_holdout", {}).get("recall"),
                    "coverage": fid.get("real_holdout", {}).get("coverage"),
                    "rare_coverage": tails.get("rare_coverage_real_holdout")},
        "seconds": round(seconds, 1),
    }


def print_series(series: dict, descriptions: dict) -> None:
    for name, rows in series.items():
        print(f"\n## Series `{name}` ({descriptions.get(name, '')})\n")
        names = []
        for row in rows:
            names += [c["name"] for c in row["checks"] if c["name"] not in names]
        short = [n.split(".", 1)[-1] for n in names]
        print("| gen | kept / records | verdict | " + " | ".join(short) +
              " | hold-out recall / coverage / rare | failed checks | rejections |")
        print("|---:|---|---|" + "---|" * len(names) + "---|---|---|")
        for row in rows:
            by_name = {c["name"]: c for c in row["checks"]}
            cells = []
            for n in names:
                c = by_name.get(n)
                cells.append("-" if c is None else
                             f"{_num(c.get('observed'))} / {_num(c.get('threshold'))} "
                             f"{'✓' if c.get('passed') else '✗'}"
                             + (f" [{c['interval']}]" if c.get("interval") is not None else ""))
            hold = row["holdout"]
            print(f"| {row['generation']} | {row['kept']} / {row['records']} | "
                  f"{'PASS' if row['passed'] else '**FAIL**'} | " + " | ".join(cells) +
                  f" | {_num(hold['recall'])} / {_num(hold['coverage'])} / "
                  f"{_num(hold['rare_coverage'])}"
                  f" | {', '.join(row['failed']) or '-'} | {_reasons(row['rejections'])} |")


def _num(x) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


# --- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("small", "full"), default="small")
    ap.add_argument("--series", default="calibration",
                    help="'calibration' (ngram, topic, rephrase), 'all' (adds the gru "
                         "control), 'none', or a comma-separated list")
    ap.add_argument("--no-defects", action="store_true", help="run the series only")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every figure to OUT")
    ap.add_argument("--corpus", type=Path, default=build_detection.DEFAULT_OUT)
    args = ap.parse_args(argv)

    try:
        manifest = ensure_corpus(args.corpus)
    except build_detection.sources.SourceMissing as exc:
        print(f"detection: cannot build the corpus: {exc}", file=sys.stderr)
        return 2
    size = manifest["sizes"][args.size]
    names = {"all": list(manifest["series"]), "none": [],
             "calibration": [n for n, s in manifest["series"].items()
                             if s.get("role") == "calibration"]}.get(args.series,
                                                                      args.series.split(","))
    unknown = [n for n in names if n not in manifest["series"]]
    if unknown:
        ap.error(f"unknown series {unknown}; the corpus has {list(manifest['series'])}")
    real = load_jsonl(args.corpus / args.size / "real.jsonl")
    results: dict = {"size": args.size, "corpus": str(args.corpus), "real": len(real)}
    print(f"# synthgate detection benchmark, size {args.size}: {len(real)} real records")

    if not args.no_defects:
        synth = load_jsonl(args.corpus / args.size / "synthetic.jsonl")
        start = time.perf_counter()
        result = run(real=real[["id", "text"]], synthetic=synth[["id", "text"]],
                     config=Config(max_synthetic_share=1.0))
        seconds = time.perf_counter() - start
        scores = score_defects(real, synth, result.decisions)
        scores["seconds"] = round(seconds, 1)
        scores["synthetic"] = len(synth)
        results["defects"] = scores
        print_defects(scores, seconds)

    if names:
        print(f"\n## Generation series ({size['series_records']} records per generation, "
              f"generations 1-{size['series_generations']})\n", flush=True)
        start = time.perf_counter()
        results["series"] = run_series(real, args.corpus, names, size["series_records"],
                                       size["series_generations"])
        results["series_seconds"] = round(time.perf_counter() - start, 1)
        print_series(results["series"], {n: f"{s.get('role', '')}: {s['description']}"
                                         for n, s in manifest["series"].items()})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
