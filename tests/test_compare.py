"""`synthgate compare RUN_A RUN_B`: how metrics moved, exit 1 when a tracked one fell."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synthgate import Config, run
from synthgate.cli import main
from synthgate.compare import compare


def write_report(directory, metrics: dict, passed: bool = True) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(
        {"version": 1, "metrics": metrics, "gate": {"passed": passed, "checks": []}}))
    return str(directory)


BASE = {"fidelity": {"precision": 0.9, "recall": 0.8, "coverage": 0.7, "density": 1.0,
                     "frechet": 0.10, "real_holdout": {"recall": 0.85}},
        "tails": {"clusters": 20, "rare_coverage_in": 1.0, "rare_coverage_kept": 1.0},
        "synthetic_kept": {"records": 500, "vendi": 80.0, "distinct_2": 0.6,
                           "compression_ratio": 2.5}}


def moved(**changes) -> dict:
    out = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        section, metric = dotted.split("__")
        out[section][metric] = value
    return out


def test_unchanged_runs_exit_0(tmp_path, capsys):
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", BASE)
    assert compare(a, b) == 0
    out = capsys.readouterr().out
    assert "fidelity.recall" in out and "no tracked metric got worse" in out


def test_a_fall_past_the_tolerance_exits_1_and_names_the_metric(tmp_path, capsys):
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", moved(fidelity__coverage=0.56, tails__rare_coverage_kept=0.97))
    assert compare(a, b) == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("fidelity.coverage"))
    assert "WORSE by 20.0%" in line and "-20.0%" in line
    rare = next(l for l in out.splitlines() if l.startswith("tails.rare_coverage_kept"))
    assert "WORSE" not in rare                         # 3% is within the 5% default
    assert compare(a, b, tolerance=0.25) == 0


def test_lower_is_better_metrics_fall_when_they_rise(tmp_path):
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", moved(fidelity__frechet=0.2,
                                           synthetic_kept__compression_ratio=2.4))
    assert compare(a, b) == 1                                  # Fréchet doubled
    assert compare(b, a) == 0                                  # ... and back is better


def test_untracked_metrics_are_printed_but_do_not_fail(tmp_path, capsys):
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", moved(fidelity__density=0.2, synthetic_kept__records=10))
    assert compare(a, b) == 0
    assert "(not tracked)" in capsys.readouterr().out


def test_cli_compare_exit_codes(tmp_path, capsys):
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", moved(fidelity__recall=0.5), passed=False)
    assert main(["compare", a, b]) == 1
    assert main(["compare", a, b, "--tolerance", "0.5"]) == 0
    assert main(["compare", a, str(tmp_path / "missing")]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_compare_two_real_runs(tmp_path, python_docs_prose, hashed_embedder, capsys):
    real = python_docs_prose[:600]
    healthy = python_docs_prose[600:900]
    narrow = [s for s in python_docs_prose[600:] if " exception" in s][:60]   # one topic
    config = Config(stages=["dedup", "embed"])
    run(real=pd.DataFrame({"text": real}), synthetic=pd.DataFrame({"text": healthy}),
        config=config, embedder=hashed_embedder, out=tmp_path / "round1")
    run(real=pd.DataFrame({"text": real}), synthetic=pd.DataFrame({"text": narrow}),
        config=config, embedder=hashed_embedder, out=tmp_path / "round2")
    assert compare(tmp_path / "round1", tmp_path / "round2") == 1
    out = capsys.readouterr().out
    assert "fidelity_kept.coverage" in out and "WORSE" in out


@pytest.mark.parametrize("content", ["{not json", ""])
def test_unreadable_report_is_a_usage_error(tmp_path, content):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(content)
    b = write_report(tmp_path / "b", BASE)
    assert main(["compare", str(tmp_path / "a"), b]) == 2


def test_a_tracked_metric_missing_from_run_b_counts_as_fallen(tmp_path, capsys):
    without_embeddings = json.loads(json.dumps(BASE))
    del without_embeddings["fidelity"]
    a = write_report(tmp_path / "a", BASE)
    b = write_report(tmp_path / "b", without_embeddings)
    assert compare(a, b) == 1
    out = capsys.readouterr().out
    assert "fidelity.recall" in out and "MISSING in B" in out
