"""The pipeline's shape: stages as objects that declare what they read, write and reject; the
runner a loop over them; the package installed as `synthgate` only; and the decisions on the
bundled sample pinned, so a change of shape that changes behaviour is caught."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, Reason, build_stages, describe, run
from synthgate.cli import main
from synthgate.stage import BaseStage

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


def test_every_stage_declares_its_columns_and_reasons():
    assert [s.name for s in build_stages(Config())] == ["dedup", "formulaic", "embed", "mix",
                                                        "measure"]
    stages = build_stages(Config(), benchmark=["evals.jsonl"])   # decontamination first
    assert [s.name for s in stages] == ["decontaminate", "dedup", "formulaic", "embed", "mix",
                                        "measure"]
    for stage in stages:
        assert isinstance(stage, BaseStage)
        assert all(isinstance(r, Reason) for r in stage.reasons)
        assert stage.reads, stage.name
    given = {r for s in stages for r in s.reasons}
    # Every reason but `invalid` (given at ingest, before any stage) has a stage that gives it.
    assert given == set(Reason) - {Reason.INVALID}


def test_stage_choice_keeps_pipeline_order():
    names = [s.name for s in build_stages(Config(stages=["mix", "dedup"]))]
    assert names == ["dedup", "mix", "measure"]


def test_synthgate_stages_prints_the_pipeline(capsys):
    assert main(["stages"]) == 0
    text = capsys.readouterr().out
    for stage in describe():
        assert f"{stage['name']}:" in text
        for reason in stage["reasons"]:
            assert reason in text
    assert main(["stages", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == describe()


def test_report_counts_each_stages_rejections():
    result = run(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl",
                 config=Config(stages=["dedup", "formulaic", "mix"]))
    stages = result.report["stages"]
    assert [s["name"] for s in stages] == ["ingest", "dedup", "formulaic", "mix", "measure"]
    per_reason: dict[str, int] = {}
    for s in stages:
        assert s["records_in"] - s["records_out"] <= sum(s["rejected"].values())
        for reason, n in s["rejected"].items():
            per_reason[reason] = per_reason.get(reason, 0) + n
    assert per_reason == result.report["rejections"]


def _digest(decisions: pd.DataFrame) -> str:
    """A digest of the decision log's content (floats to 4 places, so that the last bits of
    a BLAS do not count)."""
    def canon(v):
        if isinstance(v, (float, np.floating)):
            return None if v != v else round(float(v), 4)
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (list, tuple, np.ndarray)):
            return [canon(x) for x in v]
        return None if v is pd.NA else v
    rows = [[canon(v) for v in row] for row in decisions.itertuples(index=False)]
    payload = json.dumps([list(decisions.columns), rows], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# The decisions on the bundled sample, pinned. A change that means to change decisions
# updates these and says why in its commit; a refactor must leave them alone.
PINNED = {
    "dedup,formulaic,mix": "b4fcd8020a561b70",
    "all stages, hashed embedder": "83013b04c6769a5b",
}


@pytest.mark.parametrize("name", list(PINNED))
def test_sample_decisions_are_pinned(name, hashed_embedder):
    if name == "dedup,formulaic,mix":
        result = run(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl",
                     config=Config(stages=["dedup", "formulaic", "mix"]))
    else:
        result = run(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl",
                     embedder=hashed_embedder)
    assert _digest(result.decisions) == PINNED[name]


def test_wheel_installs_synthgate_only(tmp_path):
    """The repository folders pipeline/ and checks/ install as synthgate and
    synthgate.checks: no top-level `pipeline` or `checks` to collide with other libraries."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True,
                   capture_output=True)
    wheel = next(tmp_path.glob("synthgate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"synthgate"}
    for needed in ("synthgate/checks/contracts.py", "synthgate/formulaic/scorer.py",
                   "synthgate/data/stock_phrases.txt", "synthgate/cli.py"):
        assert needed in names
