"""Where the data lives (issue 14): Hugging Face datasets, fsspec URLs, the dataset card.

Everything here is real: `datasets` objects and save_to_disk folders made in the test, a
Hub-dataset cache built in a temporary HF_HOME the way an online load leaves it, fsspec's
`memory://` filesystem and `file://` URLs. Nothing reaches the network: the Hub is either
offline (HF_DATASETS_OFFLINE=1) or a closed port on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

datasets = pytest.importorskip(
    "datasets", reason="the hf extra is not installed (pip install -e '.[test]' brings it; "
                       ".ci/run installs it)")
fsspec = pytest.importorskip("fsspec", reason="the hf extra is not installed")
yaml = pytest.importorskip("yaml", reason="PyYAML comes with the hf extra")

from datasets import (Array2D, ClassLabel, Dataset, DatasetDict, Features, Json,  # noqa: E402
                      LargeList, List, Value)

from synthgate import Config, run  # noqa: E402
from synthgate.cli import main  # noqa: E402
from synthgate.ingest import InputError, ingest, resolve_paths  # noqa: E402
from synthgate.output import MANIFEST  # noqa: E402

from conftest import real_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = real_sentences(prose=True)
FAST = dict(stages=["dedup"], max_synthetic_share=1.0)

datasets.disable_progress_bars()

# Every feature type a text dataset carries that `datasets` can save without an optional
# decoder (Image needs Pillow, Audio/Video torchcodec; Translation cannot be saved by
# datasets 5.2 at all: its _estimate_nbytes fails on it).
FEATURES = Features({
    "text": Value("string"), "label": ClassLabel(names=["neg", "pos"]),
    "i8": Value("int8"), "u16": Value("uint16"), "f16": Value("float16"),
    "f32": Value("float32"), "flag": Value("bool"), "big_text": Value("large_string"),
    "raw": Value("binary"), "day": Value("date32"), "at": Value("timestamp[s]"),
    "took": Value("duration[ms]"), "tags": List(Value("string")),
    "counts": LargeList(Value("int32")), "xy": List(Value("float32"), length=2),
    "meta": {"a": Value("int32"), "b": {"c": Value("string")}},
    "turns": List({"role": Value("string"), "content": Value("string")}),
    "grid": Array2D(shape=(2, 2), dtype="int32"), "extra": Json(),
})


def record(k: int, text: str) -> dict:
    return {"text": text, "label": k % 2, "i8": k % 100, "u16": k, "f16": 0.5, "f32": k / 4,
            "flag": k % 3 == 0, "big_text": f"note {k}", "raw": bytes([k % 256, 255]),
            "day": datetime.date(2020, 1, 1) + datetime.timedelta(days=k),
            "at": datetime.datetime(2021, 5, 4, 3, 2, 1), "took": datetime.timedelta(
                milliseconds=k), "tags": ["a", "b"][: k % 3], "counts": [k, k + 1],
            "xy": [float(k), 1.0], "meta": {"a": k, "b": {"c": f"c{k}"}},
            "turns": [{"role": "user", "content": "hi"}], "grid": [[k, 0], [0, k]],
            "extra": {"k": [k, "x"]}}


def rich(texts: list[str], start: int = 0) -> Dataset:
    return Dataset.from_list([record(start + i, t) for i, t in enumerate(texts)],
                             features=FEATURES)


def plain(texts: list[str]) -> Dataset:
    return Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(len(texts))]},
                             features=Features({"text": Value("string"),
                                                "label": ClassLabel(names=["neg", "pos"])}))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["run", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- HF in and out

def test_every_feature_type_survives_a_save_to_disk_round_trip(tmp_path):
    """A save_to_disk folder in, --format hf out: the original columns come back with their
    features (ClassLabel names, fixed-length lists, nested dicts, Array2D, Json...) and their
    values, row by row."""
    real = rich(SENTENCES[:40])
    real.save_to_disk(tmp_path / "real")
    synth = rich(SENTENCES[40:70], start=40)
    result = run(real=str(tmp_path / "real"), synthetic=synth,
                 config=Config(format="hf", **FAST), out=tmp_path / "out")
    back = datasets.load_from_disk(str(tmp_path / "out" / "train"))
    assert len(back) == len(result.kept) >= 60   # dedup may drop a near-duplicate sentence
    for name, feature in FEATURES.items():
        if name != "text":   # the training set's text is synthgate's own column
            assert back.features[name] == feature, name
    originals = {r["text"]: r for r in real} | {r["text"]: r for r in synth}
    for row in back:
        assert {k: v for k, v in row.items() if k not in ("id", "source")} == \
            originals[row["text"]]
    assert result.features["label"] == {"names": ["neg", "pos"], "_type": "ClassLabel"}


def test_every_feature_type_survives_parquet_through_the_card(tmp_path):
    """--format parquet: Parquet keeps the Arrow types, and the card's features give back
    what Arrow cannot say (ClassLabel names): load_dataset on the output folder, as the Hub
    would, sees the input's features."""
    result = run(real=rich(SENTENCES[:30]), synthetic=rich(SENTENCES[30:50], start=30),
                 config=Config(**FAST), out=tmp_path / "out")
    loaded = datasets.load_dataset(str(tmp_path / "out"), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == len(result.kept) >= 45
    for name, feature in FEATURES.items():
        if name != "text":
            assert loaded.features[name] == feature, name
    assert loaded.features["label"].int2str(loaded[1]["label"]) == "pos"


def test_dataset_objects_stay_arrow_and_only_read_columns_become_python(tmp_path):
    """A Dataset's other columns are not copied into Python objects: the originals are
    Arrow-backed (pd.ArrowDtype) over the dataset's own memory."""
    ds = rich(SENTENCES[:20])
    ingested = ingest(Config(), real=ds, synthetic=rich(SENTENCES[20:30], start=20))
    for name in ("meta", "turns", "grid", "raw", "label"):
        assert isinstance(ingested.originals[name].dtype, pd.ArrowDtype), name
    assert ingested.table["text"].tolist() == SENTENCES[:30]


def test_selected_and_streamed_datasets_read_their_rows(tmp_path):
    """A Dataset with an index mapping (select/shuffle) gives its selected rows, in order; an
    IterableDataset streams as Arrow batches."""
    ds = plain(SENTENCES[:40])
    picked = ds.shuffle(seed=3).select(range(15))
    streamed = plain(SENTENCES[40:60]).to_iterable_dataset()
    ingested = ingest(Config(), real=picked, synthetic=streamed)
    assert ingested.table["text"].tolist() == list(picked["text"]) + SENTENCES[40:60]
    assert picked["text"][0] != SENTENCES[0]   # the shuffle moved rows: order is checked
    assert ingested.features["label"]["_type"] == "ClassLabel"


def test_pyarrow_tables_polars_frames_and_lists_of_them(tmp_path):
    polars = pytest.importorskip("polars", reason="polars comes with the test extra")
    table = pa.table({"text": SENTENCES[:10], "n": list(range(10))})
    frame = polars.DataFrame({"text": SENTENCES[10:25], "tags": [["x"]] * 15})
    result = run(real=[table, pa.table({"text": SENTENCES[25:30]})], synthetic=frame,
                 config=Config(**FAST))
    assert result.report["inputs"] == {"real": 15, "synthetic": 15}
    kept = result.kept.set_index("text")
    assert kept.loc[SENTENCES[3], "n"] == 3
    assert list(kept.loc[SENTENCES[12], "tags"]) == ["x"]


def test_a_dataset_dict_needs_a_split(tmp_path, capsys):
    DatasetDict({"train": plain(SENTENCES[:30]), "test": plain(SENTENCES[30:42])}) \
        .save_to_disk(tmp_path / "dd")
    synth = tmp_path / "s.jsonl"
    synth.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[50:60]))
    code, _, err = cli(capsys, "--real", str(tmp_path / "dd"), "--synthetic", str(synth),
                       "--out", str(tmp_path / "out"), "--stages", "dedup")
    assert code == 2
    assert f"{tmp_path / 'dd'}: a dataset with splits train, test; choose one with --split" \
        in err and f"({tmp_path / 'dd'}/train)" in err
    assert not (tmp_path / "out").exists()
    code, out, err = cli(capsys, "--real", str(tmp_path / "dd"), "--split", "test",
                         "--synthetic", str(synth), "--out", str(tmp_path / "out"),
                         "--stages", "dedup", "--max-synthetic-share", "1")
    assert code == 0, err
    assert "input  12 real, 10 synthetic" in out
    code, _, err = cli(capsys, "--real", str(tmp_path / "dd"), "--split", "dev",
                       "--synthetic", str(synth), "--out", str(tmp_path / "o2"))
    assert code == 2 and "no split 'dev' (splits: train, test)" in err


