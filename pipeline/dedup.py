"""Dedup stage: exact duplicates and copies of real records.

Exact: the same text after Unicode NFKC, case folding and whitespace collapsing. Within a
source the first record seen is kept and the others get `exact_duplicate`; a synthetic record
whose text repeats a real record gets `copies_real` (memorization), whatever the input order:
the real record is always the one kept. `dup_of` names the kept record.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np
import pandas as pd

from .records import REAL, Reason, reject, scorable
from .stage import RunContext, StageOutcome

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the text two exact duplicates share."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


def exact_duplicates(table: pd.DataFrame, dedup_real: bool = True) -> dict[str, int]:
    """Marks exact duplicates and exact copies of real records; returns counts."""
    active = scorable(table)
    texts = table["text"].tolist()
    sources = table["source"].tolist()
    ids = table["id"].tolist()
    hashes: list[bytes | None] = [text_hash(t) if a else None for t, a in zip(texts, active)]

    # Real records first, so a synthetic record is matched to a real one whatever the order.
    first_real: dict[bytes, int] = {}
    first_synth: dict[bytes, int] = {}
    dup_of: list[str | None] = list(table["dup_of"])
    exact = np.zeros(len(table), dtype=bool)
    copies = np.zeros(len(table), dtype=bool)
    for i, h in enumerate(hashes):
        if h is None or sources[i] != REAL:
            continue
        if h in first_real:
            if dedup_real:
                exact[i] = True
                dup_of[i] = ids[first_real[h]]
        else:
            first_real[h] = i
    for i, h in enumerate(hashes):
        if h is None or sources[i] == REAL:
            continue
        if h in first_real:
            copies[i] = True
            dup_of[i] = ids[first_real[h]]
        elif h in first_synth:
            exact[i] = True
            dup_of[i] = ids[first_synth[h]]
        else:
            first_synth[h] = i
    table["dup_of"] = pd.Series(dup_of, dtype=object, index=table.index)
    sim = table["dup_similarity"].to_numpy(copy=True) if "dup_similarity" in table else \
        np.full(len(table), np.nan)
    sim[exact | copies] = 1.0
    table["dup_similarity"] = sim
    dup_ids = table["dup_of"].tolist()
    reject(table, exact, Reason.EXACT_DUPLICATE,
           [f"exact duplicate of {dup_ids[i]}" for i in np.flatnonzero(exact)])
    reject(table, copies, Reason.COPIES_REAL,
           [f"exact copy of real record {dup_ids[i]}" for i in np.flatnonzero(copies)])
    return {"exact_duplicate": int(exact.sum()), "copies_real_exact": int(copies.sum())}


def run(table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
    cfg = ctx.config.dedup
    details: dict = {}
    if "dup_similarity" not in table:
        table["dup_similarity"] = np.full(len(table), np.nan)
    if cfg.exact:
        details["exact"] = exact_duplicates(table, dedup_real=cfg.dedup_real)
    return StageOutcome(details=details)
