"""The command line refuses bad input with exit 2 and one message that names the file, the
line or row and the field: no traceback, nothing written."""

import json

import pandas as pd
import pytest

from synthgate.cli import _template, main

REAL = [{"id": f"r{i}", "text": f"real record number {i} about topic {i % 3}"}
        for i in range(6)]
SYNTH = [{"id": f"s{i}", "text": f"synthetic record number {i} about topic {i % 2}"}
         for i in range(4)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    return write_jsonl(tmp_path / "real.jsonl", REAL), write_jsonl(tmp_path / "synth.jsonl",
                                                                   SYNTH)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, out, err, *fragments):
    """Exit 2, one line on stderr that holds every fragment, nothing on stdout."""
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("synthgate")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ------------------------------------------------------------------------- bad input files

def test_missing_file(capsys, tmp_path, inputs):
    out_dir = tmp_path / "out"
    result = run_cli(capsys, "run", "--real", tmp_path / "nope.jsonl", "--synthetic",
                     inputs[1], "--out", out_dir)
    assert_refused(*result, "nope.jsonl", "file not found")
    assert not out_dir.exists()


def test_unknown_format(capsys, tmp_path, inputs):
    (tmp_path / "real.txt").write_text("some text")
    result = run_cli(capsys, "run", "--real", tmp_path / "real.txt", "--synthetic",
                     inputs[1], "--out", tmp_path / "out")
    assert_refused(*result, "real.txt", "unknown format", ".jsonl")
    assert not (tmp_path / "out").exists()


def test_malformed_json_line_names_file_and_line(capsys, tmp_path, inputs):
    bad = tmp_path / "synth.jsonl"
    bad.write_text(json.dumps(SYNTH[0]) + "\n" + '{"id": "s9", "text": "unterminated}\n')
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", bad,
                     "--out", tmp_path / "out")
    assert_refused(*result, "synth.jsonl", "line 2", "malformed JSON")
    assert not (tmp_path / "out").exists()


def test_csv_without_the_text_column_names_the_column(capsys, tmp_path, inputs):
    pd.DataFrame({"id": ["a"], "body": ["a record in the wrong column"]}).to_csv(
        tmp_path / "synth.csv", index=False)
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", tmp_path / "synth.csv",
                     "--out", tmp_path / "out")
    assert_refused(*result, "synth.csv", "line 1 (header)", "no text field 'text'", "body")
    assert not (tmp_path / "out").exists()


def test_template_naming_an_absent_field(capsys, tmp_path, inputs):
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", inputs[1],
                     "--text-template", r"{instruction}\n\n{response}",
                     "--out", tmp_path / "out")
    assert_refused(*result, "real.jsonl", "line 1", "'instruction'", "fields: id, text")
    assert not (tmp_path / "out").exists()


def test_duplicate_id_within_a_source(capsys, tmp_path, inputs):
    synth = write_jsonl(tmp_path / "dup.jsonl", SYNTH + [dict(SYNTH[1], text="other words "
                                                                              "here now")])
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", synth,
                     "--out", tmp_path / "out")
    assert_refused(*result, "dup.jsonl", "line 5", "field 'id'", "'s1'", "line 2")
    assert not (tmp_path / "out").exists()


def test_json_array_of_non_objects(capsys, tmp_path, inputs):
    (tmp_path / "synth.json").write_text('[{"text": "a fine record here"}, 17]')
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic",
                     tmp_path / "synth.json", "--out", tmp_path / "out")
    assert_refused(*result, "synth.json", "element 2", "expected a JSON object")


def test_bad_source_value_in_mixed_input(capsys, tmp_path):
    mixed = write_jsonl(tmp_path / "mixed.jsonl",
                        [dict(r, origin="real") for r in REAL] + [dict(SYNTH[0], origin="?")])
    result = run_cli(capsys, "run", "--input", mixed, "--source-field", "origin",
                     "--out", tmp_path / "out")
    assert_refused(*result, "mixed.jsonl", "line 7", "field 'origin'", "'?'")


def test_input_without_source_field(capsys, tmp_path, inputs):
    result = run_cli(capsys, "run", "--input", inputs[0], "--out", tmp_path / "out")
    assert_refused(*result, "--input needs --source-field")


def test_source_field_without_input(capsys, tmp_path, inputs):
    result = run_cli(capsys, "run", "--real", inputs[0], "--source-field", "origin",
                     "--out", tmp_path / "out")
    assert_refused(*result, "--source-field applies to --input only")


def test_synthetic_without_real(capsys, tmp_path, inputs):
    result = run_cli(capsys, "run", "--synthetic", inputs[1], "--out", tmp_path / "out")
    assert_refused(*result, "no real records", "--real")


# ------------------------------------------------------------------------- bad config / flags