def test_a_directory_walk_reads_a_save_to_disk_folder_as_one_dataset(tmp_path):
    """Its state.json and dataset_info.json are not records; beside it, data files are read."""
    plain(SENTENCES[:12]).save_to_disk(tmp_path / "data" / "hf")
    (tmp_path / "data" / "more.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[12:15]))
    found = resolve_paths([tmp_path / "data"])
    assert [str(f) for f in found] == [str(tmp_path / "data" / "hf"),
                                       str(tmp_path / "data" / "more.jsonl")]
    ingested = ingest(Config(), real=str(tmp_path / "data"), synthetic=plain(SENTENCES[20:22]))
    assert ingested.table["text"].tolist() == SENTENCES[:15] + SENTENCES[20:22]


def test_bad_records_in_a_dataset_are_named_like_any_file(tmp_path):
    ds = Dataset.from_dict({"text": ["a fine record of words", None, "x"], "id": [1, 2, 1]})
    ds.save_to_disk(tmp_path / "ds")
    with pytest.raises(InputError, match=r"ds: row 3: field 'id': duplicate real id '1' "
                                         r"\(first seen at .*ds: row 1\)"):
        ingest(Config(), real=str(tmp_path / "ds"))
    Dataset.from_dict({"body": ["words"]}).save_to_disk(tmp_path / "nt")
    with pytest.raises(InputError, match=r"nt: columns: no text field 'text' \(fields: body\)"):
        ingest(Config(), real=str(tmp_path / "nt"))


def test_benchmarks_come_from_datasets_and_urls_too(tmp_path, memfs):
    """--benchmark reads like any input: a save_to_disk folder and a memory:// file, each
    named by its folder or file (the name in benchmark_match)."""
    from synthgate.decontaminate import load_benchmarks
    fs, root = memfs
    Dataset.from_dict({"text": SENTENCES[100:103], "id": ["q1", "q2", "q3"]}) \
        .save_to_disk(tmp_path / "evalset")
    fs.pipe(f"{root}/quiz.jsonl", json.dumps({"text": SENTENCES[104]}).encode() + b"\n")
    items = load_benchmarks([str(tmp_path / "evalset"), f"memory:/{root}/quiz.jsonl"])
    assert [items.label(i) for i in range(len(items))] == ["evalset:q1", "evalset:q2",
                                                           "evalset:q3", "quiz:0"]
    assert items.text == SENTENCES[100:103] + [SENTENCES[104]]


# ----------------------------------------------------------------------------- hf: names

def build_hub_cache(hf_home: Path, repo: str, splits: dict[str, Dataset]) -> None:
    """What an online `load_dataset(repo)` leaves in HF_HOME: the prepared Arrow files under
    datasets/OWNER___NAME/CONFIG/VERSION/HASH/NAME-SPLIT.arrow with dataset_info.json. Made
    here with the packaged Parquet builder from local files, then put under the repo's name."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    owner, name = repo.split("/")
    files = {}
    for split, ds in splits.items():
        files[split] = str(hf_home / f"{split}.parquet")
        ds.to_parquet(files[split])
    cache = hf_home / "datasets"
    Parquet(cache_dir=str(cache), data_files=files, dataset_name=name, config_id="default",
            hash="0123abcd").download_and_prepare()
    shutil.move(cache / name, cache / f"{owner}___{name}")


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthgate.cli", "run", *args, "--quiet"],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=240)


def test_hf_names_load_offline_from_the_cache(tmp_path):
    hf_home = tmp_path / "hf"
    build_hub_cache(hf_home, "someone/tiny", {"train": plain(SENTENCES[:25]),
                                              "test": plain(SENTENCES[25:33])})
    env = {"HF_HOME": str(hf_home), "HF_DATASETS_OFFLINE": "1"}
    synth = tmp_path / "s.jsonl"
    synth.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[40:50]))
    done = run_cli(["--real", "hf:someone/tiny@test", "--synthetic", str(synth), "--out",
                    str(tmp_path / "out"), "--stages", "dedup", "--max-synthetic-share", "1",
                    "--format", "hf"], env)
    assert done.returncode == 0, done.stderr
    assert "input  8 real, 10 synthetic" in done.stdout
    train = datasets.load_from_disk(str(tmp_path / "out" / "train"))
    assert train.features["label"] == ClassLabel(names=["neg", "pos"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| real | 8 | hf:someone/tiny@test |" in card

    done = run_cli(["--real", "hf:someone/tiny", "--synthetic", str(synth), "--out",
                    str(tmp_path / "o2")], env)
    assert done.returncode == 2
    assert "hf:someone/tiny: a dataset with splits train, test; choose one with --split " \
           "or hf:NAME@SPLIT" in done.stderr
    done = run_cli(["--real", "hf:someone/absent@train", "--synthetic", str(synth), "--out",
                    str(tmp_path / "o3")], env)
    assert done.returncode == 2
    assert done.stderr.startswith("synthgate: error: hf:someone/absent@train: not in the local "
                                  f"Hugging Face cache ({hf_home / 'datasets'}) and offline "
                                  "mode is on")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_an_hf_name_must_be_well_formed(tmp_path):
    with pytest.raises(InputError, match=r"hf:a/b/c: expected hf:OWNER/NAME\[:CONFIG\]"):
        resolve_paths(["hf:a/b/c"])


# ----------------------------------------------------------------------------- fsspec URLs

@pytest.fixture
def memfs():
    fs = fsspec.filesystem("memory")
    root = f"/t{os.getpid()}-{id(fs) % 10_000}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _write_formats(put, texts: list[str]) -> None:
    """The same records as every format and compression (put(name, bytes))."""
    import zstandard

    lines = "".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts))
    put("a.jsonl", lines.encode())
    put("b.jsonl.gz", gzip.compress(lines.encode()))
    put("c.jsonl.zst", zstandard.ZstdCompressor().compress(lines.encode()))
    put("d.json", json.dumps([{"text": t, "n": i} for i, t in enumerate(texts)]).encode())
    put("e.csv", ("text,n\n" + "".join(f'"{t}",{i}\n' for i, t in enumerate(texts))).encode())
    put("f.tsv", ("text\tn\n" + "".join(f"{t}\t{i}\n" for i, t in enumerate(texts))).encode())
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": texts, "n": list(range(len(texts)))}), sink)
    put("g.parquet", sink.getvalue().to_pybytes())
    put(".hidden/h.jsonl", b"not json")   # hidden: never read
    put("notes.txt", b"a README beside the data")


def test_memory_urls_read_every_format_like_local_files(tmp_path, memfs):
    fs, root = memfs
    texts = [t.replace('"', "'").replace("\t", " ") for t in SENTENCES[:6]]

    def put_mem(name: str, data: bytes) -> None:
        fs.pipe(f"{root}/d/{name}", data)

    def put_local(name: str, data: bytes) -> None:
        path = tmp_path / "d" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    _write_formats(put_mem, texts)
    _write_formats(put_local, texts)
    config = Config()
    remote = ingest(config, real=f"memory:/{root}/d")
    local = ingest(config, real=str(tmp_path / "d"))
    assert remote.table["text"].tolist() == local.table["text"].tolist() == texts * 7
    assert remote.table["id"].tolist() == local.table["id"].tolist()
    files = resolve_paths([f"memory:/{root}/d/*.json*"])
    assert [str(f) for f in files] == [f"memory:/{root}/d/{n}" for n in
                                       ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.json")]
    by_url = ingest(config, real=f"file://{tmp_path}/d/*.parquet")
    assert by_url.table["text"].tolist() == texts


def test_memory_url_errors_name_the_url_file_and_line(memfs):
    fs, root = memfs
    good = gzip.compress(b'{"text": "some words here"}\n' * 50)
    fs.pipe(f"{root}/cut.jsonl.gz", good[: len(good) // 2])
    fs.pipe(f"{root}/bad.jsonl", b'{"text": "fine words here"}\n{"text": oops}\n')
    fs.pipe(f"{root}/x.xml", b"<x/>")
    url = f"memory:/{root}"
    cases = {f"{url}/cut.jsonl.gz": f"{url}/cut.jsonl.gz: truncated .gz stream",
             f"{url}/bad.jsonl": f"{url}/bad.jsonl: line 2: malformed JSON",
             f"{url}/x.xml": f"{url}/x.xml: unknown format",
             f"{url}/none.jsonl": f"{url}/none.jsonl: file not found",
             f"{url}/*.csv": f"{url}/*.csv: no .jsonl",
             "nosuchproto://b/x.jsonl": "nosuchproto://b/x.jsonl: not a usable URL"}
    for spec, message in cases.items():
        with pytest.raises(InputError) as caught:
            ingest(Config(), real=spec)
        assert str(caught.value).startswith(message), (spec, str(caught.value))


def test_a_url_never_shows_its_credentials(tmp_path):
    from synthgate.sources import public_name
    assert public_name("s3://KEY:SECRET@bucket/x.jsonl?token=abc") == "s3://bucket/x.jsonl"
    assert public_name("simplecache::https://u:p@host:8080/a.jsonl") == \
        "simplecache::https://host:8080/a.jsonl"


def test_a_save_to_disk_folder_on_an_fsspec_filesystem(memfs):
    fs, root = memfs
    plain(SENTENCES[:9]).save_to_disk(f"memory:/{root}/ds")
    ingested = ingest(Config(), real=f"memory:/{root}/ds")
    assert ingested.table["text"].tolist() == SENTENCES[:9]
    assert ingested.features["label"]["names"] == ["neg", "pos"]


def test_a_file_url_keeps_the_local_checks(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO"):
        ingest(Config(), real=f"file://{fifo}")


# ----------------------------------------------------------------------------- the card

def _card(out: Path) -> tuple[dict, str]:
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def _table_rows(body: str, heading: str) -> list[list[str]]:
    section = body.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ")][1:]


@pytest.mark.parametrize("fmt", ["parquet", "hf", "jsonl"])
def test_the_card_header_is_what_the_hub_reads_and_its_counts_are_the_report(tmp_path, fmt):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"text": t, "label": i % 3}) + "\n"
                            for i, t in enumerate(SENTENCES[:60])))
    synth = tmp_path / "synth.jsonl"
    synth_texts = SENTENCES[60:90] + SENTENCES[60:70] + SENTENCES[:5] + ["", "ok"]
    synth.write_text("".join(json.dumps({"text": t, "label": 1}) + "\n" for t in synth_texts))
    out = tmp_path / "out"
    result = run(real=str(real), synthetic=str(synth),
                 config=Config(stages=["dedup", "mix"], format=fmt), out=out)
    report = json.loads((out / "report.json").read_text())
    head, body = _card(out)
    kept = report["output"]["real"] + report["output"]["synthetic"]
    assert head["tags"] == ["synthetic", "synthgate"]
    assert head["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": {"parquet": "train.parquet", "jsonl": "train.jsonl",
                                    "hf": "train/*.arrow"}[fmt]}]}]
    info = head["dataset_info"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["dataset_size"],
                               "num_examples": kept}]
    assert info["download_size"] > 0 and info["dataset_size"] > 0
    assert [f["name"] for f in info["features"]] == list(result.kept.columns)
    # The Hub's own readers accept it: huggingface_hub's card parser and datasets' infos.
    card = DatasetCard.load(out / "README.md")
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert list(infos["default"].features) == list(result.kept.columns)
    if fmt != "jsonl":
        loaded = datasets.load_dataset(str(out), split="train",
                                       cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == kept and loaded.features == infos["default"].features
    # Counts per reason, the gate, the share: those of report.json.
    removed = {r[0].strip("`").replace("\\_", "_"): int(r[1])
               for r in _table_rows(body, "What was removed and why")}
    assert removed == report["rejections"] and set(removed) >= {"invalid", "exact_duplicate",
                                                                 "copies_real"}
    went_in = {r[0]: int(r[1]) for r in _table_rows(body, "What went in")}
    assert went_in == report["inputs"]
    checks = _table_rows(body, "Gate")
    assert len(checks) == len(report["gate"]["checks"])
    assert [c[1] == "pass" for c in checks] == [c["passed"] for c in report["gate"]["checks"]]
    verdict = "**Gate PASSED**" if report["gate"]["passed"] else "**Gate FAILED**"
    assert verdict in body
    assert f"{report['output']['synthetic_share']:.3f} of the kept records are synthetic" in body
    assert f"config hash `{report['config']['hash']}`" in body
    assert "README.md" in json.loads((out / MANIFEST).read_text())["files"]


def test_the_card_escapes_names_from_the_user(tmp_path):
    folder = tmp_path / "<script>alert(1)<|script> *x*"
    folder.mkdir()
    (folder / "r.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                            for t in SENTENCES[:20]))
    run(real=str(folder), synthetic=plain(SENTENCES[20:25]), config=Config(**FAST),
        out=tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;alert\\(1\\)&lt;\\|script&gt; \\*x\\*" \
        in text
    row = [r for r in _table_rows(_card(tmp_path / "out")[1], "What went in")
           if r[0] == "real"]
    assert len(row) == 1   # the escaped | did not split the table row


def test_the_yaml_writer_reads_back_any_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from synthgate.card import to_yaml

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.text(min_size=1), st.one_of(
        st.text(), st.integers(), st.booleans(), st.lists(st.text()),
        st.dictionaries(st.text(min_size=1), st.text())), max_size=4))
    def check(data):
        data = {k: v for k, v in data.items()}
        assert yaml.safe_load(to_yaml({"x": data})) == {"x": data}

    check()


def test_our_arrow_names_match_datasets_own(tmp_path):
    """The card describes plain columns without importing datasets; the names must be the
    ones datasets gives the same Arrow types."""
    from synthgate.card import arrow_feature
    schema = pa.schema([
        ("s", pa.string()), ("ls", pa.large_string()), ("i", pa.int64()), ("u", pa.uint8()),
        ("f", pa.float32()), ("b", pa.bool_()), ("n", pa.null()), ("bin", pa.binary()),
        ("d", pa.date32()), ("ts", pa.timestamp("ms", tz="UTC")), ("t", pa.time64("us")),
        ("dur", pa.duration("s")), ("dec", pa.decimal128(10, 2)),
        ("l", pa.list_(pa.string())), ("ll", pa.large_list(pa.int16())),
        ("fl", pa.list_(pa.float64(), 3)), ("st", pa.struct([("a", pa.int32()),
                                                             ("b", pa.list_(pa.string()))])),
        ("lst", pa.list_(pa.struct([("x", pa.string())]))),
        ("dict", pa.dictionary(pa.int8(), pa.string()))])
    ours = [{"name": f.name, **arrow_feature(f.type)} for f in schema]
    assert ours == Features.from_arrow_schema(schema)._to_yaml_list()


# ----------------------------------------------------------------------------- manifest

def test_the_train_folder_is_listed_file_by_file_and_foreign_files_are_refused(tmp_path,
                                                                                 capsys):
    real = tmp_path / "r.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[:20]))
    args = ["--real", str(real), "--synthetic", str(real), "--out", str(tmp_path / "out"),
            "--stages", "dedup", "--format", "hf", "--max-synthetic-share", "1"]
    code, _, err = cli(capsys, *args)
    assert code == 1, err   # every synthetic record copies a real one
    listed = json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]
    on_disk = sorted(str(p.relative_to(tmp_path / "out")) for p in
                     (tmp_path / "out").rglob("*") if p.is_file() and p.name != MANIFEST)
    assert sorted(listed) == on_disk and "train/state.json" in listed
    notes = tmp_path / "out" / "train" / "my-notes.txt"
    notes.write_text("mine")
    code, _, err = cli(capsys, *args)
    assert code == 2 and "files synthgate did not write (train/my-notes.txt)" in err
    assert notes.read_text() == "mine"
    notes.unlink()
    # A train/ replaced by a link to the user's folder: refused, and never followed.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "state.json").write_text("{}")
    shutil.rmtree(tmp_path / "out" / "train")
    (tmp_path / "out" / "train").symlink_to(mine)
    code, _, err = cli(capsys, *args)
    assert code == 2 and "(train)" in err and (mine / "state.json").exists()
    (tmp_path / "out" / "train").unlink()
    from synthgate.output import _remove_output
    (tmp_path / "out" / "train").symlink_to(mine)
    assert _remove_output(tmp_path / "out") is False
    assert (mine / "state.json").read_text() == "{}"


# ----------------------------------------------------------------------------- extras

@pytest.mark.parametrize("spec_kind", ["save_to_disk", "hf", "format", "url"])
def test_a_missing_extra_names_it(tmp_path, capsys, monkeypatch, spec_kind):
    """The import of datasets (or fsspec) fails as it does where the extra is not
    installed: exit 2 and a message naming synthgate[hf], before any output."""
    plain(SENTENCES[:10]).save_to_disk(tmp_path / "ds")
    real = tmp_path / "r.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[:10]))
    blocked = "fsspec" if spec_kind == "url" else "datasets"
    monkeypatch.setitem(sys.modules, blocked, None)   # `import datasets` raises ImportError
    source = {"save_to_disk": str(tmp_path / "ds"), "hf": "hf:someone/tiny@train",
              "format": str(real), "url": "memory://x/y.jsonl"}[spec_kind]
    extra = ["--format", "hf"] if spec_kind == "format" else []
    code, _, err = cli(capsys, "--real", source, "--synthetic", str(real), "--out",
                       str(tmp_path / "out"), *extra)
    assert code == 2
    assert f"needs the optional package '{blocked}', which is not installed" in err
    assert "install it with: pip install 'synthgate[hf]'" in err
    assert not (tmp_path / "out").exists()


def test_a_plain_run_imports_no_hf_library(tmp_path):
    """A dedup-only run on local files stays fast: datasets, polars and fsspec are never
    imported (python -X importtime lists every module a run imports)."""
    real = tmp_path / "r.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[:10]))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "synthgate.cli", "run",
                           "--real", str(real), "--synthetic", str(real), "--out",
                           str(tmp_path / "out"), "--stages", "dedup", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "synthgate" in imported and "pandas" in imported
    assert not imported & {"datasets", "polars", "fsspec", "huggingface_hub"}


# ----------------------------------------------------------------------------- push

def test_the_push_decision():
    from synthgate.hub import should_push
    assert should_push(True, False) and should_push(True, True) and should_push(False, True)
    assert not should_push(False, False)


def test_push_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    real = tmp_path / "r.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[:10]))
    base = ["--real", str(real), "--synthetic", str(real), "--out", str(tmp_path / "out")]
    code, _, err = cli(capsys, *base, "--push-even-if-failed")
    assert code == 2 and "--push-even-if-failed applies to --push-to-hub only" in err
    code, _, err = cli(capsys, *base, "--push-to-hub", "no-slash")
    assert code == 2 and "'no-slash' is not a dataset repository name" in err
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "empty-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH",
                        str(tmp_path / "empty-home" / "stored_tokens"))
    code, _, err = cli(capsys, *base, "--push-to-hub", "me/set")
    assert code == 2 and "--push-to-hub needs a Hugging Face token" in err
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    import synthgate
    from synthgate.hub import plan
    # The embedding stage sets HF_HUB_OFFLINE for its model load: that is not the user's
    # choice, and a push after such a run (the Python API) still goes out.
    monkeypatch.setattr(synthgate, "USER_HF_OFFLINE", {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert plan("me/set").repo_id == "me/set"
    # Offline as the user set it (before synthgate was imported): refused before the work.
    monkeypatch.setattr(synthgate, "USER_HF_OFFLINE", {"HF_HUB_OFFLINE": "1"})
    code, _, err = cli(capsys, *base, "--push-to-hub", "me/set")
    assert code == 2 and "needs the network, but HF_HUB_OFFLINE is set" in err
    assert not (tmp_path / "out").exists()


def test_push_goes_to_the_endpoint_only_after_a_passing_gate(tmp_path):
    """A real HfApi against a closed local port: a failed gate never contacts it ('not
    pushed', exit 1); a passing one does, and the refused upload is one exit-2 line while
    the output stays complete. (The upload protocol itself is not tested: no Hub here.)"""
    real = tmp_path / "r.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[:30]))
    synth = tmp_path / "s.jsonl"
    synth.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES[30:40]))
    env = {"HF_TOKEN": "hf_test", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "",
           "TRANSFORMERS_OFFLINE": "", "HF_DATASETS_OFFLINE": "", "HF_HUB_ETAG_TIMEOUT": "2",
           "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    failed = run_cli(["--real", str(real), "--synthetic", str(real), "--out",
                      str(tmp_path / "o1"), "--stages", "dedup", "--push-to-hub", "me/set"],
                     env)
    assert failed.returncode == 1, failed.stderr
    assert "not pushed to me/set: the gate failed (--push-even-if-failed pushes anyway)" \
        in failed.stdout
    passed = run_cli(["--real", str(real), "--synthetic", str(synth), "--out",
                      str(tmp_path / "o2"), "--stages", "dedup", "--max-synthetic-share", "1",
                      "--push-to-hub", "me/set"], env)
    assert passed.returncode == 2, passed.stdout + passed.stderr
    assert "pushing to the Hub dataset me/set failed" in passed.stderr
    assert f"the output in {tmp_path / 'o2'} is complete" in passed.stderr
    assert (tmp_path / "o2" / "README.md").exists() and (tmp_path / "o2" / MANIFEST).exists()
