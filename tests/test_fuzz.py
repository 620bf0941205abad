"""Fuzz suite (issue 16): generated malformed files, odd records, config values, flags and
orderings, each checked against the contract:

- exit 0 or 1, with one decision per input record (none lost, none twice), train exactly the
  kept records, and a manifest naming the files written; or
- exit 2 with one line on stderr that starts with "synthgate" and nothing written;
- never a traceback, never the internal-error status 3;
- never a file outside --out created, changed or removed;
- the same records in any order: the same decisions and the same report.

Hypothesis runs derandomized (the same cases on every run, so CI is deterministic) with
example counts that keep the whole file near half a minute. `python -m pytest -s
tests/test_fuzz.py` prints how many cases each test generated and what they ended as;
`SYNTHGATE_FUZZ_SCALE=20` runs 20 times as many cases, new ones each time (not derandomized),
for a longer hunt.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import HashedNgramEmbedder
from synthgate import Config, ConfigError, InputError, run
from synthgate.cli import main
from synthgate.records import Reason

STATS: Counter = Counter()


SCALE = int(os.environ.get("SYNTHGATE_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nfuzz cases:", dict(sorted(STATS.items())))


# Distinct records (each its own words): records that differ in one word of ten are
# near-duplicates, and a synthetic set of them fails the gate's rejected-share check.
REAL = [{"id": f"r{i}", "text": f"a real record on {t}: " + " ".join(f"w{i}x{j}" for j in range(8))}
        for i, t in enumerate("ab" * 6)]
SYNTH_OK = [{"id": f"s{i}", "text": f"a synthetic record {i % 3}: " + " ".join(f"v{i}y{j}"
                                                                             for j in range(8))}
            for i in range(6)]
FAST = ["--stages", "dedup,formulaic,mix", "--quiet"]


def tree(root: Path, skip: str) -> dict[str, bytes]:
    """Every path under root but the output folder, with its content (or its kind)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts and rel.parts[0] == skip:
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            key = str(rel / name)
            if key == skip:
                continue
            out[key] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


def check_cli(files: dict[str, bytes], args: list[str], expected_records: int | None = None,
              label: str = "") -> int:
    """Writes the files into a fresh folder, runs the CLI there and checks the contract;
    `{dir}` in args is that folder. Returns the exit status."""
    root = Path(tempfile.mkdtemp(prefix="synthgate-fuzz-"))
    try:
        for name, data in files.items():
            (root / name).write_bytes(data)
        out = root / "out"
        args = [a.replace("{dir}", str(root)) for a in args] + ["--out", str(out)]
        before = tree(root, "out")
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
        err = stderr.getvalue()
        STATS[f"{label} exit {code}"] += 1
        if "Traceback" in err or code == 3:
            STATS["tracebacks"] += 1
        assert "Traceback" not in err, err
        assert code in (0, 1, 2), err
        assert tree(root, "out") == before, "a file outside --out changed"
        if code == 2:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("synthgate"), err
            assert stdout.getvalue() == ""
            assert not out.exists()
            assert sorted(os.listdir(root)) == sorted(files), "a leftover beside --out"
        else:
            check_outputs(out, expected_records)
        return code
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_outputs(out: Path, expected_records: int | None) -> None:
    manifest = json.loads((out / ".synthgate-manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*")
        if p.is_file() and p.name != ".synthgate-manifest.json")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    decisions = pd.read_parquet(out / "decisions.parquet")
    n_in = report["inputs"]["real"] + report["inputs"]["synthetic"]
    if expected_records is not None and len(decisions) != expected_records:
        STATS["records lost"] += abs(expected_records - len(decisions))
    assert len(decisions) == n_in
    if expected_records is not None:
        assert len(decisions) == expected_records, "records lost or doubled"
    assert not decisions.duplicated(["source", "id"]).any()
    codes = {r.value for r in Reason}
    for reasons, kept in zip(decisions["reasons"], decisions["kept"]):
        assert set(reasons) <= codes
        assert kept == (len(reasons) == 0)
    train_name = [f for f in manifest["files"] if f.startswith("train")][0]
    if train_name.startswith("train/"):   # --format hf: a datasets save_to_disk folder
        import datasets
        train = datasets.load_from_disk(str(out / "train")).to_pandas()
    elif train_name.endswith(".parquet"):
        train = pd.read_parquet(out / train_name)
    else:
        train = pd.read_json(out / train_name, lines=True, dtype=False)
    assert len(train) == int(decisions["kept"].sum())
    (out / "report.html").read_text(encoding="utf-8")


