"""The records table that flows through the stages, and the reason codes.

Records flow as one pandas DataFrame, one row per input record, never as Python objects.
Each stage reads the columns it needs and adds its own; the decision log is the table's final
state. The columns every stage may rely on:

    id, source ("real"/"synthetic"), text, generation (Int64, may be <NA>),
    kept (bool), reasons (list of reason codes, pipeline order), dup_of (id or None),
    explanation (human-readable why, one clause per reason)

Stages add score columns (`formulaic`, `real_nn_sim`, `distance_pctl`, `cluster`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum

import numpy as np
import pandas as pd

REAL = "real"
SYNTHETIC = "synthetic"
SOURCES = (REAL, SYNTHETIC)


class Reason(str, Enum):
    """Stable reason codes (DESIGN.md §3). The string values are the contract."""

    INVALID = "invalid"
    EXACT_DUPLICATE = "exact_duplicate"
    BENCHMARK_OVERLAP = "benchmark_overlap"
    NEAR_DUPLICATE = "near_duplicate"
    COPIES_REAL = "copies_real"
    FORMULAIC = "formulaic"
    OFF_DISTRIBUTION = "off_distribution"
    SHARE_CAP = "share_cap"

    def __str__(self) -> str:  # so f-strings and joins print the code, not Reason.X
        return self.value


# Reasons after which a record is not worth scoring further: it is not real content or it is
# a repeat of a kept record, so embedding or formulaic scores would add nothing but cost.
TERMINAL_REASONS = frozenset({Reason.INVALID, Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE,
                              Reason.COPIES_REAL, Reason.BENCHMARK_OVERLAP})

# The columns of decisions.parquet, in order. Stages that have not run leave theirs null.
DECISION_COLUMNS = ["id", "source", "kept", "reasons", "dup_of", "benchmark_match",
                    "dup_similarity", "dup_test",
                    "formulaic", "formulaic_matches", "real_nn_sim", "distance_pctl",
                    "off_distribution_signal",
                    "cluster", "generation", "explanation"]


def new_table(ids: list[str], sources: list[str], texts: "list[object] | pd.Series",
              generation: list[object] | None = None) -> pd.DataFrame:
    """Builds the records table with every record kept and no reasons yet."""
    n = len(ids)
    table = pd.DataFrame({
        "id": pd.Series(ids, dtype=object),
        "source": pd.Series(sources, dtype=object),
        # A column of Arrow strings stays one (gigabytes less than Python strings at scale).
        "text": texts.reset_index(drop=True) if isinstance(texts, pd.Series)
        else pd.Series(texts, dtype=object),
        "generation": pd.array(generation if generation is not None else [pd.NA] * n,
                               dtype="Int64"),
    })
    table["kept"] = np.ones(n, dtype=bool)
    table["reasons"] = pd.Series([[] for _ in range(n)], dtype=object)
    table["dup_of"] = pd.Series([None] * n, dtype=object)
    table["explanation"] = pd.Series([""] * n, dtype=object)
    return table


def reject(table: pd.DataFrame, mask, reason: Reason, explanations=None) -> int:
    """Marks the records under `mask` as rejected for `reason`; returns how many.

    The reason is appended (a record may carry several, in pipeline order) and the record is
    no longer kept. `explanations` is one string for all or one per masked record.
    """
    mask = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return 0
    if explanations is None or isinstance(explanations, str):
        explanations = [explanations or ""] * len(idx)
    # Copies, not views: under pandas copy-on-write a column's array is read-only.
    reasons = table["reasons"].to_numpy(copy=True)
    notes = table["explanation"].to_numpy(copy=True)
    for i, note in zip(idx, explanations):
        if reason.value not in reasons[i]:
            reasons[i] = reasons[i] + [reason.value]
        if note:
            notes[i] = f"{notes[i]}; {note}" if notes[i] else note
    table["reasons"] = reasons
    table["explanation"] = notes
    kept = table["kept"].to_numpy().copy()
    kept[idx] = False
    table["kept"] = kept
    return len(idx)


def is_real(table: pd.DataFrame) -> np.ndarray:
    return (table["source"] == REAL).to_numpy()


def is_synthetic(table: pd.DataFrame) -> np.ndarray:
    return (table["source"] == SYNTHETIC).to_numpy()


def has_terminal_reason(table: pd.DataFrame) -> np.ndarray:
    """Records already rejected as invalid or as a repeat: later stages skip scoring them."""
    terminal = {r.value for r in TERMINAL_REASONS}
    return np.fromiter((bool(terminal.intersection(r)) for r in table["reasons"]),
                       dtype=bool, count=len(table))


def scorable(table: pd.DataFrame) -> np.ndarray:
    """Records that carry real content not already rejected as a repeat: the ones to score."""
    return ~has_terminal_reason(table)


def reason_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many records carry each reason, in the stable order of the Reason enum."""
    counts = {r.value: 0 for r in Reason}
    for reasons in table["reasons"]:
        for r in reasons:
            counts[r] += 1
    return {k: v for k, v in counts.items() if v}


