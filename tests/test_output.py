"""The output writer (issue 16, point 5): --out always holds one complete output, the old or
the new, whatever kills the run and whenever; leftovers of dead runs are cleaned; only files
synthgate wrote are ever removed.

The kill tests run a writer process that replaces DIR over and over (each output marked with
its round in every file) and kill it at random moments, with both swaps: renameat2's exchange
and the two-rename fallback that the next run repairs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from synthgate import output
from synthgate.output import MANIFEST, check_out_dir, recover

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import pickle, sys
from synthgate import output
out, exchange = sys.argv[1], sys.argv[2] == "1"
with open(sys.argv[3], "rb") as fh:
    result = pickle.load(fh)
k = 0
while True:
    result.report["test_round"] = k
    result.decisions["test_round"] = k
    result.kept["test_round"] = k
    output.write_outputs(result, out, "parquet", "0.1.0", exchange=exchange)
    if k == 0:
        print("ready", flush=True)
    k += 1
"""


@pytest.fixture(scope="module")
def result_file(tmp_path_factory) -> Path:
    """A real run's result, made once; the writers only write it."""
    import pickle

    from synthgate import Config, run
    real = pd.DataFrame({"text": [f"real record {i} with a few more words" for i in range(6)]})
    synth = pd.DataFrame({"text": [f"synthetic record {i} with words" for i in range(4)]})
    path = tmp_path_factory.mktemp("result") / "result.pickle"
    path.write_bytes(pickle.dumps(run(real=real, synthetic=synth,
                                      config=Config(stages=["dedup", "mix"]))))
    return path