def test_unknown_config_key(capsys, tmp_path, inputs):
    (tmp_path / "gate.toml").write_text("[dedup]\nthreshhold = 0.9\n")
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", inputs[1],
                     "--config", tmp_path / "gate.toml", "--out", tmp_path / "out")
    assert_refused(*result, "gate.toml", "unknown key 'dedup.threshhold'")


@pytest.mark.parametrize("line, fragment", [
    ('max_synthetic_share = "half"', "key 'max_synthetic_share': expected a number"),
    ("max_synthetic_share = 1.5", "key 'max_synthetic_share': 1.5 is above the maximum"),
    ('stages = ["dedup", "everything"]', "key 'stages': 'everything' is not one of"),
    ("max_synthetic_share = ", "not valid TOML")])
def test_bad_config_value(capsys, tmp_path, inputs, line, fragment):
    (tmp_path / "gate.toml").write_text(line + "\n")
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", inputs[1],
                     "--config", tmp_path / "gate.toml", "--out", tmp_path / "out")
    assert_refused(*result, "gate.toml", fragment)


def test_missing_config_file(capsys, tmp_path, inputs):
    result = run_cli(capsys, "run", "--real", inputs[0], "--config", tmp_path / "no.toml",
                     "--out", tmp_path / "out")
    assert_refused(*result, "no.toml", "not found")


@pytest.mark.parametrize("flags, fragment", [
    (["--max-synthetic-share", "2"], "2 is not between 0 and 1"),
    (["--max-synthetic-share", "lots"], "'lots' is not a number"),
    (["--stages", "dedup,everything"], "unknown stage 'everything'"),
    (["--format", "csv"], "invalid choice: 'csv'")])
def test_usage_errors_are_one_line(capsys, tmp_path, inputs, flags, fragment):
    result = run_cli(capsys, "run", "--real", inputs[0], "--out", tmp_path / "out", *flags)
    assert_refused(*result, fragment, "synthgate run --help")


def test_out_that_is_a_file_is_refused_before_any_work(capsys, tmp_path, inputs):
    (tmp_path / "out").write_text("a file")
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", inputs[1],
                     "--out", tmp_path / "out")
    assert_refused(*result, "out", "not a directory")
    assert (tmp_path / "out").read_text() == "a file"


def test_out_that_holds_other_files_is_never_replaced(capsys, tmp_path, inputs):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = run_cli(capsys, "run", "--real", inputs[0], "--synthetic", inputs[1],
                     "--out", tmp_path / "mine")
    assert_refused(*result, "mine", "not a synthgate output")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_help_exits_zero(capsys):
    assert main(["run", "--help"]) == 0
    assert "--real" in capsys.readouterr().out


# ------------------------------------------------------------------------- template escapes

def test_template_escapes_become_characters_and_leave_other_text_alone():
    assert _template(r"{instruction}\n\n{response}") == "{instruction}\n\n{response}"
    assert _template(r"Réponse → {a}\t{b}") == "Réponse → {a}\t{b}"
    assert _template(r"C:\path\\{a}") == "C:\\path\\{a}"


def test_template_from_the_command_line_builds_multiline_text(capsys, tmp_path):
    rows = [{"id": f"q{i}", "instruction": f"Question number {i}?",
             "response": f"Answer number {i}."} for i in range(3)]
    real = write_jsonl(tmp_path / "real.jsonl", rows)
    synth = write_jsonl(tmp_path / "synth.jsonl", [dict(rows[0], id="s0",
                                                        response="A different answer.")])
    code, out, _ = run_cli(capsys, "run", "--real", real, "--synthetic", synth,
                           "--text-template", r"{instruction}\n\n{response}",
                           "--stages", "dedup,mix", "--format", "jsonl", "--quiet",
                           "--out", tmp_path / "out")
    assert code == 0, out
    train = pd.read_json(tmp_path / "out" / "train.jsonl", lines=True)
    assert "Question number 1?\n\nAnswer number 1." in train["text"].tolist()
    assert "instruction" in train.columns   # the original columns are carried through


@pytest.mark.parametrize("status", [0, 1])
def test_a_ctrl_c_just_after_the_run_leaves_its_status(monkeypatch, capsys, status):
    """A ^C that lands after main() returned, before the command ignores SIGINT (a window of
    a few bytecodes, which a CI run once hit): the run is over, its status stands, no
    traceback."""
    import signal

    from synthgate import cli

    calls = []

    def set_handler(signum, handler):
        calls.append(handler)
        if len(calls) == 1:
            raise KeyboardInterrupt     # as if the ^C arrived right there
        return real(signum, handler)

    real = signal.signal
    monkeypatch.setattr(cli, "main", lambda: status)
    monkeypatch.setattr(signal, "signal", set_handler)
    try:
        assert cli.console_main() == status
    finally:
        real(signal.SIGINT, signal.default_int_handler)
    assert calls == [signal.SIG_IGN, signal.SIG_IGN]
    assert capsys.readouterr().err == ""
