"""records.take_rows / texts_at: Arrow string columns gathered block by block from their own
chunks must give exactly what pandas' iloc gives, in every order."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from synthgate.records import take_rows, texts_at

TEXTS = [None if i % 7 == 0 else f"text {i} é" for i in range(1000)]


def chunked(chunk: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(TEXTS[i:i + chunk], type=pa.large_string())
                             for i in range(0, len(TEXTS), chunk)])


def frame(chunk: int) -> pd.DataFrame:
    # pandas' default string dtype: Arrow strings on pandas 3, Python objects on pandas 2
    return pd.DataFrame({"n": np.arange(len(TEXTS)),
                         "text": pd.array(chunked(chunk), dtype=pd.Series(["x"]).dtype),
                         "plain": pd.Series(TEXTS, dtype=object)})


ORDERS = {
    "shuffled": np.random.default_rng(1).permutation(1000),
    "shuffled subset": np.random.default_rng(2).permutation(1000)[:300],
    "sorted subset": np.sort(np.random.default_rng(3).permutation(1000)[:400]),
    "identity": np.arange(1000),
    "one chunk's middle": np.arange(140, 250),
    "repeats": np.array([5, 5, 999, 0, 5]),
    "empty": np.array([], dtype=np.int64),
}


@pytest.mark.parametrize("chunk", [130, 1000, 1])
@pytest.mark.parametrize("name", ORDERS)
def test_same_as_iloc(chunk, name):
    table, rows = frame(chunk), ORDERS[name]
    got, want = take_rows(table, rows), table.iloc[rows].reset_index(drop=True)
    assert list(got.columns) == list(table.columns)
    assert got["text"].dtype == table["text"].dtype      # still Arrow strings
    assert got["text"].isna().tolist() == want["text"].isna().tolist()
    assert got.fillna("-").equals(want.fillna("-"))
    as_list = [t if isinstance(t, str) else None for t in texts_at(table["text"], rows)]
    assert as_list == [TEXTS[i] for i in rows]
    assert texts_at(table["plain"], rows) == [TEXTS[i] for i in rows]


def test_small_blocks_cross_chunks():
    # Blocks smaller than chunks, chunks smaller than blocks: the put-back order holds.
    from synthgate.records import _take_arrow
    column = chunked(37)      # the Arrow array itself (pandas 2 has no Arrow default dtype)
    rows = np.random.default_rng(4).permutation(1000)
    assert _take_arrow(column, rows, block=50).to_pylist() == [TEXTS[i] for i in rows]