def holdout_mask(table: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """The real records held out to calibrate thresholds (DESIGN.md §5).

    Chosen by a seeded hash of the id, not by position, so the split is the same whatever the
    order of the inputs and every stage that calibrates uses the same hold-out. Only real
    records still worth scoring (not invalid, not duplicates) are held out.
    """
    import hashlib

    eligible = is_real(table) & scorable(table)
    salt = str(seed).encode()
    draws = np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=salt).digest(),
                        "little") / 2**64 for i in table["id"]),
        dtype=float, count=len(table))
    return eligible & (draws < fraction)


def canonical_order(table: pd.DataFrame) -> np.ndarray:
    """The permutation that puts the records in an order fixed by their content alone.

    The stages run on the table in this order, so the same set of records gets the same
    decisions, scores and report in whatever order the inputs list them: "first seen" in a
    duplicate group, the share-cap sample, k-means' sample and every other seeded draw over
    rows mean first / drawn in this order, not in the files'. Real records come first (a real
    record is kept before any synthetic one in a duplicate group), then records by id, runs
    of digits compared as numbers ("s2" before "s10"): ids often count up in the order records
    were made, so in a duplicate group the one with the smallest id is kept, which reads as
    "the earliest" where ids say so and is a fixed rule where they do not (an id derived from
    the content is a hash). Ids are unique per source, so no two records tie.
    """
    fast = _simple_id_order(table)
    if fast is not None:
        return fast
    keys = [(source != REAL, _natural_key(rid))
            for source, rid in zip(table["source"].tolist(), table["id"].tolist())]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _simple_id_order(table: pd.DataFrame) -> np.ndarray | None:
    """The same order in Arrow, when every id is text then digits ("s00042", "doc-7", "abc"),
    as ids usually are: (source, text, digits by number, digits as written) sorted in C++
    rather than a Python key per record. None for any other id shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array([str(i) for i in table["id"].tolist()], type=pa.string())
    parts = pc.extract_regex(ids, r"^(?P<head>\D*)(?P<num>\d*)$")
    if parts.null_count:
        return None
    num = parts.field("num")
    stripped = pc.utf8_ltrim(num, characters="0")
    keys = pa.table({"synthetic": pa.array((table["source"] != REAL).to_numpy()),
                     "head": parts.field("head"), "digits": pc.utf8_length(stripped),
                     "value": stripped, "written": num})
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    return order.to_numpy().astype(np.int64)


_DIGITS = re.compile(r"(\d+)")


def order_key(source: str, rid: object) -> bytes:
    """`canonical_order`'s sort key as bytes that compare (bytewise) as the key does, and
    that name the record: engines that never hold every record in one process (engines/ray)
    sort, group and join by it. Each text run is its code points in 4 bytes, the top byte 1
    (so a shorter run, ended by a 0 byte, sorts first); each digit run is its length without
    leading zeros in 8 bytes, then those digits, then the run as written; each part opens
    with a 1 byte and the key ends with a 0 byte (fewer parts sort first)."""
    out = bytearray(b"\x00" if source == REAL else b"\x01")
    for i, part in enumerate(_DIGITS.split(str(rid))):
        out += b"\x01"
        if i % 2:
            stripped = part.lstrip("0")
            out += len(stripped).to_bytes(8, "big") + _code_points(stripped)
        out += _code_points(part)
    out += b"\x00"
    return bytes(out)


def _code_points(text: str) -> bytes:
    """`text` as 4-byte big-endian code points, the top byte (always 0) set to 1, then a 0:
    bytewise order is code point order, and a prefix sorts before what extends it."""
    units = bytearray(text.encode("utf-32-be", "surrogatepass"))
    units[0::4] = b"\x01" * len(text)
    return bytes(units) + b"\x00"


def _natural_key(rid: object) -> tuple:
    """Text runs as text, digit runs as numbers (compared by length, then digits, without
    leading zeros: no int() of a 5,000-digit run), the digits as written last so "01" and
    "1" still differ."""
    parts = _DIGITS.split(str(rid))
    return tuple((len(p.lstrip("0")), p.lstrip("0"), p) if i % 2 else (-1, p, "")
                 for i, p in enumerate(parts))



class ColumnRows(Sequence):
    """Some rows of a column (all of them without `rows`) as a sequence, each value converted
    when it is read: a set measured on a sample, or a page that shows a few records, need not
    turn every text into a Python string."""

    def __init__(self, column: pd.Series, rows: np.ndarray | None = None):
        self.column = column
        self.rows = np.arange(len(column)) if rows is None else np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.column.iat[int(self.rows[i])]

    def take(self, positions) -> list:
        """The values at some positions of this sequence, converted together (`texts_at`)."""
        return texts_at(self.column, self.rows[np.asarray(positions, dtype=np.int64)])


def texts_at(column: pd.Series, rows: np.ndarray) -> list:
    """The column's values at `rows` as a Python list (Arrow strings gathered as in
    `take_rows`, not the whole column converted)."""
    rows = np.asarray(rows, dtype=np.int64)
    if _arrow_strings(column):
        return _take_arrow(column.array._pa_array, rows).to_pylist()
    return column.to_numpy()[rows].tolist()


def take_rows(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """`table.iloc[rows]` with a fresh index, its Arrow string columns gathered by
    `_take_arrow` (a million texts reordered by pandas held three copies of them at once)."""
    rows = np.asarray(rows, dtype=np.int64)
    plain = [c for c in table.columns if not _arrow_strings(table[c])]
    out = table[plain].iloc[rows].reset_index(drop=True)
    for col in table.columns:
        if col not in plain:
            out[col] = pd.array(_take_arrow(table[col].array._pa_array, rows),
                                dtype=table[col].dtype)
    return out[list(table.columns)]


def _take_arrow(column, rows: np.ndarray, block: int = 1 << 16):
    """`column.take(rows)` for a chunked Arrow string array, a block of rows at a time.

    Arrow's take on a chunked string array first concatenates every chunk and then grows its
    output by doubling. Block by block, each chunk gives the block's rows it holds and the
    block is put back in order, so besides the result only one block's texts are ever
    copied twice."""
    import pyarrow as pa

    starts = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
    if len(rows) == len(column) and (rows == np.arange(len(rows))).all():
        return column                       # already in order (inputs listed in content order)
    if (np.diff(rows) >= 0).all():
        # Rows in order (the kept rows of a table already in input order): each chunk gives
        # its rows and they are already where they belong.
        bounds = np.searchsorted(rows, starts)
        return pa.chunked_array([column.chunk(c).take(pa.array(rows[a:b] - starts[c]))
                                 for c, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
                                 if b > a], type=column.type)
    blocks = []
    for begin in range(0, len(rows), block):
        part = rows[begin:begin + block]
        chunk_of = np.searchsorted(starts, part, side="right") - 1
        by_chunk = np.argsort(chunk_of, kind="stable")
        pieces = [column.chunk(c).take(pa.array(part[by_chunk][chunk_of[by_chunk] == c]
                                                - starts[c]))
                  for c in np.unique(chunk_of)]
        blocks.append(pa.concat_arrays(pieces).take(pa.array(np.argsort(by_chunk))))
    return pa.chunked_array(blocks, type=column.type)


def _arrow_strings(column: pd.Series) -> bool:
    """Whether the column is Arrow string memory (texts read by Arrow stay so)."""
    import pyarrow as pa

    array = getattr(column.array, "_pa_array", None)
    return array is not None and (pa.types.is_string(array.type)
                                  or pa.types.is_large_string(array.type))
