"""README.md: the dataset card every output carries, so the verdict travels with the data.

The card opens with the YAML header the Hugging Face Hub reads (`configs` pointing at the
training-set files, `dataset_info` with the features and sizes, `tags: [synthetic]`,
`size_categories`), so the output folder pushed as a dataset repository loads with
`datasets.load_dataset` and the Hub shows it. Then, for people: what went in, what was removed
and why (the counts of report.json, reason by reason), the gate verdict with every check, the
synthetic share against its cap, and the config hash.

No YAML library is needed: the header is written by `_yaml` (block style, every string that
is not a plain word double-quoted, with YAML escapes for what YAML cannot hold raw), and every
text that comes from the data or the user (input names, column names, check messages) is
escaped for Markdown and HTML before it enters the body.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .report_html import REASON_LABELS

# What the Hub's size_categories key accepts, by upper bound of the record count.
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                    (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                    (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                    (1_000_000_000_000, "100B<n<1T"))

# Where the training set lies in each format, as the card's `configs` names it.
DATA_FILES = {"parquet": "train.parquet", "jsonl": "train.jsonl", "hf": "train/*.arrow"}
# The same for an output written by blocks (--engine ray): Parquet dataset folders.
SHARDED_DATA_FILES = {"parquet": "train.parquet/*.parquet", "jsonl": "train.jsonl"}


def size_category(n: int) -> str:
    for bound, name in _SIZE_CATEGORIES:
        if n < bound:
            return name
    return "n>1T"


# ----------------------------------------------------------------------------- features

class UndescribedType(ValueError):
    """An Arrow type the `datasets` feature vocabulary has no name for (a map)."""


def _dtype(t) -> str:
    """The `datasets` dtype name of a plain Arrow type (as datasets' own
    _arrow_to_datasets_dtype names it)."""
    import pyarrow as pa

    types = pa.types
    simple = ((types.is_null, "null"), (types.is_boolean, "bool"), (types.is_int8, "int8"),
              (types.is_int16, "int16"), (types.is_int32, "int32"), (types.is_int64, "int64"),
              (types.is_uint8, "uint8"), (types.is_uint16, "uint16"),
              (types.is_uint32, "uint32"), (types.is_uint64, "uint64"),
              (types.is_float16, "float16"), (types.is_float32, "float32"),
              (types.is_float64, "float64"), (types.is_date32, "date32"),
              (types.is_date64, "date64"), (types.is_binary, "binary"),
              (types.is_large_binary, "large_binary"), (types.is_string, "string"),
              (types.is_large_string, "large_string"))
    for test, name in simple:
        if test(t):
            return name
    if types.is_time32(t) or types.is_time64(t):
        return f"time{t.bit_width}[{t.unit}]"
    if types.is_timestamp(t):
        return f"timestamp[{t.unit}]" if not t.tz else f"timestamp[{t.unit}, tz={t.tz}]"
    if types.is_duration(t):
        return f"duration[{t.unit}]"
    if types.is_decimal128(t) or types.is_decimal256(t):
        return f"decimal{t.bit_width}({t.precision}, {t.scale})"
    if types.is_fixed_size_binary(t):
        return f"fixed_size_binary[{t.byte_width}]"
    if types.is_dictionary(t):
        return _dtype(t.value_type)
    for name in ("string_view", "binary_view"):
        if getattr(types, f"is_{name}", lambda _: False)(t):
            return name
    raise UndescribedType(str(t))


def _inner(entry: dict) -> Any:
    """What a list's YAML entry holds: a bare dtype or a struct's fields stand alone."""
    if list(entry) == ["dtype"]:
        return entry["dtype"]
    if list(entry) == ["struct"]:
        return entry["struct"]
    return entry


def arrow_feature(t) -> dict:
    """One column's entry (without its name) in the Hub's `dataset_info.features` list."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        return {"struct": [{"name": t.field(i).name, **arrow_feature(t.field(i).type)}
                           for i in range(t.num_fields)]}
    if pa.types.is_fixed_size_list(t):
        return {"list": _inner(arrow_feature(t.value_type)), "length": t.list_size}
    if pa.types.is_list(t):
        return {"list": _inner(arrow_feature(t.value_type))}
    if pa.types.is_large_list(t):
        return {"large_list": _inner(arrow_feature(t.value_type))}
    if isinstance(t, pa.ExtensionType):
        if t.extension_name == "arrow.json":
            return {"dtype": "json"}
        raise UndescribedType(str(t))
    return {"dtype": _dtype(t)}


