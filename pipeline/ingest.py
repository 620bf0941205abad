"""Ingest: read real and synthetic records into the records table, refusing bad input clearly.

Two kinds of bad input, two answers (DESIGN.md §1, §3):
- input that makes the whole run meaningless (a missing file, an unknown format, a malformed
  JSON line, a text column or template field absent from a file, a duplicate id within a
  source) raises `InputError` with one message naming the file, the line or row and the field;
  the CLI exits 2 before any output is written;
- a single record that cannot be used (empty, whitespace-only, too short, not text,
  undecodable bytes) stays in the table and gets the reason `invalid`, so no record is lost.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .config import Config
from .records import REAL, SYNTHETIC, Reason, new_table, reject

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
           ".tsv": "tsv", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".zst")
SOURCE_ALIASES = {"real": REAL, "human": REAL, "synthetic": SYNTHETIC, "synth": SYNTHETIC,
                  "generated": SYNTHETIC}


class InputError(ValueError):
    """Input that cannot be used at all; the message names file, line/row and field."""


@dataclass
class Ingested:
    """The records table plus the original columns of every record, row-aligned."""

    table: pd.DataFrame
    originals: pd.DataFrame


# --------------------------------------------------------------------------- paths

def _format_of(path: Path) -> tuple[str | None, str | None]:
    """(format, compression) from the file name, e.g. data.jsonl.zst -> (jsonl, .zst)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = suffixes.pop()
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def resolve_paths(specs: Iterable[str | Path]) -> list[Path]:
    """Expands globs and directories into a sorted, de-duplicated list of data files."""
    files: list[Path] = []
    for spec in specs:
        spec = str(spec)
        if glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise InputError(f"{spec}: no file matches this pattern")
            candidates = [Path(m) for m in matches]
        else:
            candidates = [Path(spec)]
        for path in candidates:
            if path.is_dir():
                inside = sorted(p for p in path.rglob("*")
                                if p.is_file() and _format_of(p)[0] is not None)
                if not inside:
                    raise InputError(f"{path}: directory holds no .jsonl, .json, .csv, .tsv "
                                     f"or .parquet file")
                files.extend(inside)
            elif path.is_file():
                if _format_of(path)[0] is None:
                    raise InputError(f"{path}: unknown format (expected .jsonl, .json, .csv, "
                                     f".tsv or .parquet, optionally .gz or .zst)")
                files.append(path)
            else:
                raise InputError(f"{path}: file not found")
    seen, unique = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


# --------------------------------------------------------------------------- readers

def _read_bytes(path: Path, compression: str | None) -> bytes:
    try:
        if compression == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if compression == ".zst":
            import zstandard
            with open(path, "rb") as fh:
                return zstandard.ZstdDecompressor().stream_reader(fh).read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError and other codec errors
        raise InputError(f"{path}: cannot decompress ({exc})") from None


