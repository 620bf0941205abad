"""Decontaminate stage: no item of an evaluation set (`--benchmark`) stays in the training data.

Generators reproduce benchmark items they saw in pre-training, and real data can carry them
too, so this stage runs before dedup on real and synthetic records alike. Two tests, either
one rejects a record with `benchmark_overlap` and names the item in `benchmark_match`
(`<benchmark file stem>:<item id>`):

1. **n-gram overlap** (`NgramIndex`). Items and records are normalized the same way
   (`words`: chat roles and "Q:/A:" labels dropped, NFKC, case-folded, punctuation stripped,
   whitespace collapsed), so framing, case, punctuation and spacing changes cannot hide an
   item. Every word n-gram of every item is held as a 64-bit fingerprint in a sorted array,
   with its item and position and a bitmap that rules out most grams without a search (18
   bytes an item n-gram: 18 MB per million); each batch of records is fingerprinted at once
   (`minhash.Shingler`'s polynomial hashes) and looked up in sorted order, so checking a
   record costs little more than normalizing it. A record carries an item when the item's
   words that lie inside a matched n-gram cover at least `min_coverage` of the item (the
   whole item, a part of it, or all of it with a few words edited: an edit uncovers its own
   word, and its neighbours only where fewer than n words separate it from another edit or
   from the item's start or end), or when they form a common span of at least `min_span`
   words (a long quotation of a long item). Coverage counts words, not n-grams: with n = 8
   one edit in a 20-word item breaks 8 of its 13 n-grams but uncovers one word. A short
   phrase the record shares with an item covers a few words of it: a 6-word phrase holds no
   8-gram, even with a word beside it that happens to follow it in the item too. Items
   shorter than n words are matched whole.

2. **rewordings** (`SemanticMatcher`). An item reworded (synonyms, clauses reordered,
   another template) shares few n-grams but keeps its meaning. Items and records are cut
   into passages (windows of as many sentences as a typical item has), embedded with the
   run's model, and a record is flagged when one of its passages is closer to an item
   passage than nearly any real passage is to any item passage: the bar is a high quantile
   (`quantile`) of the real passages' nearest-item similarities, learned from this run's real
   records, never a fixed cosine. The real records the n-gram test flagged are left out of
   that calibration, and the quantile is robust (`robust_quantile`: a normal tail fitted to
   the body, the passages above the bar set aside and the fit repeated), so that real
   records carrying reworded items, which the n-gram test cannot see, do not raise it.

The stage is an object with the `Stage` shape (name, reads, writes, reasons, setup, run);
`load_benchmarks` reads evaluation sets like any input (JSONL/JSON/CSV/Parquet, directories,
globs; a `text` field, a template or a `messages` list).
"""

from __future__ import annotations

import re
import string
import unicodedata
from statistics import NormalDist
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd


from .minhash import Shingler
from .records import Reason, is_real, reject, scorable
from .checks import Check
from .embed import ensure_embedder
from .ingest import InputError
from .stage import BaseStage, Embedder, RunContext, StageOutcome

# Records normalized, fingerprinted and looked up at once: large enough that numpy's
# per-call overhead vanishes, small enough that a batch's arrays stay in cache.
BATCH = 2048
# An n-gram found more often than this in the items is boilerplate of the benchmark ("which
# of the following statements is true"): it identifies no item, and its postings would
# multiply the work of every record that uses it. It is left out of the index (and counted).
MAX_POSTINGS = 64
# Items with fewer words than this are not matched by n-grams (a 3-word "item" is a common
# phrase); the semantic test still sees them.
MIN_ITEM_WORDS = 4
# Fewer real passages than this and no semantic bar can be learned.
MIN_CALIBRATION = 50
EXAMPLES_PER_BENCHMARK = 5
SPAN_WORDS_SHOWN = 24
ITEMS_LISTED = 1000
_U64 = np.uint64


# --------------------------------------------------------------------------- normalization

# Labels that frame a question/answer or a chat turn: dropped when they open a line or a
# sentence and end with a colon ("Q:", "**Answer:**", "### Instruction:", "assistant:"),
# and chat-template tokens with the role that follows them ("<|im_start|>user", "[INST]").
_ROLES = ("q", "a", "question", "answer", "user", "assistant", "system", "human", "gpt",
          "bot", "ai", "model", "input", "output", "instruction", "instructions", "response",
          "prompt", "completion", "context", "problem", "solution", "query", "reply",
          "final answer", "correct answer")
_ROLE = "|".join(sorted((re.escape(r).replace(r"\ ", r"\s+") for r in _ROLES),
                        key=len, reverse=True))