def jsonl(records, ensure_ascii=True) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n"
                   for r in records).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------- odd records

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "the", "record", "words",
                              "\u4e2d\u6587", "e\u0301", "\u200b", "ǅ", "\ufb01", " ", "\n"]),
             max_size=14).map(" ".join),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=10), SURROGATES,
              st.text(max_size=10)))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.floats(allow_nan=True, allow_infinity=True), TEXT)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)
CHAT_PART = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": VALUE}),
                      st.fixed_dictionaries({"type": st.just("image_url"),
                                             "image_url": st.just({"url": "x.png"})}),
                      VALUE)
TURN = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant"]), VALUE),
                              "content": st.one_of(TEXT, st.lists(CHAT_PART, max_size=3),
                                                   VALUE)})
RECORD = st.fixed_dictionaries(
    {}, optional={"id": st.one_of(TEXT, st.integers(-2**70, 2**70), VALUE),
                  "text": st.one_of(TEXT, VALUE), "messages": st.lists(TURN, max_size=3),
                  "generation": st.one_of(st.integers(-3, 2**66), VALUE),
                  "meta": VALUE, "\ud800key": VALUE})


# Most records get a plain unique id or none, and most no generation: an id that is a list
# or a bad generation refuses the whole file (exit 2), and the odd records behind it would
# then never reach a stage.
ID_MODE = st.sampled_from(["plain", "plain", "none", "fuzzed"])


def shaped(records: list[dict], modes: list[str], prefix: str, keep_generation: bool
           ) -> list[dict]:
    out = []
    for i, (record, mode) in enumerate(zip(records, modes)):
        record = dict(record)
        if mode == "plain":
            record["id"] = f"{prefix}{i}"
        elif mode == "none":
            record.pop("id", None)
        if not keep_generation:
            record.pop("generation", None)
        out.append(record)
    return out


@fuzz_settings(60)
@given(synth=st.lists(st.tuples(RECORD, ID_MODE), min_size=1, max_size=8),
       extra_real=st.lists(st.tuples(RECORD, ID_MODE), max_size=3),
       ensure_ascii=st.booleans(), ok=st.integers(0, 3), generation=st.integers(0, 3))
def test_odd_records(synth, extra_real, ensure_ascii, ok, generation):
    synth = shaped([r for r, _ in synth], [m for _, m in synth], "g", generation == 0)
    extra_real = shaped([r for r, _ in extra_real], [m for _, m in extra_real], "x",
                        generation == 0)
    files = {"real.jsonl": jsonl(REAL + extra_real, ensure_ascii),
             "synth.jsonl": jsonl(SYNTH_OK[:ok] + synth, ensure_ascii)}
    expected = len(REAL) + len(extra_real) + ok + len(synth)
    check_cli(files, ["run", "--real", "{dir}/real.jsonl", "--synthetic",
                      "{dir}/synth.jsonl", *FAST], expected, "odd records")


@fuzz_settings(20)
@given(synth=st.lists(st.tuples(RECORD, ID_MODE), min_size=1, max_size=6),
       seed=st.integers(0, 3))