def features_yaml(schema, known: dict[str, dict] | None = None) -> list[dict] | None:
    """The `dataset_info.features` list for a table schema. Columns with a `datasets` feature
    from the input (`known`, as dicts: ClassLabel names, Array2D...) are described by `datasets`
    itself, imported only then; the others from their Arrow type. None when a column has a type
    the vocabulary cannot name."""
    known = {k: v for k, v in (known or {}).items() if k in schema.names}
    if known or "datasets" in sys.modules:
        try:
            import datasets
        except ImportError:
            known = {}
        else:
            try:
                inferred = datasets.Features.from_arrow_schema(schema)
                merged = datasets.Features({name: (datasets.Features.from_dict(
                    {name: known[name]})[name] if name in known else inferred[name])
                    for name in schema.names})
                return merged._to_yaml_list()
            except Exception:   # a type datasets cannot describe: fall through to our own
                pass
    try:
        return [{"name": f.name, **arrow_feature(f.type)} for f in schema]
    except UndescribedType:
        return None


# ----------------------------------------------------------------------------- YAML

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*\Z")
# Plain words YAML 1.1 (PyYAML, the Hub's parsers) would read as booleans or null.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none"}


def _yaml_escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if ch == '"':
        return '\\"'
    if (code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF)
            or 0xD800 <= code <= 0xDFFF):
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def _quoted(value: str) -> str:
    return '"' + "".join(_yaml_escape_char(c) for c in value) + '"'


def yaml_str(value: str) -> str:
    """A YAML scalar that reads back as `value`: a plain word as is, anything else
    double-quoted with every character YAML cannot hold raw (controls, line and paragraph
    separators, a BOM, a surrogate) escaped, so no text changes on the way back."""
    if _PLAIN_VALUE.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return _quoted(value)


def _yaml_key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return _quoted(key)   # '0' stays the string "0", not the number


def _leaf(value: Any) -> str:
    """A scalar, or an empty mapping or list, on one line."""
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return yaml_str(str(value))


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines for dicts, lists and scalars."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{_yaml_key(str(k))}:")
                lines += _yaml(v, indent + 2)
            else:
                lines.append(f"{pad}{_yaml_key(str(k))}: {_leaf(v)}")
        return lines
    if isinstance(value, list) and value:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_leaf(item)}")
        return lines
    return [f"{pad}{_leaf(value)}"]


def to_yaml(value: dict) -> str:
    return "\n".join(_yaml(value)) + "\n"


# ----------------------------------------------------------------------------- Markdown

_MD_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~<>&])")


def md(text: Any) -> str:
    """Text from the data or the user, safe in Markdown and in the HTML the Hub renders it
    to: one line, HTML-significant characters as entities, Markdown ones backslashed."""
    one_line = " ".join(str(text).split())
    out = []
    for ch in one_line:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif _MD_SPECIALS.match(ch):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return md(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    return md(value)


# ----------------------------------------------------------------------------- the card

def header(report: dict, fmt: str, features: list[dict] | None, num_bytes: int,
           download_size: int, sharded: bool = False) -> dict:
    """The YAML header's data: what the Hub and `datasets.load_dataset(DIR)` read."""
    kept = int(report["output"]["real"]) + int(report["output"]["synthetic"])
    info: dict[str, Any] = {}
    if features is not None:
        info["features"] = features
    info["splits"] = [{"name": "train", "num_bytes": int(num_bytes), "num_examples": kept}]
    info["download_size"] = int(download_size)
    info["dataset_size"] = int(num_bytes)
    return {
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": (SHARDED_DATA_FILES if sharded
                                                                else DATA_FILES)[fmt]}]}],
        "dataset_info": info,
        "tags": ["synthetic", "synthgate"],
        "size_categories": [size_category(kept)],
    }


