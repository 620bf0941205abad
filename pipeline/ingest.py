"""Ingest: read real and synthetic records into the records table, refusing bad input clearly.

Two kinds of bad input, two answers (DESIGN.md §1, §3):
- input that makes the whole run meaningless (a missing file, an unknown format, a malformed
  JSON line, a text column or template field absent from a file, a duplicate id within a
  source, no real records at all) raises `InputError` with one message naming the file, the
  line or row and the field; the CLI exits 2 before any output is written;
- a single record that cannot be used (empty, whitespace-only, too short, not text,
  undecodable bytes, a blank template field or chat turn) stays in the table and gets the
  reason `invalid`, so no record is lost.

Files are read whole: the records table is in memory anyway, and reading whole lets a BOM,
CRLF line ends or a UTF-16 export be handled once, before any format-specific parsing. What may
be read and how bytes are checked (regular files only, compressed streams to their verified
end, encodings) is `readers.py`.

A string holding a lone surrogate (JSON's "\\ud800" escape, or a DataFrame given to the API)
cannot be written to any UTF-8 file, so no such string enters the records table: a record with
one in any field, or in a field name, is `invalid` ("field 'x' holds a lone surrogate"), and its
id and text are kept with the surrogate written as the escape `\\ud800` (backslashreplace), so
its decision row can be written and read like any other.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import math
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .config import Config
from . import sources
from .readers import InputError, RemoteFile, parquet_source, path_kind, read_text_file
from .records import REAL, SYNTHETIC, Reason, new_table, reject
from .text import count_words

__all__ = ["InputError", "Ingested", "ingest", "read_file", "resolve_paths", "render_messages",
           "count_words", "mark_invalid", "template_fields"]

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
           ".tsv": "tsv", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".zst")
KNOWN_FORMATS = ".jsonl, .json, .csv, .tsv or .parquet, optionally .gz or .zst"
SOURCE_ALIASES = {"real": REAL, "human": REAL, "synthetic": SYNTHETIC, "synth": SYNTHETIC,
                  "generated": SYNTHETIC}
# JSON integers beyond what Arrow's int64 holds are kept as their decimal text: an id of
# 30 digits is still an id, and a training set must still be writable as Parquet.
INT64_MAX = 2**63 - 1


class BigInt(str):
    """A JSON integer beyond int64, kept as its digits. A str, so it can be an id and be
    written to Parquet, but marked, so a text field holding one is `invalid` ("not text
    (int)") exactly as a field holding 12345 is."""


@dataclass
class Ingested:
    """The records table plus the original columns of every record, row-aligned."""

    table: pd.DataFrame
    originals: pd.DataFrame
    # The `datasets` features (as dicts) of the original columns that declared one, the same
    # in every input: the training set written with --format hf gets them back.
    features: dict[str, dict] = field(default_factory=dict)


# --------------------------------------------------------------------------- paths

def _format_of(path: Path) -> tuple[str | None, str | None]:
    """(format, compression) from the file name, e.g. data.jsonl.zst -> (jsonl, .zst)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = suffixes.pop()
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def _hidden(path: Path, root: Path) -> bool:
    """Dot-files and dot-folders (.ipynb_checkpoints, editor backups) are not data."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _swept_file(path: Path, sweep: str) -> bool:
    """Whether a path a glob or directory walk found under a data file's name is a regular
    file to read (False: a directory, walked by the caller). Anything else (FIFO, device,
    socket, broken link, link loop) is refused naming what it is and what swept it up:
    skipping it would silently drop what may have been meant as data."""
    try:
        return path_kind(path) == "file"
    except InputError as exc:
        raise InputError(f"{exc} (found by {sweep}; remove it or name the files to read)"
                         ) from None


def _data_files_in(directory: Path, split: str | None = None) -> list:
    """Every data file under `directory`, and every `save_to_disk` folder in it as one dataset
    (its state.json and dataset_info.json are not records)."""
    entries = [p for p in directory.rglob("*") if not _hidden(p, directory)]
    dataset_dirs = [p for p in entries if p.is_dir() and sources.is_dataset_dir(p)]
    # A DatasetDict's split folders are datasets too: only the outermost one is read.
    tops = [d for d in dataset_dirs if not any(o in d.parents for o in dataset_dirs)]
    inside: list = [p for p in entries
                    if _format_of(p)[0] and not any(t in p.parents for t in tops)
                    and _swept_file(p, f"the directory {directory}")]
    inside += [sources.disk_source(d, split) for d in tops]
    if not inside:
        raise InputError(f"{directory}: directory holds no {KNOWN_FORMATS} file and no "
                         f"datasets save_to_disk folder")
    return sorted(inside, key=str)


def _local(spec: str, split: str | None) -> list:
    """The data files (and save_to_disk datasets) a local path, directory or glob names."""
    if glob.has_magic(spec):
        matches = [Path(m) for m in sorted(glob.glob(spec, recursive=True))]
        found: list = []
        for path in matches:
            if path.is_dir():
                found.extend([sources.disk_source(path, split)] if sources.is_dataset_dir(path)
                             else _data_files_in(path, split))
            elif _format_of(path)[0] and _swept_file(path, f"the pattern {spec}"):
                found.append(path)
        if not found:
            raise InputError(f"{spec}: no {KNOWN_FORMATS} file matches this pattern")
        return found
    path = Path(spec)
    if path_kind(path) == "directory":   # refuses a FIFO, a device, a link loop...
        if sources.is_dataset_dir(path):
            return [sources.disk_source(path, split)]
        return _data_files_in(path, split)
    if _format_of(path)[0] is None:
        raise InputError(f"{path}: unknown format (expected {KNOWN_FORMATS})")
    return [path]


def _remote(spec: str, split: str | None) -> list:
    """The files an fsspec URL names (a file, a directory walked, or a glob), each a
    RemoteFile read through the same parsers; a save_to_disk folder is one dataset."""
    name = sources.public_name(spec)
    fsspec = sources.need("fsspec", f"{name} (an fsspec URL)")
    try:
        fs, root = fsspec.core.url_to_fs(spec)
    except ImportError as exc:   # fsspec names the backend package, e.g. "Install s3fs"
        raise InputError(f"{name}: this filesystem needs a package that is not installed "
                         f"({exc})") from None
    except Exception as exc:
        raise InputError(f"{name}: not a usable URL ({type(exc).__name__}: {exc})") from None
    head = spec.split("://", 1)[0]

    def raw(path: str) -> str:   # with credentials, if the URL held any: for loading only
        return fs.unstrip_protocol(path) if "::" not in head else f"{head}://{path}"

    rooted = spec.split("://", 1)[1].startswith("/")

    def url(path: str) -> str:   # what messages and the card show: as the user wrote URLs
        shown = path if rooted else path.lstrip("/")
        return sources.public_name(f"{head}://{shown}")

    def is_dataset(path: str) -> bool:
        return fs.isfile(f"{path}/{sources.DATASET_DICT_FILE}") or all(
            fs.isfile(f"{path}/{n}") for n in sources.DATASET_FILES)

    def walk(directory: str) -> list:
        if is_dataset(directory):
            target = spec if directory == root else raw(directory)
            return [sources.disk_source(target, split, label=url(directory))]
        files = sorted(fs.find(directory, withdirs=False))
        rel = {f: f[len(directory):].lstrip("/") for f in files}
        visible = [f for f in files if not any(part.startswith(".")
                                                 for part in rel[f].split("/"))]
        tops = sorted({f.rsplit("/", 1)[0] for f in visible
                       if f.rsplit("/", 1)[-1] in (sources.DATASET_DICT_FILE,
                                                   sources.DATASET_FILES[0])
                       and is_dataset(f.rsplit("/", 1)[0])}, key=len)
        tops = [t for t in tops if not any(t.startswith(o + "/") for o in tops if o != t)]
        found: list = [RemoteFile(url(f), fs, f) for f in visible
                       if _format_of(RemoteFile("", fs, f))[0]
                       and not any(f.startswith(t + "/") for t in tops)]
        found += [sources.disk_source(raw(t), split, label=url(t)) for t in tops]
        if not found:
            raise InputError(f"{url(directory)}: directory holds no {KNOWN_FORMATS} file "
                             f"and no datasets save_to_disk folder")
        return sorted(found, key=str)

    try:
        if glob.has_magic(root):
            found = []
            for path in sorted(fs.glob(root)):
                if fs.isdir(path):
                    found.extend(walk(path))
                elif _format_of(RemoteFile("", fs, path))[0]:
                    found.append(RemoteFile(url(path), fs, path))
            if not found:
                raise InputError(f"{name}: no {KNOWN_FORMATS} file matches this pattern")
            return found
        if fs.isdir(root):
            return walk(root)
        if not fs.exists(root):
            raise InputError(f"{name}: file not found")
    except InputError:
        raise
    except Exception as exc:   # the store's own errors: credentials, network, permissions
        raise InputError(f"{name}: cannot list ({type(exc).__name__}: {exc})") from None
    remote = RemoteFile(url(root), fs, root)
    if _format_of(remote)[0] is None:
        raise InputError(f"{name}: unknown format (expected {KNOWN_FORMATS})")
    return [remote]


def resolve_paths(specs: Iterable[str | Path], split: str | None = None) -> list:
    """Expands every input spec into a de-duplicated list of what to read: local data files
    (Path), files on other filesystems (RemoteFile) and datasets (sources.DatasetSource: a
    save_to_disk folder, `hf:OWNER/NAME[:CONFIG][@SPLIT]`). `split` chooses a DatasetDict's
    split where the spec does not.

    A file named explicitly must have a known format; files a directory or a glob sweeps up
    are taken when their format is known and skipped otherwise (a README beside the data).
    """
    files: list = []
    for spec in specs:
        spec = str(spec)
        if sources.is_hf_spec(spec):
            files.append(sources.hub_source(spec, split))
        elif (local := sources.local_path_of_url(spec)) is not None:
            files.extend(_local(str(local), split))
        elif sources.is_url(spec):
            files.extend(_remote(spec, split))
        else:
            files.extend(_local(spec, split))
    seen, unique = set(), []
    for f in files:
        key = f.resolve() if isinstance(f, Path) else str(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


# --------------------------------------------------------------------------- readers

def _decode(raw: bytes) -> tuple[str, bool]:
    """Decodes UTF-8; undecodable bytes become U+FFFD and the flag says so."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _parse_int(digits: str) -> int | BigInt:
    """A JSON integer as int, or as its digits when Arrow's int64 cannot hold it."""
    if len(digits.lstrip("-")) <= 18:
        return int(digits)
    if len(digits) >= 4300:   # Python refuses to parse longer ints (a DoS guard)
        return BigInt(digits)
    value = int(digits)
    return value if abs(value) <= INT64_MAX else BigInt(digits)


def _json(text: str):
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:   # [[[[... thousands deep: malformed for our purpose
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


# A JSON escape that may stand for a surrogate code point; only records whose raw bytes hold
# one are searched for lone surrogates (a cheap filter before a per-value check).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _malformed(path: Path, where: str, exc: json.JSONDecodeError) -> InputError:
    return InputError(f"{path}: {where}: malformed JSON ({exc.msg} at column {exc.colno})")


def _read_json_lines(path: Path, data: bytes) -> tuple[list[dict], list[int], list[bool]]:
    records, lines, undecodable = [], [], []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():   # blank lines (and a trailing newline) separate nothing
            continue
        text, bad = _decode(raw)
        try:
            obj = _json(text)
        except json.JSONDecodeError as exc:
            raise _malformed(path, f"line {lineno}", exc) from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object, got "
                             f"{_json_kind(obj)}")
        records.append(obj)
        lines.append(lineno)
        undecodable.append(bad)
    return records, lines, undecodable


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false",
            type(None): "null"}.get(type(value), "a number")