def test_odd_records_through_every_stage(synth, seed, tmp_path_factory):
    """The embedding stage too (a small deterministic embedder), through the Python API."""
    synth = shaped([r for r, _ in synth], [m for _, m in synth], "g", False)
    root = tmp_path_factory.mktemp("api")
    real = root / "real.jsonl"
    real.write_bytes(jsonl(REAL * 1 + [{"id": f"x{i}", "text": f"more real words {i} here"}
                                       for i in range(20)]))
    path = root / "synth.jsonl"
    path.write_bytes(jsonl(SYNTH_OK + synth))
    try:
        result = run(real=str(real), synthetic=str(path), config=Config(seed=seed),
                     embedder=HashedNgramEmbedder(dim=64), out=root / "out")
    except (InputError, ConfigError):
        STATS["every stage exit 2"] += 1
        assert not (root / "out").exists()
        return
    STATS[f"every stage exit {0 if result.passed else 1}"] += 1
    check_outputs(root / "out", len(REAL) + 20 + len(SYNTH_OK) + len(synth))


# ------------------------------------------------------------------------- malformed files

def _formats(records: list[dict]) -> dict[str, bytes]:
    frame = pd.DataFrame(records)
    buf = io.BytesIO()
    # Parquet carries the kinds JSON cannot: bytes, timestamps, nested structs, empty ones.
    frame.assign(blob=[bytes([i, 255]) for i in range(len(frame))],
                 when=pd.Timestamp("2024-01-01"),
                 nest=[[{"k": b"\x01", "v": i}] for i in range(len(frame))]
                 ).to_parquet(buf, index=False)
    csv = frame.to_csv(index=False).encode()
    return {"jsonl": jsonl(records), "json": json.dumps(records).encode(), "csv": csv,
            "tsv": frame.to_csv(index=False, sep="\t").encode(), "parquet": buf.getvalue(),
            "jsonl.gz": gzip.compress(jsonl(records)),
            "jsonl.zst": zstandard.ZstdCompressor().compress(jsonl(records)),
            "csv.gz": gzip.compress(csv)}


GOOD = _formats(SYNTH_OK)
MUTATION = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                        min_size=1, max_size=4)),
    st.tuples(st.just("insert"), st.floats(0, 1),
              st.sampled_from([b"\x00", b"\xff\xfe", b'"', b"\n", b"\r", b",", b"{", b"]",
                               b"\\ud800", b"\xed\xa0\x80", b"\t", b"\x1f\x8b"])),
    st.tuples(st.just("prepend"), st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff",
                                                  b"\xff\xfe\x00\x00", b"\n\n", b" "])),
    st.tuples(st.just("repeat"), st.floats(0, 1)),
    st.tuples(st.just("utf16"), st.sampled_from(["utf-16-le", "utf-16-be", "utf-32-le"])))


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation[0], mutation[1]
    n = len(data)
    if kind == "truncate":
        return data[:int(n * arg)]
    if kind == "flip":
        out = bytearray(data)
        for where, value in arg:
            if out:
                out[min(n - 1, int(n * where))] = value
        return bytes(out)
    if kind == "insert":
        at = int(n * arg)
        return data[:at] + mutation[2] + data[at:]
    if kind == "prepend":
        return arg + data
    if kind == "repeat":
        at = int(n * arg)
        return data + data[at:]
    try:
        return data.decode("utf-8").encode(arg)
    except UnicodeDecodeError:
        return data


def jsonl_records_in(data: bytes) -> int | None:
    """How many records a JSON lines file holds, when it parses whole: every non-blank line
    is one; a run that accepts the file must decide exactly these."""
    count = 0
    for line in data.split(b"\n"):
        if line.strip():
            count += 1
    return count


try:   # the hf extra (the test extra brings it): the training set as a save_to_disk folder
    import datasets as _datasets  # noqa: F401
    OUT_FORMATS = ["parquet", "jsonl", "hf"]
except ImportError:  # pragma: no cover
    OUT_FORMATS = ["parquet", "jsonl"]


@fuzz_settings(90)
@given(fmt=st.sampled_from(sorted(GOOD)), mutations=st.lists(MUTATION, max_size=2),
       out_format=st.sampled_from(OUT_FORMATS))