_FRAME = re.compile(
    rf"<\|[^|<>\n]{{0,40}}\|>[ \t]*(?:(?:{_ROLE})\b[ \t]*\n?)?"   # <|im_start|>user
    r"|\[/?INST\]|<</?SYS>>|</?s>"                                 # Llama-2 templates
    rf"|(?:^|(?<=[.?!\n]))[ \t]*[#*>_\-\[(]*[ \t]*(?:{_ROLE})[ \t]*\d*[ \t]*[*_\])]*[ \t]*[:：]",
    re.IGNORECASE | re.MULTILINE)
# Everything that is not a letter, digit or mark becomes a space (ASCII: a translate table,
# several times faster than a regex on the hot path).
_ASCII_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_NON_WORD = re.compile(r"[\W_]+")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n\s*")


def deframe(text: str) -> str:
    """The text without chat-template tokens and role or Q/A labels (the rest as is)."""
    if ":" not in text and "<" not in text and "[" not in text:
        return text
    return _FRAME.sub(" ", text)


def words(text: str) -> str:
    """The normalized word sequence both tests compare: framing dropped, NFKC, case-folded,
    punctuation stripped, whitespace collapsed; one space between words, and each character
    of a script written without spaces (CJK, Thai...) a word of its own."""
    text = deframe(text)
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_PUNCT).split())
    text = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return Shingler(1).shingle_text(" ".join(text.split()))


def sentences(text: str) -> list[str]:
    """Sentences (and lines) of a text, framing labels dropped."""
    return [s.strip() for s in _SENTENCE.split(deframe(text)) if s and s.strip()]


# --------------------------------------------------------------------------- items

@dataclass
class BenchmarkItems:
    """The items of one or more evaluation sets, in a fixed order."""

    benchmark: list[str]      # benchmark name of each item (file stem)
    item_id: list[str]        # id of each item within its benchmark
    text: list[str]
    unusable: dict[str, int] = field(default_factory=dict)  # items without text, per benchmark

    def __len__(self) -> int:
        return len(self.text)

    def label(self, i: int) -> str:
        return f"{self.benchmark[i]}:{self.item_id[i]}"

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(self.benchmark))


def _stems(paths: list[Path]) -> list[str]:
    """Benchmark names: the file stem (`mmlu.jsonl.gz` -> `mmlu`), or parent/stem when two
    files share a stem (`gsm8k/test`, `math/test`)."""
    def stem(p: Path) -> str:
        name = p.name
        for suffix in reversed(p.suffixes):
            name = name[: -len(suffix)] if name.endswith(suffix) else name
        return name or p.name
    stems = [stem(p) for p in paths]
    clash = {s for s in stems if stems.count(s) > 1}
    return [f"{p.parent.name}/{s}" if s in clash else s for p, s in zip(paths, stems)]


def load_benchmarks(specs, text_field: str = "text", text_template: str | None = None,
                    id_field: str = "id") -> BenchmarkItems:
    """Reads evaluation sets: paths, directories or globs (read like any input), a DataFrame
    (named "benchmark"), or a mapping of name -> DataFrame or paths. The text is `text_field`,
    else `text_template` over fields, else a `messages` list; the item id is `id_field`, else
    the item's 0-based position in its file. Items without usable text are skipped and
    counted; a benchmark without any usable item is an InputError."""
    from .ingest import _id_text, _texts_of, read_file, resolve_paths

    parts: list[tuple[str, pd.DataFrame, Path, list[str]]] = []
    if isinstance(specs, pd.DataFrame):
        specs = {"benchmark": specs}
    if isinstance(specs, (str, Path)):
        specs = [specs]
    named = specs.items() if isinstance(specs, Mapping) else [(None, s) for s in specs]
    pending: list[tuple[str | None, Path]] = []
    for name, spec in named:
        if isinstance(spec, pd.DataFrame):
            where = Path(f"<benchmark {name}>")
            parts.append((str(name), spec.reset_index(drop=True), where,
                          [f"row {i}" for i in range(1, len(spec) + 1)], [""] * len(spec)))
            continue
        for path in resolve_paths([spec] if isinstance(spec, (str, Path)) else spec):
            pending.append((None if name is None else str(name), path))
    for (name, path), stem in zip(pending, _stems([p for _, p in pending])):
        # An item holding a lone surrogate (the reader names the field) is not usable text.
        frame, locators, _, surrogates = read_file(path)
        parts.append((name or stem, frame, path, locators, surrogates))

    how = SimpleNamespace(text_field=text_field, text_template=text_template)
    items = BenchmarkItems([], [], [], {})
    for name, frame, path, locators, surrogates in parts:
        if len(frame) == 0:
            raise InputError(f"{path}: --benchmark file holds no item")
        header = "columns" if not locators or locators[0].startswith("row") else locators[0]
        try:
            texts, problems = _texts_of(frame, path, header, how)
        except InputError as exc:   # ingest names the records' option; this is the other
            raise InputError(str(exc).replace("--text-template", "--benchmark-text-template")
                             .replace("--text-field", "[benchmark] text_field")) from None
        ids = frame[id_field].tolist() if id_field in frame.columns else [None] * len(frame)
        seen: dict[str, str] = {}
        usable = 0
        for k, (text, problem, raw_id, loc, bad) in enumerate(zip(texts, problems, ids,
                                                                  locators, surrogates)):
            item_id = _id_text(raw_id, f"{path}: {loc}", id_field) or str(k)
            if item_id in seen:
                raise InputError(f"{path}: {loc}: field '{id_field}': duplicate item id "
                                 f"{item_id!r} (first at {seen[item_id]})")
            seen[item_id] = loc
            if problem or bad or not isinstance(text, str) or not text.strip():
                items.unusable[name] = items.unusable.get(name, 0) + 1
                continue
            items.benchmark.append(name)
            items.item_id.append(item_id)
            items.text.append(text)
            usable += 1
        if not usable:
            raise InputError(f"{path}: no item of this benchmark has usable text (field "
                             f"'{text_field}', a --benchmark-text-template or 'messages')")
    return items