def _read_json(path: Path, data: bytes) -> tuple[list[dict], list[int], list[bool], str]:
    """A .json file is either one array of objects or JSON lines; the last item says which
    word ("element" or "line") locates a record."""
    if data.lstrip()[:1] != b"[":
        try:
            return (*_read_json_lines(path, data), "line")
        except InputError:
            # A pretty-printed single object fails line by line; say what it is instead.
            try:
                whole = _json(_decode(data)[0])
            except json.JSONDecodeError:
                whole = None
            if isinstance(whole, dict):
                raise InputError(f"{path}: line 1: one JSON object spread over several "
                                 f"lines; expected an array of objects or one object per "
                                 f"line (JSON lines)") from None
            raise
    text, bad = _decode(data)
    try:
        array = _json(text)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"line {exc.lineno}", exc) from None
    for i, obj in enumerate(array, 1):
        if not isinstance(obj, dict):
            raise InputError(f"{path}: element {i}: expected a JSON object, got "
                             f"{_json_kind(obj)}")
    # Line numbers are unknown inside one array: the element index (1-based) locates.
    return array, list(range(1, len(array) + 1)), [bad] * len(array), "element"


def _read_delimited(path: Path, data: bytes, sep: str) -> tuple[pd.DataFrame, np.ndarray]:
    text, bad = _decode(data)
    kind = "TSV" if sep == "\t" else "CSV"
    # Parsed with the csv module, not pandas: pandas silently turns a row with one field too
    # many into an index column and shifts every value; here it is an error naming the line.
    # Every cell stays text, an empty cell "" (not NaN): what was written is what is read.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader, None)
        if header is None:
            return pd.DataFrame(), np.zeros(0, dtype=bool)
        rows = []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise InputError(f"{path}: line {reader.line_num}: {len(row)} fields, the "
                                 f"header has {len(header)} ({', '.join(header)})")
            rows.append(row)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: malformed {kind} ({exc})") from None
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise InputError(f"{path}: line 1: column '{dup}' appears twice in the header")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    flags = np.zeros(len(frame), dtype=bool)
    if bad and len(frame):  # mark the rows that hold a replacement character
        flags = frame.apply(lambda col: col.str.contains("\ufffd", regex=False, na=False)
                            ).any(axis=1).to_numpy()
    return frame, flags


