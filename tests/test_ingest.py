"""Ingest: every input shape the contract names reads to the same records, and input that
cannot be used is refused with a message that names the file, the line or row and the field."""

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from synthgate.config import Config
from synthgate.ingest import InputError, ingest, resolve_paths

RECORDS = [{"id": "a", "text": "The first record, with a comma and \"quotes\"."},
           {"id": "b", "text": "A second record\nspread over two lines."},
           {"id": "c", "text": "Ünïcödé text — with a dash and 東京."}]
REAL = [{"id": "r1", "text": "a real record of several words"}]


def write(path, records, fmt=None):
    """Writes `records` to `path` in the format its name says (compression included)."""
    name = path.name
    fmt = fmt or name.split(".")[1]
    if fmt == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(records), sink)
        raw = sink.getvalue().to_pybytes()
    elif fmt in ("jsonl", "ndjson"):
        raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    elif fmt == "json":
        raw = json.dumps(records, ensure_ascii=False, indent=1).encode()
    else:
        raw = pd.DataFrame(records).to_csv(sep="\t" if fmt == "tsv" else ",",
                                           index=False).encode()
    if name.endswith(".gz"):
        raw = gzip.compress(raw)
    elif name.endswith(".zst"):
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def synthetic_of(tmp_path, spec, config=None, real=None):
    """The synthetic part of the table ingested from `spec`, beside one real record."""
    real_path = write(tmp_path / "real_for_test.jsonl", real or REAL)
    table = ingest(config or Config(), real=[real_path], synthetic=spec).table
    return table[table["source"] == "synthetic"].reset_index(drop=True)


# ------------------------------------------------------------------------- formats

@pytest.mark.parametrize("name", ["s.jsonl", "s.ndjson", "s.json", "s.csv", "s.tsv",
                                  "s.parquet", "s.jsonl.gz", "s.jsonl.zst", "s.csv.gz",
                                  "s.json.zst", "s.parquet.gz"])
def test_every_format_reads_the_same_records(tmp_path, name):
    path = write(tmp_path / name, RECORDS)
    synth = synthetic_of(tmp_path, [path])
    assert synth["id"].tolist() == ["a", "b", "c"]
    assert synth["text"].tolist() == [r["text"] for r in RECORDS]
    assert not synth["reasons"].map(len).any()


def test_a_json_file_may_hold_json_lines(tmp_path):
    path = write(tmp_path / "s.json", RECORDS, fmt="jsonl")
    assert synthetic_of(tmp_path, [path])["id"].tolist() == ["a", "b", "c"]


def test_a_directory_means_every_data_file_in_it_hidden_and_unknown_ones_skipped(tmp_path):
    folder = tmp_path / "shards"
    (folder / "sub").mkdir(parents=True)
    (folder / ".ipynb_checkpoints").mkdir()
    write(folder / "part-1.jsonl", RECORDS[:1])
    write(folder / "sub" / "part-2.csv", RECORDS[1:])
    write(folder / ".ipynb_checkpoints" / "part-1.jsonl", RECORDS[:1])
    (folder / "README.md").write_text("not data")
    assert synthetic_of(tmp_path, [folder])["id"].tolist() == ["a", "b", "c"]


def test_a_glob_is_expanded_and_skips_files_it_cannot_read(tmp_path):
    write(tmp_path / "gen-1.jsonl", RECORDS[:2])
    write(tmp_path / "gen-2.jsonl.gz", RECORDS[2:])
    (tmp_path / "gen-notes.txt").write_text("notes")
    synth = synthetic_of(tmp_path, [str(tmp_path / "gen-*")])
    assert sorted(synth["id"]) == ["a", "b", "c"]


def test_the_same_file_named_twice_is_read_once(tmp_path):
    path = write(tmp_path / "s.jsonl", RECORDS)
    assert len(resolve_paths([path, str(path), str(tmp_path / "*.jsonl")])) == 1


def test_bom_crlf_and_blank_lines_are_harmless(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(
        json.dumps(r).encode() for r in RECORDS) + b"\r\n\r\n  \r\n")
    assert synthetic_of(tmp_path, [path])["text"].tolist() == [r["text"] for r in RECORDS]