def test_malformed_files(fmt, mutations, out_format):
    data = GOOD[fmt]
    for m in mutations:
        data = mutate(data, m)
    name = f"synth.{fmt}"
    expected = None
    if fmt == "jsonl" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        expected = len(REAL) + jsonl_records_in(data.removeprefix(b"\xef\xbb\xbf"))
    code = check_cli({"real.jsonl": jsonl(REAL), name: data},
                     ["run", "--real", "{dir}/real.jsonl", "--synthetic", f"{{dir}}/{name}",
                      "--max-synthetic-share", "1", "--format", out_format, *FAST],
                     expected, f"malformed {fmt}")
    if not mutations:
        assert code == 0, "a well-formed file was refused"
    compressed = fmt.endswith((".gz", ".zst"))
    if compressed and mutations and all(m[0] == "truncate" and m[1] < 0.999
                                        for m in mutations) and len(data) > 0:
        assert code == 2, "a truncated stream was read as whole"


@fuzz_settings(60)
@given(fmt=st.sampled_from(sorted(GOOD)), mutations=st.lists(MUTATION, max_size=2))
def test_malformed_files_read_the_same_through_fsspec(fmt, mutations):
    """A file read from an fsspec URL (memory://) goes through the same parsers and checks as
    the same bytes on disk: the same records and reasons, or the same message naming it."""
    fsspec = pytest.importorskip("fsspec", reason="the hf extra is not installed")
    data = GOOD[fmt]
    for m in mutations:
        data = mutate(data, m)
    root = Path(tempfile.mkdtemp(prefix="synthgate-fuzz-"))
    mem = fsspec.filesystem("memory")
    where = f"/fuzz-{os.getpid()}"
    try:
        (root / f"synth.{fmt}").write_bytes(data)
        mem.pipe(f"{where}/synth.{fmt}", data)
        outcomes = []
        for name in (str(root / f"synth.{fmt}"), f"memory:/{where}/synth.{fmt}"):
            try:
                table = run(real=pd.DataFrame(REAL), synthetic=name,
                            config=Config(stages=["dedup"], max_synthetic_share=1.0)).decisions
                outcomes.append(table[["id", "source", "kept", "reasons"]].to_json())
            except InputError as exc:
                outcomes.append(str(exc).replace(name, "<file>"))
        STATS[f"fsspec {'same' if outcomes[0] == outcomes[1] else 'DIFFERENT'}"] += 1
        assert outcomes[0] == outcomes[1]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if mem.exists(where):
            mem.rm(where, recursive=True)


# ------------------------------------------------------------------------- config and flags

KEYS = ["max_synthetic_share", "seed", "stages", "format", "text_field", "id_field",
        "text_template", "source_field", "ingest.min_words", "ingest.min_chars",
        "dedup.threshold", "dedup.num_perm", "dedup.ngram", "dedup.shingle", "dedup.seed",
        "dedup.lsh_recall", "dedup.batch_size", "dedup.workers", "dedup.exact", "dedup.near",
        "formulaic.quantile", "formulaic.min_n", "formulaic.max_n", "formulaic.min_z",
        "formulaic.min_ratio", "formulaic.stock_phrases", "formulaic.builtin_stock_phrases",
        "mix.min_per_cluster", "mix.quality_weight", "mix.max_share_per_generation",
        "gate.max_invalid_share", "embed.k", "embed.model", "nonsense", "dedup.nonsense"]
TOML_SCALAR = st.one_of(
    st.integers(-5, 30), st.integers(-2**63, 2**63 - 1),
    st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.5, -0.1, 1e308, 5e-324, math.nan, math.inf,
                     -math.inf]),
    st.booleans(),
    st.sampled_from(["dedup", "mix", "formulaic", "embed", "", "word", "char", "parquet",
                     "jsonl", "text", "id", "{text}", "{text", "{0}", "{a.b}", "é", "as an ai"]))
TOML_VALUE = st.one_of(TOML_SCALAR, st.lists(TOML_SCALAR, max_size=3))