def _read_parquet(path: Path, compression: str | None) -> pd.DataFrame:
    with parquet_source(path, compression) as source:
        try:
            import pyarrow.parquet as pq
            # Integer columns with nulls stay integers (not floats): an id 7 must not read "7.0".
            table = pq.read_table(source)
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        frame = table.to_pandas(integer_object_nulls=True)
        # A Parquet file written by `datasets` carries its features (ClassLabel names...):
        # kept, so --format hf and the dataset card give them back.
        frame.attrs["features"] = sources.schema_features(table.schema) or {}
        return frame


def read_file(path: Path) -> tuple[pd.DataFrame, list[str], np.ndarray, list[str]]:
    """Reads one file into (records, locator per record, undecodable flags, lone-surrogate
    notes: "" or which field holds one).

    The locator is what an error message names: "line N" for JSON lines, "element N" in a
    JSON array, "row N" for tables (the N-th data row, header not counted). Only JSON can hold
    a lone surrogate: CSV text is decoded from UTF-8 here and Arrow validates Parquet strings.
    """
    if isinstance(path, sources.DatasetSource):
        # Arrow strings are UTF-8 (validated when read): nothing undecodable, no surrogate.
        frame = path.read()
        return frame, [f"row {i}" for i in range(1, len(frame) + 1)], \
            np.zeros(len(frame), dtype=bool), [""] * len(frame)
    fmt, compression = _format_of(path)
    if fmt == "parquet":
        frame = _read_parquet(path, compression).reset_index(drop=True)
        return frame, [f"row {i}" for i in range(1, len(frame) + 1)], \
            np.zeros(len(frame), dtype=bool), [""] * len(frame)
    data = read_text_file(path, compression)
    if fmt in ("csv", "tsv"):
        frame, flags = _read_delimited(path, data, "," if fmt == "csv" else "\t")
        return frame, [f"row {i}" for i in range(1, len(frame) + 1)], flags, [""] * len(frame)
    if fmt == "jsonl":
        fast = _arrow_json_lines(data)
        if fast is not None:
            return fast, [f"line {n}" for n in range(1, len(fast) + 1)], \
                np.zeros(len(fast), dtype=bool), [""] * len(fast)
        records, numbers, undecodable = _read_json_lines(path, data)
        kind = "line"
    else:
        records, numbers, undecodable, kind = _read_json(path, data)
    surrogates = [""] * len(records)
    if _SURROGATE_ESCAPE.search(data):
        surrogates = surrogate_notes(records)
        # Field names become columns, which must be encodable even where the value is null
        # (such a record is not invalid: its field holds nothing).
        records = [{escape_surrogates(k): v for k, v in r.items()} for r in records]
    # dtype=object keeps each value as written: ints stay ints beside missing values.
    frame = pd.DataFrame(records, dtype=object) if records else pd.DataFrame()
    return frame, [f"{kind} {n}" for n in numbers], np.asarray(undecodable, dtype=bool), \
        surrogates


