"""The content order's two implementations agree: Arrow's sort for ids shaped text-then-digits
and the Python natural key for every other id."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from synthgate.records import REAL, _natural_key, _simple_id_order, canonical_order


def _random_ids(rng: random.Random, n: int) -> pd.DataFrame:
    seen, ids, sources = set(), [], []
    while len(ids) < n:
        source = rng.choice(["real", "synthetic"])
        rid = "".join(rng.choice("ab-_") for _ in range(rng.randint(0, 3))) + \
            "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4)))
        if (source, rid) not in seen:
            seen.add((source, rid))
            ids.append(rid)
            sources.append(source)
    return pd.DataFrame({"id": ids, "source": sources})


def test_arrow_order_equals_the_natural_key_order():
    rng = random.Random(0)
    for _ in range(300):
        table = _random_ids(rng, rng.randint(1, 60))
        keys = [(s != REAL, _natural_key(i)) for s, i in zip(table["source"], table["id"])]
        slow = np.array(sorted(range(len(table)), key=keys.__getitem__))
        fast = _simple_id_order(table)
        assert fast is not None
        np.testing.assert_array_equal(fast, slow)


def test_other_id_shapes_take_the_natural_key():
    table = pd.DataFrame({"id": ["a10b2", "a9b3", "a10b1"], "source": ["synthetic"] * 3})
    assert _simple_id_order(table) is None
    assert [table["id"][i] for i in canonical_order(table)] == ["a9b3", "a10b1", "a10b2"]
