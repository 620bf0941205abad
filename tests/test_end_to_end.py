"""The command line end to end on the bundled sample data: every input record decided once,
the training set is exactly the kept records, the planted defects get their reasons, and
outputs are written atomically."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from synthgate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One real process, as a user runs it: `python -m synthgate.cli run ...` on sample_data."""
    out = tmp_path_factory.mktemp("e2e") / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "synthgate.cli", "run",
         "--real", str(SAMPLE / "real.jsonl"), "--synthetic", str(SAMPLE / "synthetic.jsonl"),
         "--stages", "dedup,mix", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    decisions = pd.read_parquet(out / "decisions.parquet") if out.exists() else None
    train = pd.read_parquet(out / "train.parquet") if out.exists() else None
    report = json.loads((out / "report.json").read_text()) if out.exists() else None
    return {"proc": proc, "out": out, "decisions": decisions, "train": train, "report": report,
            "real": read_jsonl(SAMPLE / "real.jsonl"),
            "synthetic": read_jsonl(SAMPLE / "synthetic.jsonl")}


def test_the_sample_run_passes_and_says_so(sample_run):
    proc = sample_run["proc"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "gate PASSED" in proc.stdout
    assert sorted(p.name for p in sample_run["out"].iterdir()) == \
        [".synthgate-manifest.json", "README.md", "decisions.parquet", "report.html",
         "report.json", "train.parquet"]


def test_every_input_record_is_decided_exactly_once(sample_run):
    decisions = sample_run["decisions"]
    expected = {("real", r["id"]) for r in sample_run["real"]} | \
        {("synthetic", s["id"]) for s in sample_run["synthetic"]}
    got = list(zip(decisions["source"], decisions["id"]))
    assert len(got) == len(sample_run["real"]) + len(sample_run["synthetic"])
    assert len(set(got)) == len(got)
    assert set(got) == expected


def test_train_is_exactly_the_kept_rows(sample_run):
    decisions, train = sample_run["decisions"], sample_run["train"]
    kept = decisions[decisions["kept"]]
    assert len(train) == len(kept)
    assert set(zip(train["source"], train["id"])) == set(zip(kept["source"], kept["id"]))
    # The text and the original columns travel with each kept record.
    by_id = {s["id"]: s for s in sample_run["synthetic"]}
    for row in train[train["source"] == "synthetic"].itertuples():
        assert row.text == by_id[row.id]["text"]
        assert row.defect == by_id[row.id]["defect"]
    # Every rejected record says why; no kept record carries a reason.
    assert (decisions["kept"] == decisions["reasons"].map(len).eq(0)).all()


def test_planted_defects_get_the_spine_reasons(sample_run):
    decisions = sample_run["decisions"].set_index("id")
    for rec in sample_run["synthetic"]:
        reasons = list(decisions.loc[rec["id"], "reasons"])
        if rec["defect"] == "invalid":
            assert reasons == ["invalid"], rec
        elif rec["defect"] == "exact_duplicate":
            # Which member of a duplicate group is kept follows the ids, not the file order
            # (README, "What a decision means"): here the planted copy's id (syn-d...)
            # sorts before its original's (syn-h...), so the original is the duplicate.
            first, second = sorted([rec["id"], rec["variant_of"]])
            assert list(decisions.loc[second, "reasons"]) == ["exact_duplicate"], rec
            assert decisions.loc[second, "dup_of"] == first
            assert "exact_duplicate" not in list(decisions.loc[first, "reasons"])
        elif rec["defect"] == "copies_real_exact":
            assert reasons == ["copies_real"], rec
            assert decisions.loc[rec["id"], "dup_of"] == rec["variant_of"]
            assert decisions.loc[rec["variant_of"], "kept"]   # the real record is kept


def test_the_cap_binds_exactly_on_the_sample(sample_run):
    report, decisions = sample_run["report"], sample_run["decisions"]
    assert report["rejections"]["share_cap"] > 0
    out = report["output"]
    # 400 real kept at cap 0.5: exactly 400 synthetic fit.
    assert out["real"] == 400 and out["synthetic"] == 400
    assert out["synthetic_share"] == 0.5
    assert report["inputs"] == {"real": 400, "synthetic": len(sample_run["synthetic"])}
    assert int(decisions["reasons"].map(lambda r: list(r) == ["share_cap"]).sum()) == \
        report["rejections"]["share_cap"]


def test_report_follows_the_contract(sample_run):
    report = sample_run["report"]
    for key in ("version", "synthgate_version", "config", "inputs", "output", "rejections",
                "stages", "metrics", "gate"):
        assert key in report
    assert report["version"] == 1
    assert report["config"]["hash"]
    assert [s["name"] for s in report["stages"]][:1] == ["ingest"]
    assert report["gate"]["passed"] is True
    for check in report["gate"]["checks"]:
        assert set(check) >= {"name", "passed", "observed", "threshold", "message"}
    html = (sample_run["out"] / "report.html").read_text(encoding="utf-8")
    # Self-contained: the page's own two inline scripts (data and code), nothing fetched.
    assert html.lower().count("<script") == 2 and "http://" not in html and "https://" not in html


# ------------------------------------------------------------------------- other sample files

def test_the_instruction_sample_with_a_template(capsys, tmp_path):
    code = main(["run", "--input", str(SAMPLE / "instructions.jsonl"), "--source-field",
                 "source", "--text-template", r"{instruction}\n\n{response}",
                 "--stages", "dedup,mix", "--quiet", "--out", str(tmp_path / "out")])
    capsys.readouterr()
    assert code == 0
    decisions = pd.read_parquet(tmp_path / "out" / "decisions.parquet").set_index("id")
    assert list(decisions.loc["s-copy-1", "reasons"]) == ["copies_real"]
    assert list(decisions.loc["s-empty-1", "reasons"]) == ["invalid"]   # blank response


def test_the_chat_sample_renders_messages(capsys, tmp_path):
    code = main(["run", "--input", str(SAMPLE / "chat.jsonl"), "--source-field", "source",
                 "--stages", "dedup,mix", "--quiet", "--format", "jsonl",
                 "--out", str(tmp_path / "out")])
    capsys.readouterr()
    assert code == 0
    train = pd.read_json(tmp_path / "out" / "train.jsonl", lines=True)
    assert train["text"].str.startswith("user: Define").all()
    assert train["text"].str.contains("\n\nassistant: ").all()
    decisions = pd.read_parquet(tmp_path / "out" / "decisions.parquet").set_index("id")
    assert list(decisions.loc["s-copy-1", "reasons"]) == ["copies_real"]


# ------------------------------------------------------------------------- outputs

def small_inputs(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"id": f"r{i}", "text": f"real record {i} of words"})
                            + "\n" for i in range(5)))
    synth = tmp_path / "synth.jsonl"
    synth.write_text("".join(json.dumps({"id": f"s{i}", "text": f"synthetic record {i} here",
                                         "score": i / 10}) + "\n" for i in range(8)))
    return str(real), str(synth)