# A JSON number of 19+ digits may not fit an int64; Arrow would read it as a float, silently.
_LONG_NUMBER = re.compile(rb"[:\[,]\s*-?\d{19,}")


def _arrow_json_lines(data: bytes) -> pd.DataFrame | None:
    """JSON lines parsed by Arrow's reader (several times faster than a json.loads a line)
    when the file is plainly well-formed: one object a line, no blank line (so record k is
    line k), no lone surrogate, flat fields of one JSON type each. Anything else returns
    None and goes the line-by-line way, which says exactly which line and field is wrong,
    keeps ints beyond int64, and marks undecodable bytes record by record."""
    if not data or b"\n\n" in data or _SURROGATE_ESCAPE.search(data) \
            or not data.lstrip()[:1] == b"{":
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    import pyarrow as pa
    import pyarrow.json as pajson
    flat = (pa.types.is_string, pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean,
            pa.types.is_null)
    # Anything unexpected (malformed JSON, mixed types, invalid UTF-8 in a value or a field
    # name, which Arrow's reader does not check itself): the careful reader says what.
    try:
        table = pajson.read_json(io.BytesIO(data),
                                 read_options=pajson.ReadOptions(block_size=1 << 24))
        names = [field.name for field in table.schema]
        if table.num_rows != lines or len(set(names)) != len(names):
            return None
        if not all(any(is_(field.type) for is_ in flat) for field in table.schema):
            return None     # nested values: their Python form is the line-by-line reader's
        if any(pa.types.is_float64(f.type) for f in table.schema) \
                and _LONG_NUMBER.search(data):
            return None     # a float column may hold an int too long for int64
        for column in table.columns:
            if pa.types.is_string(column.type):
                column.validate(full=True)
        # Ints stay ints beside missing values (an id 7 must not read "7.0"). Text columns
        # stay Arrow strings: a million texts as Python objects are gigabytes.
        return table.to_pandas(integer_object_nulls=True)
    except Exception:
        return None


# --------------------------------------------------------------------------- lone surrogates

def escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written as its escape (U+D800 -> the 6 characters
    \\ud800); text without one is returned as is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, np.ndarray):
        return value.dtype == object and any(_has_surrogate(v) for v in value.tolist())
    if isinstance(value, (list, tuple)):
        return any(_has_surrogate(v) for v in value)
    return False


def surrogate_notes(records: Iterable[dict]) -> list[str]:
    """Per record, "" or why it is `invalid`: the first field whose name or value (at any
    depth) holds a lone surrogate, which no UTF-8 file (Parquet, JSON lines, the report)
    can hold."""
    notes = []
    for record in records:
        note = ""
        for key, value in record.items():
            if _missing(value):
                continue
            if _has_surrogate(key) or _has_surrogate(value):
                note = (f"field '{escape_surrogates(str(key))}' holds a lone surrogate (half "
                        f"of a UTF-16 pair, e.g. \\ud800), which UTF-8 cannot encode")
                break
        notes.append(note)
    return notes


def frame_surrogate_notes(frame: pd.DataFrame) -> list[str]:
    """surrogate_notes for a DataFrame given to the API, column by column: only columns of
    Python objects can hold a lone surrogate (numbers cannot; pandas' own string dtypes
    refuse one)."""
    notes = [""] * len(frame)
    for col in frame.columns:
        bad_name = _has_surrogate(col)
        if frame[col].dtype != object and not bad_name:
            continue
        for i, value in enumerate(frame[col].tolist()):
            if not notes[i] and not _missing(value) and (bad_name or _has_surrogate(value)):
                notes[i] = surrogate_notes([{col: value}])[0]
    return notes


# --------------------------------------------------------------------------- text

