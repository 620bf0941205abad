"""The data contracts: the pandas engine (the default) computes every expectation as Great
Expectations does, so the checks of a run are those of the real GX suite, passing or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run
from synthgate.checks.contracts import (Expectation, input_contract, output_contract,
                                        validate)
from synthgate.records import new_table, reject, Reason

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


def both(name, frame, expectations):
    fast = validate(name, frame, expectations, "pandas")
    slow = validate(name, frame, expectations, "great_expectations")
    return fast, slow


FRAME = pd.DataFrame({
    "source": ["real", "real", "synthetic", "synthetic", "real", None],
    "id": ["a", "a", "a", "b", "c", None],
    "kept": [True, False, True, True, False, True],
    "in_train": [True, False, False, True, True, True],
    "flag": [True, True, False, None, True, True],
    "text": ["x", None, "y", None, None, "z"],
    "share": [1.0, 0.0, 1.0, 1.0, np.nan, 0.0],
})


@pytest.mark.parametrize("expectation", [
    Expectation("unique", "ExpectCompoundColumnsToBeUnique", {"column_list": ["source", "id"]}),
    Expectation("unique_three", "ExpectCompoundColumnsToBeUnique",
                {"column_list": ["source", "id", "kept"]}),
    Expectation("rows_ok", "ExpectTableRowCountToEqual", {"value": 6}),
    Expectation("rows_bad", "ExpectTableRowCountToEqual", {"value": 7}),
    Expectation("in_set", "ExpectColumnValuesToBeInSet", {"column": "flag", "value_set": [True]}),
    Expectation("pair", "ExpectColumnPairValuesToBeEqual",
                {"column_A": "kept", "column_B": "in_train"}),
    Expectation("not_null", "ExpectColumnValuesToNotBeNull", {"column": "text"}),
    Expectation("not_null_mostly_pass", "ExpectColumnValuesToNotBeNull",
                {"column": "text", "mostly": 0.5}),
    Expectation("not_null_mostly_fail", "ExpectColumnValuesToNotBeNull",
                {"column": "text", "mostly": 0.51}),
    Expectation("mean_in", "ExpectColumnMeanToBeBetween",
                {"column": "share", "min_value": 0.0, "max_value": 0.6}),
    Expectation("mean_out", "ExpectColumnMeanToBeBetween",
                {"column": "share", "min_value": 0.0, "max_value": 0.5}),
])
def test_pandas_engine_gives_the_gx_suite_result(expectation):
    fast, slow = both("t", FRAME, [expectation])
    assert fast == slow


def _table(n_real: int, n_synth: int, invalid: int, repeat_id: bool) -> pd.DataFrame:
    ids = [f"r{i}" for i in range(n_real)] + [f"s{i}" for i in range(n_synth)]
    if repeat_id:
        ids[1] = ids[0]
    table = new_table(ids, ["real"] * n_real + ["synthetic"] * n_synth,
                      [f"text number {i} here" for i in range(n_real + n_synth)])
    reject(table, np.isin(np.arange(n_real + n_synth), np.arange(n_real, n_real + invalid)),
           Reason.INVALID)
    return table


@pytest.mark.parametrize("n_real,n_synth,invalid,repeat_id", [
    (5, 5, 0, False), (5, 6, 4, True), (4, 0, 0, True), (3, 4, 2, False), (3, 4, 3, False)])
def test_input_contract_same_on_both_engines(n_real, n_synth, invalid, repeat_id):
    table = _table(n_real, n_synth, invalid, repeat_id)
    fast = input_contract(table, 0.5, "pandas")
    assert fast == input_contract(table, 0.5, "great_expectations")
    assert any(not c.passed for c in fast) == (repeat_id or invalid > 0.5 * n_synth)


def test_output_contract_same_on_both_engines_when_broken():
    """A decision log that breaks every promise: a lost row, a repeated id, a rejected record
    without a reason, a training set that differs from the kept rows, a share over the cap."""
    decisions = pd.DataFrame({"id": ["a", "a", "b", "c"],
                              "source": ["real", "real", "synthetic", "synthetic"],
                              "kept": [True, False, True, True],
                              "reasons": [[], [], [], ["share_cap"]]})
    train = pd.DataFrame({"id": ["a", "b", "d"], "source": ["real", "synthetic", "synthetic"]})
    fast = output_contract(decisions, train, 5, 0.5, cap_applied=False, engine="pandas")
    slow = output_contract(decisions, train, 5, 0.5, cap_applied=False,
                           engine="great_expectations")
    assert fast == slow
    assert [c.passed for c in fast] == [False] * 5


def test_run_checks_same_with_either_engine():
    config = Config(stages=["dedup", "formulaic", "mix"])
    fast = run(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl", config=config)
    slow = run(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl",
               config=config.with_overrides(**{"gate.contracts": "great_expectations"}))
    names = lambda r: [c for c in r.report["gate"]["checks"]
                       if c["name"].startswith(("input.", "output."))]
    assert names(fast) == names(slow) and len(names(fast)) == 8


def test_plain_run_does_not_import_the_heavy_libraries(tmp_path):
    """A dedup run never imports GX, torch, sentence-transformers, sklearn or datasketch: they
    cost seconds of start-up and the run does not use them."""
    real, synth = tmp_path / "r.jsonl", tmp_path / "s.jsonl"
    real.write_text('{"text": "one two three four"}\n{"text": "five six seven eight"}\n')
    synth.write_text('{"text": "nine ten eleven twelve"}\n')
    code = ("import sys\nfrom synthgate.cli import main\n"
            f"rc = main(['run', '--real', {str(real)!r}, '--synthetic', {str(synth)!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--stages', 'dedup', "
            "'--max-synthetic-share', '1', '--quiet'])\n"
            "heavy = ['great_expectations', 'torch', 'sentence_transformers', 'sklearn', "
            "'datasketch', 'scipy', 'usearch', 'onnxruntime']\n"
            "print(sorted(m for m in heavy if m in sys.modules)); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