# --------------------------------------------------------------------------- test 1: n-grams

@dataclass
class NgramMatches:
    """Per record: the best-covered item (-1: none), how many of its words lie in matched
    n-grams, how many of its n-grams matched, the longest common span (words) and where it
    starts in the item, and whether the record carries the item."""

    item: np.ndarray
    covered: np.ndarray
    matched: np.ndarray
    span: np.ndarray
    span_start: np.ndarray
    flagged: np.ndarray


class NgramIndex:
    """Word n-grams of benchmark items as sorted 64-bit fingerprints with postings.

    `fit(item_texts)` sets, per gram length, `keys_` (the sorted fingerprints, one per
    posting: a gram in k places of the items is there k times, next to each other),
    `post_item_`, `post_pos_` (the item and word position of each posting) and `filter_` (a
    bitmap that rules out most grams without a search): 18 bytes a posting; and
    `item_words_`, `item_grams_` (words and n-grams per item). `match(texts)` finds, for
    each record, the item it carries most of.
    """

    def __init__(self, n: int = 8, min_coverage: float = 0.5, min_span: int = 25,
                 max_postings: int = MAX_POSTINGS):
        self.n = n
        self.min_coverage = min_coverage
        self.min_span = min_span
        self.max_postings = max_postings

    # ---- building

    def fit(self, item_texts: Iterable[str]) -> "NgramIndex":
        normalized = [words(t) for t in item_texts]
        self.item_text_ = normalized
        counts = np.fromiter((t.count(" ") + 1 if t else 0 for t in normalized), np.int64,
                             len(normalized))
        self.item_words_ = counts
        # Each item's n-grams, or for a short item (MIN_ITEM_WORDS <= words < n) itself whole:
        # one gram whose length is its word count, looked up among records' grams of that length.
        self.gram_len_ = np.minimum(counts, self.n)
        self.item_grams_ = np.where(counts >= MIN_ITEM_WORDS, counts - self.gram_len_ + 1, 0)
        self.keys_, self.post_item_, self.post_pos_, self.filter_ = {}, {}, {}, {}
        self.dropped_common_ = 0
        self._shinglers: dict[int, Shingler] = {}
        for length in sorted(set(self.gram_len_[counts >= MIN_ITEM_WORDS].tolist())):
            members = np.flatnonzero((self.gram_len_ == length) & (counts >= MIN_ITEM_WORDS))
            prints, items, positions = [], [], []
            shingler = Shingler(int(length))
            for part in range(0, len(members), BATCH):
                rows = members[part:part + BATCH]
                fp, firsts = shingler.fingerprints([normalized[i] for i in rows])
                grams = np.diff(np.r_[firsts, len(fp)])
                prints.append(fp)
                items.append(np.repeat(rows, grams))
                positions.append(np.arange(len(fp)) - np.repeat(firsts, grams))
            self._store(int(length), np.concatenate(prints), np.concatenate(items),
                        np.concatenate(positions))
        return self

    def _store(self, length: int, prints: np.ndarray, items: np.ndarray,
               positions: np.ndarray) -> None:
        # Every position of a gram is a posting: a record holding a gram that an item repeats
        # covers each of its places in the item.
        order = np.lexsort((positions, items, prints))
        prints, items, positions = prints[order], items[order], positions[order]
        starts = np.flatnonzero(np.r_[True, prints[1:] != prints[:-1]])
        sizes = np.diff(np.r_[starts, len(prints)])
        common = np.repeat(sizes > self.max_postings, sizes)
        self.dropped_common_ += int((sizes > self.max_postings).sum())
        keys = self.keys_[length] = prints[~common]
        items, positions = items[~common], positions[~common]
        # A bit per 16 bits' worth of keys, set at each key's top bits: a record gram whose
        # bit is clear is not in the index (true of ~94% of the grams of a clean record), so
        # only the rest are searched. 2 bytes per posting.
        bits = max(10, int(np.ceil(np.log2(max(1, 16 * len(keys))))))
        top = (keys >> _U64(64 - bits)).astype(np.int64)
        bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
        np.bitwise_or.at(bitmap, top >> 3, (1 << (top & 7)).astype(np.uint8))
        self.filter_[length] = (bits, bitmap)
        self.post_item_[length] = items.astype(np.int32)
        self.post_pos_[length] = positions.astype(np.int32)

    @property
    def grams(self) -> int:
        return int(sum(len(v) for v in self.post_item_.values()))

    @property
    def nbytes(self) -> int:
        return int(sum(self.keys_[k].nbytes + self.post_item_[k].nbytes + self.post_pos_[k].nbytes
                       + self.filter_[k][1].nbytes for k in self.keys_))

    # ---- matching

    def match(self, texts: list[str | None]) -> NgramMatches:
        """The best-covered item of each record (None texts match nothing)."""
        n = len(texts)
        out = NgramMatches(np.full(n, -1, np.int64), np.zeros(n, np.int64),
                           np.zeros(n, np.int64), np.zeros(n, np.int64),
                           np.zeros(n, np.int64), np.zeros(n, bool))
        for start in range(0, n, BATCH):
            batch = texts[start:start + BATCH]
            normalized = [words(t) if isinstance(t, str) else "" for t in batch]
            self.match_normalized(normalized, out, start)
        return out

    def match_normalized(self, normalized: list[str], out: NgramMatches, offset: int) -> None:
        """`match` for one batch of texts already passed through `words`, into `out` at
        rows offset.. ."""
        hits = [self._hits(length, normalized) for length in self.keys_]
        hits = [h for h in hits if len(h[0])]
        if not hits:
            return
        rec, item, pos, glen = (np.concatenate(parts) for parts in zip(*hits))
        # Sort by (record, item, position): each (record, item) pair becomes one run.
        order = np.lexsort((pos, item, rec))
        rec, item, pos, glen = rec[order], item[order], pos[order], glen[order]
        new_pair = np.r_[True, (rec[1:] != rec[:-1]) | (item[1:] != item[:-1])]
        pair_start = np.flatnonzero(new_pair)
        step = np.diff(pos, prepend=-1)
        # Covered words: the union of the matched grams' word intervals [pos, pos + len).
        block = new_pair | (step >= glen)
        block_id = np.cumsum(block) - 1
        block_first = pos[block]
        block_cover = np.zeros(int(block.sum()), np.int64)
        np.maximum.at(block_cover, block_id, pos + glen - block_first[block_id])
        pair_of_block = (np.cumsum(new_pair) - 1)[block]
        covered = np.bincount(pair_of_block, weights=block_cover,
                              minlength=len(pair_start)).astype(np.int64)
        matched = np.diff(np.r_[pair_start, len(pos)])
        # Longest common span: the longest run of consecutive matched positions (each next
        # gram one word further) is run + len - 1 words shared in a row.
        run = new_pair | (step != 1)
        run_id = np.cumsum(run) - 1
        run_len = np.bincount(run_id)
        run_first = np.flatnonzero(run)
        run_pair = (np.cumsum(new_pair) - 1)[run_first]
        run_words = run_len + glen[run_first] - 1
        # the longest run of each pair (first of the longest, by position)
        by = np.lexsort((run_first, -run_words, run_pair))
        best_run = by[np.r_[True, run_pair[by][1:] != run_pair[by][:-1]]]
        span = run_words[best_run]
        span_start = pos[run_first[best_run]]

        p_rec, p_item = rec[pair_start], item[pair_start]
        words_in_item = self.item_words_[p_item]
        coverage = covered / np.maximum(words_in_item, 1)
        flagged = (coverage >= self.min_coverage) | (span >= self.min_span)
        # One item per record: a flagged one first, then the highest coverage, the longest
        # span, the first item.
        choice = np.lexsort((p_item, -span, -coverage, ~flagged, p_rec))
        first = choice[np.r_[True, p_rec[choice][1:] != p_rec[choice][:-1]]]
        rows = offset + p_rec[first]
        out.item[rows] = p_item[first]
        out.covered[rows] = covered[first]
        out.matched[rows] = matched[first]
        out.span[rows] = span[first]
        out.span_start[rows] = span_start[first]
        out.flagged[rows] = flagged[first]

    def _hits(self, length: int, normalized: list[str]):
        """(record, item, position, gram length) of every posting of every record n-gram of
        this length found in the index."""
        keys = self.keys_[length]
        empty = (np.zeros(0, np.int64),) * 4
        if not len(keys):
            return empty
        # One shingler per length, kept: it caches the powers its hashes need.
        shingler = self._shinglers.setdefault(length, Shingler(length))
        # Records too short for this length are one "gram", their whole text: harmless, a
        # whole text of fewer words never equals a gram of `length` words.
        fp, firsts = shingler.fingerprints(normalized)
        bits, bitmap = self.filter_[length]
        top = (fp >> _U64(64 - bits)).astype(np.int64)
        maybe = np.flatnonzero((bitmap[top >> 3] >> (top & 7).astype(np.uint8)) & 1)
        # Looked up in increasing order: each search starts near where the last one ended,
        # in the part of the index already in cache (5x faster than in text order).
        order = maybe[np.argsort(fp[maybe])]
        slot = np.searchsorted(keys, fp[order])
        np.minimum(slot, len(keys) - 1, out=slot)
        hit = keys[slot] == fp[order]
        if not hit.any():
            return empty
        found = order[hit]
        rec_of = np.searchsorted(firsts, found, side="right") - 1
        # the postings of a found gram: its first key (`searchsorted` found the leftmost)
        # up to the first key that differs
        lo = slot[hit]
        sizes = np.searchsorted(keys, fp[found], side="right") - lo
        total = int(sizes.sum())
        postings = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(total)
        rec = np.repeat(rec_of, sizes)
        item = self.post_item_[length][postings].astype(np.int64)
        pos = self.post_pos_[length][postings].astype(np.int64)
        return rec, item, pos, np.full(total, length, np.int64)

    def span_text(self, item: int, start: int, span: int) -> str:
        """The common span's words, as the item's normalized text (shortened)."""
        w = self.item_text_[item].split(" ")[start:start + span]
        shown = " ".join(w[:SPAN_WORDS_SHOWN])
        return shown + (" …" if len(w) > SPAN_WORDS_SHOWN else "")