def start_writer(out: Path, exchange: bool, result_file: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "1" if exchange else "0",
                             str(result_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def assert_one_complete_output(out: Path) -> int:
    """DIR holds every file its manifest lists, all from the same round; returns the round."""
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    rounds = {json.loads((out / "report.json").read_text())["test_round"]}
    rounds |= set(pd.read_parquet(out / "decisions.parquet")["test_round"])
    rounds |= set(pd.read_parquet(out / "train.parquet")["test_round"])
    assert len(rounds) == 1, rounds
    (out / "report.html").read_text(encoding="utf-8")
    return rounds.pop()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != "out")


@pytest.mark.parametrize("exchange, sig, kills", [
    (True, signal.SIGKILL, 3), (False, signal.SIGKILL, 3), (True, signal.SIGINT, 1),
    (False, signal.SIGINT, 1), (True, signal.SIGTERM, 1)],
    ids=["renameat2-kill9", "fallback-kill9", "renameat2-SIGINT", "fallback-SIGINT",
         "renameat2-SIGTERM"])
def test_killed_at_random_moments_dir_holds_the_old_or_the_new_output(tmp_path, result_file,
                                                                      exchange, sig, kills):
    rng = random.Random(f"{exchange}{sig}")
    out = tmp_path / "out"
    rounds = []
    for _ in range(kills):
        proc = start_writer(out, exchange, result_file)
        time.sleep(rng.uniform(0.0, 0.4))   # some rounds in: a kill lands anywhere in one
        proc.send_signal(sig)
        proc.wait(timeout=30)
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr or "KeyboardInterrupt" in stderr, stderr
        if exchange or out.exists():   # the fallback may die between its two renames...
            rounds.append(assert_one_complete_output(out))
        recover(out)                   # ...which the next run repairs first
        assert_one_complete_output(out)
        assert leftovers(tmp_path) == [], leftovers(tmp_path)
    assert rounds == [] or max(rounds) > 0   # the writer did replace DIR


def test_two_runs_on_one_dir_at_once_leave_one_complete_output(tmp_path, result_file):
    out = tmp_path / "out"
    writers = [start_writer(out, exchange, result_file) for exchange in (True, True, False)]
    time.sleep(1.0)
    for proc in writers:
        proc.send_signal(signal.SIGKILL)
    for proc in writers:
        proc.wait(timeout=30)
        assert "Error" not in proc.stderr.read()
    recover(out)
    assert_one_complete_output(out)
    assert leftovers(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_fallback_swap_killed_between_its_renames_is_repaired(tmp_path):
    """The state a kill leaves between `rename(DIR, old)` and `rename(tmp, DIR)`: no DIR, the
    old output and the complete new one beside it. The next run puts the old one back."""
    out = tmp_path / "out"
    for name in ("old", "tmp"):
        d = tmp_path / f".out.{name}-{_dead_pid()}-0123abcd"
        d.mkdir()
        (d / "report.json").write_text(json.dumps({"which": name}))
        (d / MANIFEST).write_text(json.dumps({"kind": "synthgate output",
                                              "files": ["report.json"]}))
    recover(out)
    assert json.loads((out / "report.json").read_text()) == {"which": "old"}
    assert leftovers(tmp_path) == []


def test_leftovers_keep_what_synthgate_did_not_write_and_live_runs_are_left_alone(tmp_path):
    out = tmp_path / "out"
    dead = tmp_path / f".out.tmp-{_dead_pid()}-89abcdef"
    dead.mkdir()
    (dead / "train.parquet").write_bytes(b"half written")
    (dead / "mine.txt").write_text("a user's file, never ours to delete")
    live = tmp_path / f".out.tmp-{os.getpid()}-00000000"
    live.mkdir()
    (live / "report.json").write_text("{}")
    other = tmp_path / ".output.tmp-1-00000000"   # another DIR's name: not ours to judge
    other.mkdir()
    with output._flock(live):   # a run writing right now holds this
        recover(out)
    assert sorted(p.name for p in dead.iterdir()) == ["mine.txt"]
    assert (live / "report.json").exists() and other.exists()
    recover(out)   # its writer gone, the live one's folder is a leftover too
    assert not live.exists()


def test_an_output_listing_a_folder_is_replaced_whole(tmp_path):
    """Outputs may hold folders (Parquet shards, `datasets` directories): listed, removed."""
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "train" / "part-0.parquet").write_bytes(b"x")
    (out / MANIFEST).write_text(json.dumps({"kind": "synthgate output",
                                            "files": ["train"]}))
    check_out_dir(out)   # ours: may be replaced
    tmp = tmp_path / "new"
    tmp.mkdir()
    (tmp / MANIFEST).write_text(json.dumps({"kind": "synthgate output", "files": []}))
    output._swap(tmp, out, exchange=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]
    assert leftovers(tmp_path) == []


def test_the_cli_interrupted_exits_130_and_leaves_the_old_or_the_new_output(tmp_path):
    """^C at a random moment of a real run over a previous output: exit 130 and one line,
    DIR the old or the new output, nothing left beside it. The moment is drawn between the
    end of the imports (a ^C while Python imports the package is Python's own) and the end
    of the run, both timed here."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "synthgate.cli", "run", "--real",
            str(ROOT / "sample_data" / "real.jsonl"), "--synthetic",
            str(ROOT / "sample_data" / "synthetic.jsonl"), "--stages", "dedup,formulaic,mix",
            "--quiet", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import synthgate.cli, synthgate.runner"], cwd=ROOT,
                   check=True)
    imports = time.perf_counter() - start
    start = time.perf_counter()
    assert subprocess.run(args, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    whole = time.perf_counter() - start
    old = (out / "report.json").read_text()
    proc = subprocess.Popen(args + ["--max-synthetic-share", "0.3"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(random.Random(130).uniform(imports + 0.2, max(imports + 0.3, 0.9 * whole)))
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), stderr   # 0: the run was over before the ^C
    assert "Traceback" not in stderr
    if proc.returncode == 130:
        assert len(stderr.strip().splitlines()) == 1 and "interrupted" in stderr
    report = (out / "report.json").read_text()
    assert report == old or json.loads(report)["config"]["max_synthetic_share"] == 0.3
    assert_one_complete_output_files(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def assert_one_complete_output_files(out: Path) -> None:
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    pd.read_parquet(out / "decisions.parquet")