def template_fields(template: str) -> list[str]:
    """The field names a --text-template refers to, e.g. ['instruction', 'response']."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:   # a lone "{" or "}"
        raise InputError(f"--text-template: {exc} (write {{{{ and }}}} for literal braces)"
                         ) from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise InputError(f"--text-template: '{{{name}}}' is not a plain field name")
        names.append(name)
    return names


def _render_template(template: str, row: dict) -> str:
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(row[name]))
    return "".join(out)


def _content_text(content: object) -> str | None:
    """A chat turn's content: a string, or a list of parts of which the text ones count
    (`{"type": "text", "text": ...}` or a bare string; image, audio... parts carry no text
    and are left out). None when no part is text."""
    if isinstance(content, BigInt):
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, np.ndarray):
        content = content.tolist()
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in content]
        parts = [p for p in parts if isinstance(p, str) and not isinstance(p, BigInt)]
        if parts:
            return "\n".join(parts)
    return None


def render_messages(messages: object) -> tuple[str | None, str]:
    """A chat record's `messages` list of {role, content} as text, one turn a paragraph.

    Returns (text, problem): text is None when the list cannot be rendered, and problem
    says why; a blank turn leaves the text but names the problem (the record is `invalid`).
    """
    if isinstance(messages, str) and messages.lstrip().startswith("["):
        try:   # a CSV cell or string column holding the list as JSON
            messages = json.loads(messages)
        except json.JSONDecodeError:
            return None, "field 'messages' is not valid JSON"
    if isinstance(messages, np.ndarray):
        messages = messages.tolist()
    if not isinstance(messages, list) or not messages:
        return None, "field 'messages' is not a list of {role, content}"
    turns, problem = [], ""
    for k, m in enumerate(messages, 1):
        content = _content_text(m.get("content")) if isinstance(m, dict) else None
        if content is None:
            return None, f"field 'messages': turn {k} has no text content"
        role = m.get("role")
        if isinstance(role, str) and not isinstance(role, BigInt):
            role = role or "unknown"
        elif _missing(role):
            role = "unknown"
        else:
            return None, (f"field 'messages': turn {k} has a role that is not text "
                          f"({_json_kind(role)})")
        if not content.strip() and not problem:
            problem = f"field 'messages': turn {k} ({role}) is empty"
        turns.append(f"{role}: {content}")
    return "\n\n".join(turns), problem


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _text_value(value: object, field: str) -> tuple[str | None, str]:
    """(text, problem) for one field value: text only when it is a usable string."""
    if _missing(value):
        return None, f"field '{field}' is missing"
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), ""
        except UnicodeDecodeError:
            return None, f"field '{field}' holds undecodable bytes (not UTF-8)"
    if isinstance(value, BigInt):   # digits kept only so Arrow can hold them
        return None, f"field '{field}' is not text (int)"
    if isinstance(value, str):
        return value, ""
    return None, f"field '{field}' is not text ({type(value).__name__})"


def _fields_list(frame: pd.DataFrame) -> str:
    return ", ".join(map(str, frame.columns)) or "none"


def is_string_column(column: pd.Series) -> bool:
    """A column of Arrow strings (pandas' string dtypes): text or missing, nothing else."""
    dtype = column.dtype
    return (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or \
        (isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype) in ("string",
                                                                          "large_string"))


def _texts_of(frame: pd.DataFrame, path: Path, header: str, config: Config
              ) -> tuple[list[object] | pd.Series, list[str]]:
    """The text of every record and, where it cannot be had, why (for `invalid`): a list,
    or the frame's own column when it is Arrow strings already.

    `header` locates a missing column: "line 1 (header)" for tables, the first record's
    line for JSON.
    """
    n = len(frame)
    columns = set(frame.columns)
    texts: list[object] = [None] * n
    problems = [""] * n
    if config.text_template:
        fields = template_fields(config.text_template)
        for name in fields:
            if name not in columns:
                raise InputError(f"{path}: {header}: --text-template names field '{name}', "
                                 f"which this file does not have (fields: "
                                 f"{_fields_list(frame)})")
        for i, row in enumerate(frame[fields].to_dict("records") if fields else [{}] * n):
            for name in fields:
                value, problem = _text_value(row[name], name)
                if not problem and not value.strip():
                    problem = f"field '{name}' is empty"
                if problem:   # the first problem says it; the text is not worth building
                    problems[i] = problem
                    break
                row[name] = value
            else:
                texts[i] = _render_template(config.text_template, row)
        return texts, problems
    field = config.text_field
    if field in columns:
        column = frame[field]
        if is_string_column(column):
            # Arrow strings hold text or nothing (valid UTF-8, no lone surrogate): the
            # column is the texts as it is, never a Python string per record.
            missing = column.isna().to_numpy()
            return column.reset_index(drop=True), \
                [f"field '{field}' is missing" if m else "" for m in missing]
        for i, value in enumerate(column.tolist()):
            texts[i], problems[i] = _text_value(value, field)
        return texts, problems
    if "messages" in columns:
        for i, value in enumerate(frame["messages"].tolist()):
            texts[i], problems[i] = render_messages(value)
        return texts, problems
    raise InputError(f"{path}: {header}: no text field '{field}' (fields: "
                     f"{_fields_list(frame)}); use --text-field, --text-template or a "
                     f"'messages' list")


def _derive_id(source: str, record: dict, config: Config) -> str:
    """A deterministic id from the record's content, never its position, so it survives any
    reordering of the inputs (DESIGN.md: same records, same decisions).

    A record holding only its text is hashed by the text (ids stay those of earlier
    versions); any other record by all its present fields, so two records with the same text
    but different other fields get different ids.
    """
    present = {str(k): v for k, v in record.items() if not _missing(v)}
    text = present.get(config.text_field)
    if isinstance(text, str) and len(present) == 1:
        basis = text
    else:
        try:
            basis = json.dumps(present, sort_keys=True, ensure_ascii=True,
                               default=_json_default)
        except (TypeError, ValueError):   # a nested mapping with keys of mixed types
            basis = repr(sorted((k, repr(v)) for k, v in present.items()))
    digest = hashlib.blake2b(basis.encode("utf-8", "surrogatepass"),
                             digest_size=8).hexdigest()
    return f"{source[0]}-{digest}"


def _json_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _id_text(value: object, where: str, field: str) -> str | None:
    """A record's id as text; None when absent (then it is derived)."""
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))   # a float column of whole numbers: 7.0 is id "7"
    if isinstance(value, (str, int, float, np.integer, np.floating)) \
            and not isinstance(value, bool):
        text = str(value)
        return text if text.strip() else None
    raise InputError(f"{where}: field '{field}' is {_json_kind(value)}; an id must be a "
                     f"string or a number")


# --------------------------------------------------------------------------- table

def _source_of(value: object, path: Path, locator: str, field: str) -> str:
    key = str(value).strip().lower() if not _missing(value) else ""
    if key not in SOURCE_ALIASES:
        raise InputError(f"{path}: {locator}: field '{field}' is {value!r}; expected 'real' or "
                         f"'synthetic'")
    return SOURCE_ALIASES[key]