# --------------------------------------------------------------------------- test 2: meaning

def passages(text: str, window: int, max_words: int) -> list[str]:
    """Windows of `window` consecutive sentences (stride 1), each at most `max_words` words
    (a window stops early rather than exceed it; a longer sentence is cut into pieces of
    that many words). A text of at most `window` sentences and `max_words` words is one
    passage, the text itself, so that its embedding is the one the embedding stage computes
    (served from the cache)."""
    parts = sentences(text)
    if len(parts) <= window and len(text.split()) <= max_words:
        return [text]
    pieces: list[list[str]] = []
    for s in parts:
        w = s.split()
        pieces += [w[i:i + max_words] for i in range(0, len(w), max_words)]
    out = []
    for i in range(max(1, len(pieces) - window + 1)):
        chosen = list(pieces[i])
        for piece in pieces[i + 1:i + window]:
            if len(chosen) + len(piece) > max_words:
                break
            chosen += piece
        out.append(" ".join(chosen))
    return out


def robust_quantile(values: np.ndarray, q: float, max_rounds: int = 50) -> float:
    """The q-quantile of `values` (real passages' similarity to their nearest item), fitted
    so that contaminated values at the top cannot raise it.

    A normal tail is fitted to the body: location the median, scale the distance from the
    median to the 84th percentile (one standard deviation for a normal), and the q-quantile
    read from the fit; then the values above that bar are set aside as presumed carriers of
    an item and the fit is repeated on the rest, until no value is set aside. Both anchors
    lie in the body, so a share e of contaminated passages near the top moves them only to
    the clean passages' 0.5 / (1 - e) and 0.84 / (1 - e) quantiles, and the rounds take the
    contaminated passages above the bar out of the fit; the plain 99.9th percentile sits
    among them as soon as e > 0.1%. On clean data the first round's bar stands (rounds set
    aside 1 - q of the values, which barely moves either anchor).
    """
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return float("nan")
    z = NormalDist().inv_cdf(q)
    anchors = [0.5, NormalDist().cdf(1.0)]
    kept = values
    for _ in range(max_rounds):
        median, upper = np.quantile(kept, anchors)
        bar = float(min(1.0, median + z * (upper - median)))
        # the bar only falls from round to round (fewer values at the top), so `inside`
        # shrinks until it holds; bar >= median keeps at least half of the values
        inside = values[values <= bar]
        if len(inside) == len(kept):
            break
        kept = inside
    return bar