def test_a_bom_does_not_rename_the_first_csv_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"\xef\xbb\xbftext,id\r\nhello there friend,x1\r\n")
    assert synthetic_of(tmp_path, [path])["id"].tolist() == ["x1"]


def test_a_utf16_export_is_read(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("text,id\nexported from a spreadsheet,x1\n".encode("utf-16"))
    assert synthetic_of(tmp_path, [path])["text"].tolist() == ["exported from a spreadsheet"]


def test_empty_files_add_no_records(tmp_path):
    for name in ("empty.jsonl", "empty.csv", "empty.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "header_only.csv").write_text("id,text\n")
    (tmp_path / "empty_array.json").write_text("[]")
    write(tmp_path / "s.jsonl", RECORDS[:1])
    synth = synthetic_of(tmp_path, [str(tmp_path / "empty*"), tmp_path / "header_only.csv",
                                    tmp_path / "s.jsonl"])
    assert synth["id"].tolist() == ["a"]


# ------------------------------------------------------------------------- text

def test_text_field_option(tmp_path):
    path = write(tmp_path / "s.jsonl", [{"id": "a", "body": "text held in another field"}])
    synth = synthetic_of(tmp_path, [path], Config(text_field="body"),
                         real=[{"id": "r", "body": "a real record of words"}])
    assert synth["text"].tolist() == ["text held in another field"]


def test_text_template_builds_the_text_from_fields(tmp_path):
    rows = [{"id": "a", "instruction": "Name a colour.", "response": "Blue, like the sea."},
            {"id": "b", "instruction": "Name a number.", "response": "   "},
            {"id": "c", "instruction": "Name a city.", "response": None}]
    path = write(tmp_path / "s.jsonl", rows)
    config = Config(text_template="Q: {instruction}\n\nA: {response}")
    synth = synthetic_of(tmp_path, [path], config, real=[dict(rows[0], id="r")])
    assert synth["text"][0] == "Q: Name a colour.\n\nA: Blue, like the sea."
    # A blank or absent response makes the pair useless for training, not the whole run.
    assert synth["reasons"].tolist() == [[], ["invalid"], ["invalid"]]
    assert "field 'response' is empty" in synth["explanation"][1]
    assert "field 'response' is missing" in synth["explanation"][2]


def test_chat_messages_are_rendered_one_turn_a_paragraph(tmp_path):
    chat = [{"role": "user", "content": "What is a cynic?"},
            {"role": "assistant", "content": "One who sees things as they are."}]
    rows = [{"id": "a", "messages": chat},
            {"id": "b", "messages": [chat[0], {"role": "assistant", "content": " "}]},
            {"id": "c", "messages": [{"role": "user",
                                      "content": [{"type": "text", "text": "Part one."},
                                                  {"type": "text", "text": "Part two."}]}]},
            {"id": "d", "messages": "not a list"}]
    path = write(tmp_path / "s.jsonl", rows)
    synth = synthetic_of(tmp_path, [path], real=[{"id": "r", "messages": chat}])
    assert synth["text"][0] == ("user: What is a cynic?\n\n"
                                "assistant: One who sees things as they are.")
    assert synth["text"][2] == "user: Part one.\nPart two."
    assert synth["reasons"].tolist() == [[], ["invalid"], [], ["invalid"]]
    assert "turn 2 (assistant) is empty" in synth["explanation"][1]


def test_chat_messages_in_parquet_and_as_json_in_csv(tmp_path):
    chat = [{"role": "user", "content": "Define peace."},
            {"role": "assistant", "content": "A period of cheating between two fightings."}]
    expected = "user: Define peace.\n\nassistant: A period of cheating between two fightings."
    pq.write_table(pa.Table.from_pylist([{"id": "p", "messages": chat}]),
                   tmp_path / "s.parquet")
    pd.DataFrame([{"id": "c", "messages": json.dumps(chat)}]).to_csv(tmp_path / "s.csv",
                                                                     index=False)
    synth = synthetic_of(tmp_path, [tmp_path / "s.parquet", tmp_path / "s.csv"])
    assert synth["text"].tolist() == [expected, expected]


@pytest.mark.parametrize("value, problem", [
    ("", "empty or whitespace-only"), (" \n\t ", "empty or whitespace-only"),
    ("two words", "2 words < minimum 3"), (42, "not text (int)"),
    (["a", "list"], "not text (list)"), (None, "field 'text' is missing"),
    ({"nested": "object"}, "not text (dict)")])
def test_unusable_records_stay_and_say_why(tmp_path, value, problem):
    path = write(tmp_path / "s.jsonl", [{"id": "x", "text": value}])
    synth = synthetic_of(tmp_path, [path])
    assert synth["reasons"].tolist() == [["invalid"]]
    assert problem in synth["explanation"][0]


def test_undecodable_bytes_make_the_record_invalid_not_the_run(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"id": "bad", "text": "broken \xff\xfe bytes here"}\n'
                     b'{"id": "good", "text": "a clean record of words"}\n')
    synth = synthetic_of(tmp_path, [path])
    assert synth["reasons"].tolist() == [["invalid"], []]
    assert "undecodable" in synth["explanation"][0]


def test_parquet_nulls_make_the_record_invalid(tmp_path):
    table = pa.table({"id": pa.array([1, None, 3]),
                      "text": pa.array(["a record of words", None, "another record here"])})
    pq.write_table(table, tmp_path / "s.parquet")
    synth = synthetic_of(tmp_path, [tmp_path / "s.parquet"])
    assert synth["reasons"].tolist() == [[], ["invalid"], []]
    # An integer id column with a null must not turn 1 into "1.0".
    assert synth["id"][0] == "1" and synth["id"][2] == "3"
    assert synth["id"][1].startswith("s-")


# ------------------------------------------------------------------------- ids

def test_absent_ids_are_derived_deterministically_whatever_the_order(tmp_path):
    rows = [{"text": "the same text twice"}, {"text": "another text entirely"},
            {"text": "the same text twice"}, {"id": "", "text": "an empty id is absent"}]
    first = synthetic_of(tmp_path, [write(tmp_path / "a.jsonl", rows)])
    again = synthetic_of(tmp_path, [write(tmp_path / "b.jsonl", list(reversed(rows[:3])))])
    ids = first["id"].tolist()
    assert len(set(ids)) == 4
    assert ids[2] == ids[0] + "-2"
    assert first.set_index("text")["id"]["another text entirely"] == \
        again.set_index("text")["id"]["another text entirely"]


def test_id_field_option_and_integer_ids(tmp_path):
    rows = [{"uid": 7, "text": "a record with an integer id"},
            {"uid": 123456789012345678901234567890, "text": "a record with a huge id"},
            {"text": "a record with no id at all"}]
    synth = synthetic_of(tmp_path, [write(tmp_path / "s.jsonl", rows)], Config(id_field="uid"))
    assert synth["id"][:2].tolist() == ["7", "123456789012345678901234567890"]
    assert synth["id"][2].startswith("s-")


def test_huge_numbers_anywhere_do_not_crash(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "x", "text": "a record of words", "n": ' + "9" * 5000 + "}\n")
    ingested = ingest(Config(), real=[write(tmp_path / "r.jsonl", REAL)], synthetic=[path])
    assert ingested.originals["n"].iloc[-1] == "9" * 5000


def test_the_same_id_may_appear_once_per_source(tmp_path):
    real = [{"id": "x", "text": "a real record of words"}]
    synth = synthetic_of(tmp_path, [write(tmp_path / "s.jsonl", [dict(real[0], id="x")])],
                         real=real)
    assert synth["id"].tolist() == ["x"]


# ------------------------------------------------------------------------- sources

def test_mixed_input_takes_the_source_from_a_field(tmp_path):
    rows = [{"id": "1", "origin": "human", "text": "a human record of words"},
            {"id": "1", "origin": "Synthetic", "text": "a generated record of words"},
            {"id": "2", "origin": "generated", "text": "another generated record"}]
    table = ingest(Config(source_field="origin"),
                   mixed=[write(tmp_path / "m.jsonl", rows)]).table
    assert table["source"].tolist() == ["real", "synthetic", "synthetic"]


def test_mixed_input_without_a_source_field_is_refused_before_reading(tmp_path):
    with pytest.raises(InputError, match="--input needs --source-field"):
        ingest(Config(), mixed=[tmp_path / "does-not-exist.jsonl"])


def test_a_bad_source_value_names_the_line_and_field(tmp_path):
    rows = [{"origin": "real", "text": "a human record of words"},
            {"origin": "maybe", "text": "who knows where this came from"}]
    path = write(tmp_path / "m.jsonl", rows)
    with pytest.raises(InputError, match=r"m.jsonl: line 2: field 'origin' is 'maybe'"):
        ingest(Config(source_field="origin"), mixed=[path])


def test_no_real_records_is_refused(tmp_path):
    synth = write(tmp_path / "s.jsonl", RECORDS)
    with pytest.raises(InputError, match="no real records"):
        ingest(Config(), synthetic=[synth])
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="no real records"):
        ingest(Config(), real=[tmp_path / "empty.jsonl"], synthetic=[synth])


def test_dataframes_are_inputs_too():
    table = ingest(Config(), real=pd.DataFrame({"text": ["a real record of words"]}),
                   synthetic=pd.DataFrame({"text": ["a synthetic record of words"],
                                           "generation": [2]})).table
    assert table["source"].tolist() == ["real", "synthetic"]
    assert table["generation"].tolist()[1] == 2


# ------------------------------------------------------------------------- generation

def test_generation_is_read_from_ints_floats_and_strings(tmp_path):
    rows = [{"id": "a", "text": "record one of words", "generation": 1},
            {"id": "b", "text": "record two of words", "generation": "2.0"},
            {"id": "c", "text": "record three of words", "generation": None},
            {"id": "d", "text": "record four of words", "generation": 3.0}]
    synth = synthetic_of(tmp_path, [write(tmp_path / "s.jsonl", rows)])
    assert synth["generation"].tolist()[:2] == [1, 2]
    assert synth["generation"].isna().tolist() == [False, False, True, False]
    assert synth["generation"].tolist()[3] == 3


@pytest.mark.parametrize("value", [-1, 1.5, "first", True])
def test_a_bad_generation_names_the_line(tmp_path, value):
    rows = [{"id": "a", "text": "record one of words", "generation": 1},
            {"id": "b", "text": "record two of words", "generation": value}]
    with pytest.raises(InputError, match=r"s.jsonl: line 2: field 'generation'"):
        synthetic_of(tmp_path, [write(tmp_path / "s.jsonl", rows)])


# ------------------------------------------------------------------------- refusals

def test_a_json_array_of_non_objects_names_the_element(tmp_path):
    (tmp_path / "s.json").write_text('[{"text": "a record of words"}, "just a string"]')
    with pytest.raises(InputError, match=r"s.json: element 2: expected a JSON object, "
                                         r"got a string"):
        synthetic_of(tmp_path, [tmp_path / "s.json"])


def test_a_pretty_printed_object_is_explained(tmp_path):
    (tmp_path / "s.json").write_text('{\n  "text": "a record of words"\n}\n')
    with pytest.raises(InputError, match="one JSON object spread over several lines"):
        synthetic_of(tmp_path, [tmp_path / "s.json"])


def test_an_id_that_is_an_object_is_refused(tmp_path):
    path = write(tmp_path / "s.jsonl", [{"id": {"k": 1}, "text": "a record of words"}])
    with pytest.raises(InputError, match=r"s.jsonl: line 1: field 'id' is an object"):
        synthetic_of(tmp_path, [path])


def test_a_corrupt_compressed_file_is_refused(tmp_path):
    (tmp_path / "s.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match=r"s.jsonl.gz: cannot"):
        synthetic_of(tmp_path, [tmp_path / "s.jsonl.gz"])


def test_a_csv_row_with_a_field_too_many_is_refused_naming_the_line(tmp_path):
    # pandas would read it with shifted columns (the first field becoming the index).
    path = tmp_path / "shifted.csv"
    path.write_text("id,text\n1,one two three four\n2,five six seven,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"shifted\.csv: line 3: 3 fields, the header has 2"):
        ingest(Config(), real=[path])


def test_quoted_csv_fields_keep_their_commas_and_newlines(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('id,text\n1,"one, two\nthree four"\n', encoding="utf-8")
    table = ingest(Config(), real=[path]).table
    assert table["text"].tolist() == ["one, two\nthree four"]