def plausible(key: str) -> st.SearchStrategy:
    """Values of the key's own type, inside or at its bounds: runs that go on to the stages
    with unusual settings, where a crash would hide."""
    import dataclasses
    import typing

    section, _, name = key.rpartition(".")
    obj = getattr(Config(), section) if section else Config()
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields:
        return TOML_VALUE
    f = fields[name]
    hint = typing.get_type_hints(type(obj))[name]
    kinds = set(typing.get_args(hint)) | {hint}
    lo, hi, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
    if name == "stages":
        return st.lists(st.sampled_from(["dedup", "formulaic", "mix"]), min_size=1,
                        max_size=3, unique=True)
    if choices:
        return st.sampled_from(list(choices))
    if bool in kinds:
        return st.booleans()
    if float in kinds:
        return st.floats(lo if lo is not None else -10.0, hi if hi is not None else 10.0)
    if int in kinds:
        lo = lo if lo is not None else 0
        return st.integers(lo, min(hi if hi is not None else lo + 40, lo + 40))
    if list in {typing.get_origin(k) for k in kinds}:
        return st.lists(st.sampled_from(["as an ai", "in conclusion", "record", "é"]),
                        max_size=3)
    return st.sampled_from(["text", "id", "{text}", "", "é"])


CONFIG_ITEMS = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries(
        {k: st.one_of(plausible(k), plausible(k), plausible(k), TOML_VALUE) for k in keys}))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else
                                            "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


def toml_text(items: dict) -> str:
    top, sections = [], {}
    for key, value in items.items():
        section, _, name = key.rpartition(".")
        (sections.setdefault(section, []) if section else top).append(
            f"{name} = {toml_value(value)}")
    return "\n".join(top + [f"\n[{s}]\n" + "\n".join(lines) for s, lines in sections.items()])


@fuzz_settings(70)
@given(items=CONFIG_ITEMS)
def test_config_values(items):
    """The file is validated whole (its `stages` too); the flag then keeps the model-free
    stages, so no case loads an embedding model."""
    files = {"real.jsonl": jsonl(REAL), "synth.jsonl": jsonl(SYNTH_OK),
             "gate.toml": toml_text(items).encode()}
    check_cli(files, ["run", "--real", "{dir}/real.jsonl", "--synthetic", "{dir}/synth.jsonl",
                      "--config", "{dir}/gate.toml", *FAST], len(REAL) + len(SYNTH_OK),
              "config")


FLAG_VALUE = st.sampled_from(["-1", "0", "1", "0.5", "nan", "inf", "-inf", "1e999", "",
                              "dedup", "dedup,mix", ",", "text", "{text}", "x" * 300, "é",
                              "2", "4294967295", "4294967296", "1.5", "--quiet"])
PLAUSIBLE_FLAG = {
    "--seed": st.integers(0, 2**32 - 2).map(str),
    "--max-synthetic-share": st.floats(0, 1).map(repr),
    "--max-share-per-generation": st.floats(0, 1).map(repr),
    "--stages": st.lists(st.sampled_from(["dedup", "formulaic", "mix"]), min_size=1,
                         unique=True).map(",".join),
    "--text-field": st.just("text"), "--id-field": st.sampled_from(["id", "text", "none"]),
    "--text-template": st.sampled_from(["{text}", "{id}: {text}", r"{text}\n{id}"]),
    "--format": st.sampled_from(["parquet", "jsonl"]), "--model": st.just("unused")}
FLAGS = sorted(PLAUSIBLE_FLAG)


@fuzz_settings(50)
@given(flags=st.lists(st.sampled_from(FLAGS), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries(
        {n: st.one_of(PLAUSIBLE_FLAG[n], PLAUSIBLE_FLAG[n], FLAG_VALUE) for n in names})))
def test_flag_values(flags):
    args = ["run", "--real", "{dir}/real.jsonl", "--synthetic", "{dir}/synth.jsonl", "--quiet"]
    if "--stages" not in flags:
        args += FAST[:2]
    for flag, value in flags.items():
        args += [f"{flag}={value}"]
    files = {"real.jsonl": jsonl(REAL), "synth.jsonl": jsonl(SYNTH_OK)}
    check_cli(files, args, len(REAL) + len(SYNTH_OK), "flags")


@fuzz_settings(25)
@given(a=st.one_of(st.just("good"), st.binary(max_size=40), VALUE.map(json.dumps)),
       tolerance=st.one_of(st.none(), FLAG_VALUE))