class SemanticMatcher:
    """Nearest item passage of each record passage, by cosine of the run's embeddings.

    `fit(item_texts, embed)` embeds the items' passages (`item_vectors_`, `passage_item_`,
    `window_`); `score(texts, embed)` gives each record's best passage similarity, its item
    and the passage; `calibrate(real_passage_sims)` learns `threshold_`.
    """

    def __init__(self, quantile: float = 0.999, window: int = 0, max_words: int = 128):
        self.quantile = quantile
        self.window = window
        self.max_words = max_words

    def fit(self, item_texts: list[str], embed) -> "SemanticMatcher":
        cut = [sentences(t) for t in item_texts]
        counts = [max(1, len(c)) for c in cut]
        # Records are cut into windows as long as a typical item, so a window can hold an
        # item whole without much unrelated text around it.
        self.window_ = self.window or int(min(4, max(1, np.median(counts)))) if counts else 1
        item_passages, owner = [], []
        for i, text in enumerate(item_texts):
            clean = " ".join(cut[i]) or text
            found = passages(clean, max(self.window_, counts[i]), self.max_words)
            item_passages += found
            owner += [i] * len(found)
        self.passage_item_ = np.asarray(owner, dtype=np.int64)
        self.item_vectors_ = embed(item_passages) if item_passages else \
            np.zeros((0, 0), np.float32)
        return self

    def passage_sims(self, texts: list[str], embed) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray, list[str]]:
        """(similarity, item, record) per passage of the records, and the passages."""
        from .neighbours import NeighbourIndex

        cut, owner = [], []
        for r, text in enumerate(texts):
            found = passages(text, self.window_, self.max_words)
            cut += found
            owner += [r] * len(found)
        owner_arr = np.asarray(owner, dtype=np.int64)
        if not cut or not len(self.item_vectors_):
            return np.zeros(0, np.float32), np.zeros(0, np.int64), owner_arr, cut
        vectors = embed(cut)
        # exact blocked products while small, the embedding stage's HNSW index beyond (a
        # passage that rewords an item stands far above its other neighbours: found either way)
        sims, idx = NeighbourIndex(self.item_vectors_).search(vectors, 1)
        return sims[:, 0], self.passage_item_[idx[:, 0]], owner_arr, cut

    def calibrate(self, real_passage_sims: np.ndarray) -> "SemanticMatcher":
        self.calibration_size_ = int(len(real_passage_sims))
        self.threshold_ = robust_quantile(real_passage_sims, self.quantile)
        self.plain_quantile_ = float(np.quantile(real_passage_sims, self.quantile)) \
            if len(real_passage_sims) else float("nan")
        return self