def _generation_value(value: object) -> int | None:
    """A non-negative whole number, from an int, a float or a string ("2", "2.0")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not number.is_integer() or number < 0 or number > INT64_MAX:
        return None
    return int(value) if isinstance(value, (int, np.integer)) else int(number)


def _generation_of(frame: pd.DataFrame, path: Path, locators: list[str]) -> list[object]:
    if "generation" not in frame.columns:
        return [pd.NA] * len(frame)
    out = []
    for loc, v in zip(locators, frame["generation"].tolist()):
        if _missing(v) or (isinstance(v, str) and not v.strip()):
            out.append(pd.NA)
            continue
        g = _generation_value(v)
        if g is None:
            raise InputError(f"{path}: {loc}: field 'generation' is {v!r}; expected a "
                             f"non-negative integer (0 = human, k = k-th self-training round)")
        out.append(g)
    return out


def _read_inputs(real, synthetic, mixed, split: str | None = None
                 ) -> list[tuple[str | None, pd.DataFrame, object, list[str], np.ndarray,
                                 list[str], str]]:
    """Every input part: (source or None for mixed, frame, what it was read from, locators,
    undecodable, lone-surrogate notes, header locator). Each of real, synthetic and mixed
    is a spec or a list of specs: paths, globs, URLs, `hf:` names, or objects (a pandas or
    polars DataFrame, a pyarrow Table, a `datasets` Dataset)."""
    parts = []
    for source, spec in ((REAL, real), (SYNTHETIC, synthetic), (None, mixed)):
        if spec is None:
            continue
        items = spec if isinstance(spec, (list, tuple)) else [spec]
        role = source or "input"
        pending: list = []
        for k, item in enumerate(items):
            if isinstance(item, (str, Path)):
                pending.extend(resolve_paths([item], split))
                continue
            suffix = f" {k + 1}" if len(items) > 1 else ""
            if isinstance(item, pd.DataFrame):
                frame = item.reset_index(drop=True)
                parts.append((source, frame, Path(f"<{role} DataFrame{suffix}>"),
                              [f"row {i}" for i in range(1, len(frame) + 1)],
                              np.zeros(len(frame), dtype=bool),
                              frame_surrogate_notes(frame), "columns"))
            elif sources.is_table_object(item):
                pending.append(sources.DatasetSource(
                    f"<{role} {type(item).__name__}{suffix}>", "object", item, split=split))
            else:
                raise InputError(f"{role}: a {type(item).__name__} is not an input (give "
                                 f"paths, URLs, hf: names, a pandas or polars DataFrame, a "
                                 f"pyarrow Table or a datasets Dataset)")
        for path in pending:
            frame, locators, undecodable, surrogates = read_file(path)
            parts.append((source, frame, path, locators, undecodable, surrogates,
                          _header_locator(path, locators)))
    return parts


def _header_locator(path: Path, locators: list[str]) -> str:
    """Where a missing column is named: a CSV's header line, a Parquet file's schema, or the
    first JSON record (JSON has no header; the first record shows what the fields are)."""
    if isinstance(path, sources.DatasetSource):
        return "columns"
    fmt = _format_of(path)[0]
    if fmt in ("csv", "tsv"):
        return "line 1 (header)"
    if fmt == "parquet":
        return "columns"
    return locators[0] if locators else "line 1"


def ingest(config: Config, real=None, synthetic=None, mixed=None,
           require_real: bool = True) -> Ingested:
    """Reads every input into one records table.

    `real`, `synthetic` and `mixed` are each a spec or a list of them (paths, globs, URLs,
    `hf:` names, DataFrames, pyarrow Tables, `datasets` Datasets; see sources.py). Mixed inputs
    take the source from `config.source_field`. `require_real=False` reads a part of the
    inputs (engines/ray reads each file in its own task) without asking it to hold real
    records: the run as a whole is checked for those.
    """
    if mixed is not None and not config.source_field:
        raise InputError("--input needs --source-field naming the field that says real or "
                         "synthetic")
    parts = _read_inputs(real, synthetic, mixed, config.split)

    ids, row_source_log, problems, generations = [], [], [], []
    text_parts: list = []   # per input part: a list of texts, or an Arrow string column
    features: dict[str, object] = {}
    originals = []
    seen_ids: dict[tuple[str, str], str] = {}
    derived_counts: Counter = Counter()
    for source, frame, path, locators, undecodable, surrogates, header in parts:
        if len(frame) == 0:   # an empty file or one holding only a header: nothing to add
            continue
        if source is None:
            if config.source_field not in frame.columns:
                raise InputError(f"{path}: {header}: no source field "
                                 f"'{config.source_field}' (fields: {_fields_list(frame)})")
            row_sources = [_source_of(v, path, loc, config.source_field)
                           for v, loc in zip(frame[config.source_field].tolist(), locators)]
        else:
            row_sources = [source] * len(frame)
        row_texts, row_problems = _texts_of(frame, path, header, config)
        row_gen = _generation_of(frame, path, locators)
        has_ids = config.id_field in frame.columns
        id_values = frame[config.id_field].tolist() if has_ids else [None] * len(frame)
        rows = None   # each record as a dict, built only when an id must be derived
        for i, loc in enumerate(locators):
            src = row_sources[i]
            where = f"{path}: {loc}"
            rid = _id_text(id_values[i], where, config.id_field)
            if rid is None:
                if rows is None:
                    rows = frame.to_dict("records")
                base = _derive_id(src, rows[i], config)
                # Only records equal in every field share a base, and those are
                # interchangeable: which one gets "-2" changes nothing in the outputs.
                derived_counts[base] += 1
                rid = base if derived_counts[base] == 1 else f"{base}-{derived_counts[base]}"
            if surrogates[i]:   # the decision row must be writable: escaped, not dropped
                rid = escape_surrogates(rid)   # (an Arrow string column holds none)
                row_texts[i] = escape_surrogates(row_texts[i]) \
                    if isinstance(row_texts[i], str) else row_texts[i]
                row_problems[i] = row_problems[i] or surrogates[i]
            if (src, rid) in seen_ids:
                raise InputError(f"{where}: field '{config.id_field}': duplicate {src} id "
                                 f"{rid!r} (first seen at {seen_ids[(src, rid)]})")
            seen_ids[(src, rid)] = where
            ids.append(rid)
            row_source_log.append(src)
            if undecodable[i]:
                row_problems[i] = row_problems[i] or "undecodable bytes (not UTF-8)"
            problems.append(row_problems[i])
            generations.append(row_gen[i])
        text_parts.append(row_texts)
        originals.append(frame)
        _merge_features(features, frame)

    if REAL not in row_source_log and require_real:
        if mixed is not None:
            missing = f"no record of the mixed input has {config.source_field} = real"
        elif real is None:
            missing = "no real records: give --real"
        else:
            missing = "no real records: the real input holds none (empty files?)"
        raise InputError(f"{missing}; the real records are the yardstick every threshold "
                         f"is learned from")
    table = new_table(ids, row_source_log, _joined_texts(text_parts), generations)
    originals_frame = (pd.concat(originals, ignore_index=True, sort=False)
                       if originals else pd.DataFrame(index=range(0)))
    mark_invalid(table, problems, config)
    return Ingested(table=table, originals=originals_frame,
                    features={k: v for k, v in features.items() if v is not None})


def _joined_texts(parts: list) -> list | pd.Series:
    """The texts of every part in order: one Arrow string column when every part is one
    (their buffers joined, not copied into Python strings), else a list."""
    if parts and all(isinstance(p, pd.Series) for p in parts):
        joined = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if is_string_column(joined):
            return joined.reset_index(drop=True)
    return [t for part in parts for t in (part.tolist() if isinstance(part, pd.Series)
                                          else part)]


def _merge_features(into: dict[str, object], frame: pd.DataFrame) -> None:
    """A column keeps its `datasets` feature only when every input part holding the column
    declares the same one (None marks a column whose parts disagree or declare none)."""
    declared = frame.attrs.get("features") or {}
    for col in frame.columns:
        feature = declared.get(col)
        if col not in into:
            into[col] = feature
        elif into[col] != feature:
            into[col] = None


def mark_invalid(table: pd.DataFrame, problems: list[str], config: Config) -> None:
    """Gives `invalid` to records with no usable text, saying why for each."""
    min_words, min_chars = config.ingest.min_words, config.ingest.min_chars
    notes = list(problems)
    column = table["text"]
    need = max(min_words, min_chars, 1)
    if is_string_column(column):
        # Whitespace tokens counted in Arrow: a record with `need` of them passes both
        # minimums (see below); only the others are looked at one by one. They are counted in
        # each text's first characters only (a token cut there still is one token of the
        # text): counting whole texts took 60% of ingest.
        import pyarrow as pa
        import pyarrow.compute as pc
        arrow = pa.chunked_array(column.array._pa_array) if hasattr(column.array, "_pa_array") \
            else pa.array(column, type=pa.large_string())
        head = pc.utf8_slice_codeunits(arrow, 0, 32 * need)
        tokens = pc.count_substring_regex(head, r"\S+").to_numpy(zero_copy_only=False)
        looked_at = np.flatnonzero(~(np.nan_to_num(tokens.astype(float), nan=0) >= need))
        text_at = column.iat
    else:
        looked_at = np.arange(len(column))
        text_at = column.tolist()
    for i in looked_at.tolist():
        text = text_at[i]
        if notes[i]:
            continue
        if not isinstance(text, str) or not text.strip():
            notes[i] = "empty or whitespace-only text"
            continue
        # Long texts pass both minimums without being counted exactly: every whitespace
        # token holds at least one character and one word, so `need` tokens are enough, and
        # splitting off that many (not the whole text) finds them.
        need = max(min_words, min_chars, 1)
        if len(text.split(None, need)) >= need:
            continue
        tokens = text.split()
        stripped = "".join(tokens)
        if len(stripped) < min_chars:
            notes[i] = f"{len(stripped)} non-space characters < minimum {min_chars}"
            continue
        words = count_words(text)
        if words < min_words:
            notes[i] = f"{words} words < minimum {min_words}"
    mask = np.array([bool(n) for n in notes], dtype=bool)
    reject(table, mask, Reason.INVALID, [f"invalid: {n}" for n, m in zip(notes, mask) if m])
    # Invalid texts that are not strings become None so every later stage sees str or None
    # (an Arrow string column holds nothing else already).
    if not is_string_column(table["text"]):
        table["text"] = pd.Series([t if isinstance(t, str) else None
                                   for t in table["text"].tolist()], dtype=object)