def _decode(raw: bytes) -> tuple[str, bool]:
    """Decodes UTF-8; undecodable bytes become U+FFFD and the flag says so."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _read_json_lines(path: Path, data: bytes) -> tuple[list[dict], list[int], list[bool]]:
    records, lines, undecodable = [], [], []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        text, bad = _decode(raw)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {lineno}: malformed JSON ({exc.msg} at column "
                             f"{exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object, got "
                             f"{type(obj).__name__}")
        records.append(obj)
        lines.append(lineno)
        undecodable.append(bad)
    return records, lines, undecodable


def _read_json(path: Path, data: bytes) -> tuple[list[dict], list[int], list[bool]]:
    """A .json file is either one array of objects or JSON lines."""
    head = data.lstrip()[:1]
    if head != b"[":
        return _read_json_lines(path, data)
    text, bad = _decode(data)
    try:
        array = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: malformed JSON ({exc.msg} at column "
                         f"{exc.colno})") from None
    for i, obj in enumerate(array):
        if not isinstance(obj, dict):
            raise InputError(f"{path}: element {i}: expected a JSON object, got "
                             f"{type(obj).__name__}")
    # Line numbers are unknown inside one array: report the element index (1-based).
    return array, list(range(1, len(array) + 1)), [bad] * len(array)


def _read_delimited(path: Path, data: bytes, sep: str) -> pd.DataFrame:
    text, bad = _decode(data)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_values=[])
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: line 1: empty file, no header row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        kind = "TSV" if sep == "\t" else "CSV"
        raise InputError(f"{path}: malformed {kind} ({str(exc).strip()})") from None
    frame.attrs["undecodable"] = bad
    return frame


def read_file(path: Path) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """Reads one file into (records, locator per record, undecodable flags).

    The locator is what an error message names: "line N" for JSON lines, "row N" for tables.
    """
    fmt, compression = _format_of(path)
    if fmt == "parquet":
        if compression:
            data = _read_bytes(path, compression)
            source = io.BytesIO(data)
        else:
            source = path
        try:
            import pyarrow.parquet as pq
            frame = pq.read_table(source).to_pandas()
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        locators = [f"row {i}" for i in range(1, len(frame) + 1)]
        return frame.reset_index(drop=True), locators, np.zeros(len(frame), dtype=bool)
    data = _read_bytes(path, compression)
    if fmt in ("csv", "tsv"):
        frame = _read_delimited(path, data, "," if fmt == "csv" else "\t")
        bad = frame.attrs.pop("undecodable")
        flags = np.zeros(len(frame), dtype=bool)
        if bad:  # mark the rows that hold a replacement character
            flags = frame.apply(lambda col: col.str.contains("\ufffd", regex=False)).any(axis=1).to_numpy()
        # Row N is the N-th data row; the header is line 1, so row N sits on line N+1.
        return frame, [f"row {i}" for i in range(1, len(frame) + 1)], flags
    reader = _read_json_lines if fmt == "jsonl" else _read_json
    records, lines, undecodable = reader(path, data)
    kind = "line" if (fmt == "jsonl" or data.lstrip()[:1] != b"[") else "element"
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return frame, [f"{kind} {n}" for n in lines], np.asarray(undecodable, dtype=bool)


# --------------------------------------------------------------------------- text

def template_fields(template: str) -> list[str]:
    """The field names a --text-template refers to, e.g. ['instruction', 'response']."""
    names = []
    for _, name, spec, conv in string.Formatter().parse(template):
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


def render_messages(messages: object) -> str | None:
    """A chat record's `messages` list of {role, content} as text, one turn a paragraph."""
    if isinstance(messages, np.ndarray):
        messages = messages.tolist()
    if not isinstance(messages, list):
        return None
    turns = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None
        turns.append(f"{m.get('role', 'unknown')}: {m['content']}")
    return "\n\n".join(turns)


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _texts_of(frame: pd.DataFrame, path: Path, locators: list[str], config: Config
              ) -> tuple[list[object], list[str]]:
    """The text of every record and, where it cannot be had, why (for `invalid`)."""
    n = len(frame)
    columns = set(frame.columns)
    first = locators[0] if locators else "line 1"
    texts: list[object] = [None] * n
    problems = [""] * n
    if config.text_template:
        for name in template_fields(config.text_template):
            if name not in columns:
                raise InputError(f"{path}: {first}: --text-template names field '{name}', "
                                 f"which this file does not have (fields: "
                                 f"{', '.join(map(str, frame.columns)) or 'none'})")
        fields = template_fields(config.text_template)
        rows = frame[fields].to_dict("records")
        for i, row in enumerate(rows):
            absent = [k for k, v in row.items() if _missing(v)]
            if absent:
                problems[i] = f"field '{absent[0]}' is missing"
            else:
                texts[i] = _render_template(config.text_template, row)
        return texts, problems
    field = config.text_field
    if field in columns:
        values = frame[field].tolist()
        for i, v in enumerate(values):
            if _missing(v):
                problems[i] = f"field '{field}' is missing"
            elif isinstance(v, str):
                texts[i] = v
            else:
                problems[i] = f"field '{field}' is not text ({type(v).__name__})"
        return texts, problems
    if "messages" in columns:
        for i, v in enumerate(frame["messages"].tolist()):
            rendered = render_messages(v)
            if rendered is None:
                problems[i] = "field 'messages' is not a list of {role, content}"
            texts[i] = rendered
        return texts, problems
    raise InputError(f"{path}: {first}: no text field '{field}' (fields: "
                     f"{', '.join(map(str, frame.columns)) or 'none'}); use --text-field, "
                     f"--text-template or a 'messages' list")


def _derive_id(source: str, text: object, locator: str, path: Path) -> str:
    """A deterministic id from the content, so it survives reordering of the inputs."""
    basis = text if isinstance(text, str) else f"{path.name}:{locator}"
    digest = hashlib.blake2b(basis.encode("utf-8", "replace"), digest_size=8).hexdigest()
    return f"{source[0]}-{digest}"


# --------------------------------------------------------------------------- table

def _source_of(value: object, path: Path, locator: str, field: str) -> str:
    key = str(value).strip().lower() if not _missing(value) else ""
    if key not in SOURCE_ALIASES:
        raise InputError(f"{path}: {locator}: field '{field}' is {value!r}; expected 'real' or "
                         f"'synthetic'")
    return SOURCE_ALIASES[key]


def _generation_of(frame: pd.DataFrame, path: Path, locators: list[str]) -> list[object]:
    if "generation" not in frame.columns:
        return [pd.NA] * len(frame)
    out = []
    for loc, v in zip(locators, frame["generation"].tolist()):
        if _missing(v) or v == "":
            out.append(pd.NA)
            continue
        try:
            g = int(v)
            if g != float(v) or g < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise InputError(f"{path}: {loc}: field 'generation' is {v!r}; expected a "
                             f"non-negative integer (0 = human, k = k-th self-training round)"
                             ) from None
        out.append(g)
    return out