def best_per_record(n: int, sims: np.ndarray, items: np.ndarray, owner: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each record's best passage: (similarity, item, passage index); -inf/-1 without one."""
    best_sim = np.full(n, -np.inf, np.float32)
    best_item = np.full(n, -1, np.int64)
    best_passage = np.full(n, -1, np.int64)
    if len(sims):
        order = np.lexsort((-sims, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        best_sim[owner[first]] = sims[first]
        best_item[owner[first]] = items[first]
        best_passage[owner[first]] = first
    return best_sim, best_item, best_passage


# --------------------------------------------------------------------------- stage

@dataclass
class DecontaminateSettings:
    """The stage's knobs (the `[benchmark]` config section carries the same names)."""

    ngram: int = 8
    min_coverage: float = 0.5
    min_span: int = 25
    semantic: bool = True
    quantile: float = 0.999
    window: int = 0
    max_passage_words: int = 128

    @classmethod
    def of(cls, cfg: Any) -> "DecontaminateSettings":
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__ if hasattr(cfg, k)})


class Decontaminate(BaseStage):
    """Rejects records of either source that carry an item of an evaluation set, whole, in
    part, reformatted, edited (word n-grams) or reworded (passage embeddings against a bar
    learned on the real records)."""

    name = "decontaminate"
    reads = ("text", "source", "reasons")
    writes = ("benchmark_match",)
    reasons = (Reason.BENCHMARK_OVERLAP,)

    def __init__(self, items: BenchmarkItems | None = None, embedder: Embedder | None = None,
                 settings: DecontaminateSettings | None = None, benchmarks=None):
        self.items = items
        self.embedder = embedder
        self.settings = settings
        self.benchmarks = benchmarks    # what to load when `items` is not given

    def setup(self, ctx: RunContext) -> None:
        """Reads the benchmarks (unless given), builds the n-gram index and picks the
        embedder (given, or the run's: the one the embed stage uses after it, so the model
        loads once, on first use)."""
        cfg = ctx.config.benchmark
        if self.settings is None:
            self.settings = DecontaminateSettings.of(cfg)
        if self.items is None:
            spec = self.benchmarks if self.benchmarks is not None else cfg.paths
            if spec is None or (isinstance(spec, (list, tuple)) and not spec):
                raise InputError("decontaminate: no benchmark given (--benchmark PATH)")
            self.items = load_benchmarks(spec, cfg.text_field, cfg.text_template, cfg.id_field)
        s = self.settings
        self.index_ = NgramIndex(s.ngram, s.min_coverage, s.min_span).fit(self.items.text)
        if self.embedder is None and s.semantic:
            self.embedder = ensure_embedder(ctx)

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:
        if not hasattr(self, "index_"):
            self.setup(ctx)
        s, items, index = self.settings, self.items, self.index_
        n = len(table)
        texts = table["text"].tolist()
        checked = scorable(table) & np.array([isinstance(t, str) for t in texts], bool)
        rows = np.flatnonzero(checked)
        # each record's best passage cosine to an item (NaN: not compared), for inspection
        self.similarity_ = np.full(n, np.nan, np.float32)
        if "benchmark_match" not in table:
            table["benchmark_match"] = pd.Series([None] * n, dtype=object, index=table.index)

        with ctx.progress.bar(len(rows), "decontaminate: n-grams") as update:
            found = NgramMatches(*(np.zeros(len(rows), d) for d in
                                   (np.int64,) * 5 + (bool,)))
            found.item[:] = -1
            for start in range(0, len(rows), BATCH):
                part = rows[start:start + BATCH]
                index.match_normalized([words(texts[i]) for i in part], found, start)
                update(len(part))
        by_ngram = np.zeros(n, bool)
        by_ngram[rows] = found.flagged
        match_item = np.full(n, -1, np.int64)
        match_item[rows] = np.where(found.flagged, found.item, -1)
        notes: dict[int, str] = {}
        spans: dict[int, str] = {}
        for k in np.flatnonzero(found.flagged):
            i, it = int(rows[k]), int(found.item[k])
            spans[i] = index.span_text(it, int(found.span_start[k]), int(found.span[k]))
            notes[i] = (f"carries benchmark item {items.label(it)}: {found.covered[k]} of its "
                        f"{index.item_words_[it]} words in matched {index.gram_len_[it]}-grams "
                        f"({found.matched[k]} of {index.item_grams_[it]} n-grams), longest "
                        f"common span {found.span[k]} words: \"{spans[i]}\"")

        details: dict[str, Any] = {
            "benchmarks": {name: int(sum(b == name for b in items.benchmark))
                           for name in items.names},
            "ngram": {"n": s.ngram, "min_coverage": s.min_coverage, "min_span": s.min_span,
                      "index_grams": index.grams, "index_bytes": index.nbytes,
                      "common_grams_dropped": index.dropped_common_,
                      "items_too_short": int((index.item_words_ < MIN_ITEM_WORDS).sum()),
                      "flagged": int(by_ngram.sum())}}
        if items.unusable:
            details["items_without_text"] = dict(items.unusable)
        checks: list[Check] = []
        by_meaning = np.zeros(n, bool)
        if s.semantic:
            by_meaning, semantic, check = self._semantic(table, texts, checked & ~by_ngram,
                                                         match_item, notes, spans, ctx)
            details["semantic"] = semantic
            if check is not None:
                checks.append(check)

        flagged = by_ngram | by_meaning
        labels = table["benchmark_match"].to_numpy(copy=True)
        for i in np.flatnonzero(flagged):
            labels[i] = items.label(int(match_item[i]))
        table["benchmark_match"] = pd.Series(labels, dtype=object, index=table.index)
        idx = np.flatnonzero(flagged)
        reject(table, flagged, Reason.BENCHMARK_OVERLAP, [notes[int(i)] for i in idx])
        details["per_benchmark"] = self._per_benchmark(table, flagged, by_ngram, match_item,
                                                       spans)
        return StageOutcome(details=details, checks=checks)

    def _semantic(self, table, texts, candidates, match_item, notes, spans, ctx):
        """Test 2 on the records the n-gram test left: (flagged, details, check or None)."""
        from .embed import embed_texts

        s, items = self.settings, self.items
        n = len(table)
        flagged = np.zeros(n, bool)

        def embed(batch: list[str]) -> np.ndarray:
            return embed_texts(batch, self.embedder, ctx.progress)

        matcher = SemanticMatcher(s.quantile, s.window, s.max_passage_words)
        matcher.fit(items.text, embed)
        rows = np.flatnonzero(candidates)
        sims, best, owner, cut = matcher.passage_sims([texts[i] for i in rows], embed)
        real = is_real(table)[rows][owner] if len(owner) else np.zeros(0, bool)
        detail: dict[str, Any] = {"window_sentences": matcher.window_,
                                  "item_passages": int(len(matcher.passage_item_)),
                                  "record_passages": int(len(cut)),
                                  "quantile": s.quantile}
        if int(real.sum()) < MIN_CALIBRATION:
            detail["skipped"] = (f"too few real passages to learn the bar: {int(real.sum())} "
                                 f"(need {MIN_CALIBRATION})")
            check = Check("decontaminate.semantic_calibrated", False, int(real.sum()),
                          MIN_CALIBRATION,
                          f"the semantic benchmark test could not run: {detail['skipped']}; "
                          f"add real records or set [benchmark] semantic = false")
            return flagged, detail, check
        matcher.calibrate(sims[real])
        bar = matcher.threshold_
        detail.update(threshold=round(bar, 4), plain_quantile=round(matcher.plain_quantile_, 4),
                      calibration_passages=matcher.calibration_size_,
                      real_passages_above=int((sims[real] > bar).sum()))
        rec_sim, rec_item, rec_passage = best_per_record(len(rows), sims, best, owner)
        self.similarity_[rows] = rec_sim
        hit = rec_sim > bar
        for k in np.flatnonzero(hit):
            i = int(rows[k])
            flagged[i] = True
            match_item[i] = rec_item[k]
            passage = cut[int(rec_passage[k])]
            shown = " ".join(passage.split()[:SPAN_WORDS_SHOWN])
            spans[i] = shown + (" …" if len(passage.split()) > SPAN_WORDS_SHOWN else "")
            notes[i] = (f"a passage rewords benchmark item {items.label(int(rec_item[k]))}: "
                        f"cosine {rec_sim[k]:.3f} > {bar:.3f}, the robust {s.quantile:g} "
                        f"quantile of real passages' nearest-item similarity: \"{spans[i]}\"")
        detail["flagged"] = int(hit.sum())
        return flagged, detail, None

    def _per_benchmark(self, table, flagged, by_ngram, match_item, spans) -> dict[str, Any]:
        items = self.items
        real = is_real(table)
        ids, texts = table["id"].tolist(), table["text"].tolist()
        out: dict[str, Any] = {}
        for name in items.names:
            mine = flagged & np.array([m >= 0 and items.benchmark[m] == name
                                       for m in match_item], bool)
            seen = sorted({items.item_id[int(m)] for m in match_item[mine]},
                          key=lambda x: (len(x), x))
            examples = []
            for i in np.flatnonzero(mine)[:EXAMPLES_PER_BENCHMARK]:
                text = texts[i] or ""
                examples.append({"id": ids[i], "source": table["source"].iat[i],
                                 "item": items.label(int(match_item[i])),
                                 "test": "ngram" if by_ngram[i] else "semantic",
                                 "matched": spans.get(int(i), ""),
                                 "text": text[:300] + ("…" if len(text) > 300 else "")})
            out[name] = {"items": int(sum(b == name for b in items.benchmark)),
                         "items_seen": len(seen), "items_seen_list": seen[:ITEMS_LISTED],
                         "records_removed": {"real": int((mine & real).sum()),
                                             "synthetic": int((mine & ~real).sum())},
                         "by_test": {"ngram": int((mine & by_ngram).sum()),
                                     "semantic": int((mine & ~by_ngram).sum())},
                         "examples": examples}
        return out