def build(report: dict, *, fmt: str, features: list[dict] | None, num_bytes: int,
          download_size: int, inputs: dict[str, list[str]] | None = None,
          sharded: bool = False) -> str:
    """The whole README.md: YAML header, then the body for people. `sharded`: train.parquet
    and decisions.parquet are Parquet dataset folders (--engine ray)."""
    head = header(report, fmt, features, num_bytes, download_size, sharded)
    data_files = (SHARDED_DATA_FILES if sharded else DATA_FILES)[fmt]
    gate = report["gate"]
    checks = gate["checks"]
    failed = [c for c in checks if not c["passed"]]
    inp, out = report["inputs"], report["output"]
    cap = report.get("config", {}).get("max_synthetic_share")
    kept = int(out["real"]) + int(out["synthetic"])
    total_in = int(inp["real"]) + int(inp["synthetic"])
    train = {"parquet": "`train.parquet`", "jsonl": "`train.jsonl`",
             "hf": "`train/` (a `datasets` `save_to_disk` folder)"}[fmt]
    if sharded and fmt == "parquet":
        train = "`train.parquet/` (a Parquet dataset folder)"
    decisions = ("`decisions.parquet/` (a Parquet dataset folder)" if sharded
                 else "`decisions.parquet`")
    lines = ["---", to_yaml(head).rstrip("\n"), "---", "",
             "# Training set gated by synthgate", ""]
    if gate["passed"]:
        lines.append(f"**Gate PASSED**: all {len(checks)} checks passed.")
    else:
        lines.append(f"**Gate FAILED**: {len(failed)} of {len(checks)} checks failed ("
                     + ", ".join(md(c["name"]) for c in failed) + "). The training set was "
                     "written all the same; read the checks below before training on it.")
    share = f"{float(out['synthetic_share']):.3f}"
    lines += ["", f"{train} holds {kept} records ({out['real']} real, {out['synthetic']} "
                  f"synthetic; synthetic share {share}"
                  + (f", cap {float(cap):.3f}" if isinstance(cap, (int, float)) else "")
                  + f") kept out of {total_in} input records by synthgate "
                  f"{md(report.get('synthgate_version', '?'))}. The counts are those of "
                  "`report.json`.", ""]

    lines += ["## What went in", "", "| source | records | read from |", "|---|---|---|"]
    for source in ("real", "synthetic"):
        names = (inputs or {}).get(source) or []
        # Escaped text, not code spans: a code span would show the escapes themselves.
        shown = ", ".join(md(n) for n in names) or "-"
        lines.append(f"| {source} | {int(inp[source])} | {shown} |")
    if (inputs or {}).get("input"):
        lines.append("\nOne mixed input: " + ", ".join(md(n) for n in inputs["input"]))
    lines.append("")

    lines += ["## What was removed and why", ""]
    rejections = report.get("rejections") or {}
    if rejections:
        lines += ["| reason | records | meaning |", "|---|---|---|"]
        for reason, count in rejections.items():
            meaning = REASON_LABELS.get(reason, ("", ""))[1]
            lines.append(f"| `{md(reason)}` | {int(count)} | {md(meaning)} |")
        lines += ["", "A record may carry several reasons; each is counted. "
                      "`decisions.parquet` says, for every input record, whether it was kept "
                      "and why not."]
    else:
        lines.append("Nothing was removed.")
    lines.append("")

    lines += ["## Gate", "", "| check | result | observed | threshold | message |",
              "|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {md(c['name'])} | {'pass' if c['passed'] else '**FAIL**'} | "
                     f"{_num(c.get('observed'))} | {_num(c.get('threshold'))} | "
                     f"{md(c.get('message', ''))} |")
    lines.append("")

    lines += ["## Synthetic share", "",
              f"{share} of the kept records are synthetic"
              + (f" (cap {float(cap):.3f})." if isinstance(cap, (int, float)) else "."), ""]

    lines += ["## Files", "", "| file | what |", "|---|---|",
              f"| {train} | the kept records: the original columns plus `id`, `source`, "
              f"`text` |",
              f"| {decisions} | one row per "
              "input record: `kept`, `reasons`, `dup_of`, the scores |",
              "| `report.json`, `report.html` | the full QC report (the page works offline) |",
              "", "```python"]
    if fmt == "hf":
        lines.append('from datasets import load_from_disk\ntrain = load_from_disk("train")')
    else:
        lines.append(f'from datasets import load_dataset\ntrain = load_dataset('
                     f'"{"parquet" if fmt == "parquet" else "json"}", data_files='
                     f'"{data_files}", split="train")')
    lines += ["```", ""]

    config = report.get("config", {})
    lines += ["## Provenance", "",
              f"- synthgate {md(report.get('synthgate_version', '?'))}, config hash "
              f"`{md(config.get('hash', '?'))}`, seed {md(config.get('seed', '?'))}",
              f"- stages: {md(', '.join(str(s) for s in config.get('stages', [])))}", ""]
    return "\n".join(lines)