def gate(tmp_path, out, *extra):
    real, synth = small_inputs(tmp_path)
    return main(["run", "--real", real, "--synthetic", synth, "--stages", "dedup,mix",
                 "--quiet", "--out", str(out), *extra])


def test_format_jsonl_writes_train_jsonl_equal_to_kept(capsys, tmp_path):
    out = tmp_path / "out"
    assert gate(tmp_path, out, "--format", "jsonl") == 0
    capsys.readouterr()
    assert not (out / "train.parquet").exists()
    train = pd.read_json(out / "train.jsonl", lines=True, dtype={"id": str})
    decisions = pd.read_parquet(out / "decisions.parquet")
    kept = decisions[decisions["kept"]]
    assert sorted(zip(train["source"], train["id"])) == sorted(zip(kept["source"], kept["id"]))
    assert "score" in train.columns   # original columns are carried through


def test_a_failed_run_leaves_no_output_dir(capsys, tmp_path):
    out = tmp_path / "out"
    code = main(["run", "--real", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    capsys.readouterr()
    assert code == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []   # no temp dir left beside it either


def test_a_failed_rerun_leaves_the_previous_output_intact(capsys, tmp_path):
    out = tmp_path / "out"
    assert gate(tmp_path, out) == 0
    before = (out / "report.json").read_text()
    code = main(["run", "--real", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    capsys.readouterr()
    assert code == 2
    assert (out / "report.json").read_text() == before


def test_a_rerun_replaces_the_old_output_whole(capsys, tmp_path):
    out = tmp_path / "out"
    assert gate(tmp_path, out) == 0
    assert (out / "train.parquet").exists()
    # (A file the user adds to an output is never deleted: that run is refused, see
    # test_hardening.py.)
    assert gate(tmp_path, out, "--format", "jsonl", "--max-synthetic-share", "0.2") == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert names == [".synthgate-manifest.json", "README.md", "decisions.parquet",
                     "report.html", "report.json", "train.jsonl"]
    assert json.loads((out / "report.json").read_text())["config"]["max_synthetic_share"] \
        == 0.2
    # Nothing but the input files and DIR is left beside it: no temp or old dirs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real.jsonl", "synth.jsonl"]