def test_compare_inputs(a, tolerance):
    root = Path(tempfile.mkdtemp(prefix="synthgate-fuzz-"))
    try:
        good = {"version": 1, "metrics": {"fidelity": {"recall": 0.5}}, "gate": {}}
        for name, content in (("a", a), ("b", "good")):
            (root / name).mkdir()
            data = json.dumps(good).encode() if content == "good" else \
                content if isinstance(content, bytes) else content.encode("utf-8",
                                                                          "surrogatepass")
            (root / name / "report.json").write_bytes(data)
        args = ["compare", str(root / "a"), str(root / "b")]
        if tolerance is not None:
            args.append(f"--tolerance={tolerance}")
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
        STATS[f"compare exit {code}"] += 1
        assert "Traceback" not in stderr.getvalue()
        assert code in (0, 1, 2), stderr.getvalue()
        if code == 2:
            assert len(stderr.getvalue().strip().splitlines()) == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------- order independence

def corpus() -> tuple[list[dict], list[dict]]:
    """Real and synthetic records with exact, near and cross-source duplicates, records
    without ids (some with equal texts), invalid ones and generations."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import real_sentences
    sentences = real_sentences(prose=True)
    real = [{"id": f"r{i}", "text": s} for i, s in enumerate(sentences[:90])]
    real += [{"text": sentences[3]}, {"text": sentences[3].upper()}, {"text": "  "}]
    synth = [{"id": f"s{i}", "text": s, "generation": 1 + i % 2}
             for i, s in enumerate(sentences[90:150])]
    synth += [{"id": "copy", "text": sentences[5]},
              {"id": "near", "text": sentences[100].replace(" the ", " a ", 1)},
              {"text": sentences[101], "meta": 1}, {"text": sentences[101], "meta": 2},
              {"text": sentences[101], "meta": 2}, {"id": "bad", "text": 12345},
              {"text": "formulaic as an AI language model I cannot say"} ]
    return real, synth


def gate(real, synth, mixed: bool):
    embedder = HashedNgramEmbedder(dim=128)
    if mixed:   # one input, real and synthetic interleaved, the source in a field
        rows = [dict(r, origin="real") for r in real] + \
            [dict(s, origin="synthetic") for s in synth]
        random.Random(len(rows)).shuffle(rows)
        return run(input=pd.DataFrame(rows), embedder=embedder,
                   config=Config(seed=3, max_synthetic_share=0.2, source_field="origin"))
    return run(real=pd.DataFrame(real), synthetic=pd.DataFrame(synth), embedder=embedder,
               config=Config(seed=3, max_synthetic_share=0.2))


BASELINES: dict[bool, tuple[pd.DataFrame, str]] = {}


def comparable(result) -> tuple[pd.DataFrame, str]:
    decisions = result.decisions.sort_values(["source", "id"]).reset_index(drop=True)
    report = {k: v for k, v in result.report.items() if k != "stages"}   # timings
    return decisions, json.dumps(report, default=str, sort_keys=True)


@fuzz_settings(6)
@given(real_order=st.randoms(use_true_random=False),
       synth_order=st.randoms(use_true_random=False), mixed=st.booleans())
def test_order_independence(real_order, synth_order, mixed):
    """Every stage, the embedding one included: the same decisions (scores too) and the same
    report for the records in any order."""
    real, synth = corpus()
    if mixed not in BASELINES:
        BASELINES[mixed] = comparable(gate(real, synth, mixed))
    real_order.shuffle(real)
    synth_order.shuffle(synth)
    decisions, report = comparable(gate(real, synth, mixed))
    STATS["orderings"] += 1
    base_decisions, base_report = BASELINES[mixed]
    pd.testing.assert_frame_equal(base_decisions, decisions)
    assert report == base_report
    assert 0 < decisions["kept"].sum() < len(decisions)   # the corpus exercises rejections
    assert {"exact_duplicate", "copies_real", "invalid", "share_cap"} <= \
        {r for reasons in decisions["reasons"] for r in reasons}