def ingest(config: Config, real=None, synthetic=None, mixed=None) -> Ingested:
    """Reads every input into one records table.

    `real`, `synthetic` and `mixed` are each a list of paths/globs or a pandas DataFrame.
    Mixed inputs take the source from `config.source_field`.
    """
    parts: list[tuple[str | None, pd.DataFrame, Path, list[str], np.ndarray]] = []
    for source, spec in ((REAL, real), (SYNTHETIC, synthetic), (None, mixed)):
        if spec is None:
            continue
        if isinstance(spec, pd.DataFrame):
            name = Path(f"<{source or 'input'} DataFrame>")
            parts.append((source, spec.reset_index(drop=True), name,
                          [f"row {i}" for i in range(1, len(spec) + 1)],
                          np.zeros(len(spec), dtype=bool)))
            continue
        if isinstance(spec, (str, Path)):
            spec = [spec]
        for path in resolve_paths(spec):
            frame, locators, undecodable = read_file(path)
            parts.append((source, frame, path, locators, undecodable))
    if mixed is not None and not config.source_field:
        raise InputError("--input needs --source-field naming the field that says real or "
                         "synthetic")

    ids, sources, texts, problems, generations = [], [], [], [], []
    originals = []
    seen_ids: dict[tuple[str, str], str] = {}
    derived_counts: Counter = Counter()
    for source, frame, path, locators, undecodable in parts:
        if len(frame) == 0:
            continue
        if source is None:
            if config.source_field not in frame.columns:
                raise InputError(f"{path}: {locators[0]}: no source field "
                                 f"'{config.source_field}' (fields: "
                                 f"{', '.join(map(str, frame.columns))})")
            row_sources = [_source_of(v, path, loc, config.source_field)
                           for v, loc in zip(frame[config.source_field].tolist(), locators)]
        else:
            row_sources = [source] * len(frame)
        row_texts, row_problems = _texts_of(frame, path, locators, config)
        row_gen = _generation_of(frame, path, locators)
        has_ids = config.id_field in frame.columns
        id_values = frame[config.id_field].tolist() if has_ids else [None] * len(frame)
        for i, loc in enumerate(locators):
            src = row_sources[i]
            raw_id = id_values[i]
            if _missing(raw_id) or raw_id == "":
                base = _derive_id(src, row_texts[i], loc, path)
                derived_counts[base] += 1
                rid = base if derived_counts[base] == 1 else f"{base}-{derived_counts[base]}"
            else:
                rid = str(raw_id)
            where = f"{path}: {loc}"
            if (src, rid) in seen_ids:
                raise InputError(f"{where}: field '{config.id_field}': duplicate {src} id "
                                 f"{rid!r} (first seen at {seen_ids[(src, rid)]})")
            seen_ids[(src, rid)] = where
            ids.append(rid)
            sources.append(src)
            text = row_texts[i]
            if undecodable[i]:
                row_problems[i] = row_problems[i] or "undecodable bytes (not UTF-8)"
            texts.append(text)
            problems.append(row_problems[i])
            generations.append(row_gen[i])
        originals.append(frame)

    table = new_table(ids, sources, texts, generations)
    originals_frame = (pd.concat(originals, ignore_index=True, sort=False)
                       if originals else pd.DataFrame(index=range(0)))
    mark_invalid(table, problems, config)
    return Ingested(table=table, originals=originals_frame)


# Scripts written without spaces (CJK) count each character as a word, or they could never
# reach a minimum length counted in whitespace-separated words.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]"
                   r"|[^\s\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def mark_invalid(table: pd.DataFrame, problems: list[str], config: Config) -> None:
    """Gives `invalid` to records with no usable text, saying why for each."""
    min_words, min_chars = config.ingest.min_words, config.ingest.min_chars
    notes = list(problems)
    for i, text in enumerate(table["text"].tolist()):
        if notes[i]:
            continue
        if not isinstance(text, str) or not text.strip():
            notes[i] = "empty or whitespace-only text"
            continue
        stripped = "".join(text.split())
        if len(stripped) < min_chars:
            notes[i] = f"{len(stripped)} non-space characters < minimum {min_chars}"
            continue
        words = count_words(text)
        if words < min_words:
            notes[i] = f"{words} words < minimum {min_words}"
    mask = np.array([bool(n) for n in notes], dtype=bool)
    reject(table, mask, Reason.INVALID, [f"invalid: {n}" for n, m in zip(notes, mask) if m])
    # Invalid texts that are not strings become None so every later stage sees str or None.
    table["text"] = [t if isinstance(t, str) else None for t in table["text"].tolist()]
