"""Decontamination benchmark: benchmark items planted into real and synthetic records.

    apt-get install dict-foldoc fortunes wordnet-base     # once: the source texts
    python benchmarks/decontamination.py                  # accuracy, both tests, MiniLM
    python benchmarks/decontamination.py --choose-ngram   # the measurement behind n = 8
    python benchmarks/decontamination.py --speed 300000   # records/s against reading them

The corpus is rebuilt deterministically (seed 0) into benchmarks/generated/ (git-ignored):

- **items** (the evaluation set, `benchmark.jsonl`): question/answer pairs from the Free
  On-line Dictionary of Computing (Debian `dict-foldoc`): "What is TERM?" and the first
  paragraph of its definition (15-60 words), markup removed. 1,000 items by default.
- **clean records**: FOLDOC entries *not* in the benchmark and sharing no 10-word run with an
  item (same domain, same "What is X?"
  framing for a third of them: the hardest clean records there are for the semantic test)
  and fortunes (Debian `fortunes`: computers, science, people, ...), real and synthetic.
- **carriers**, each carrying one item, in every form, in real and synthetic records:
  `verbatim` (the item, alone or between two host texts); `partial` (the answer alone, or a
  contiguous half to 90% of the item, between host texts); `reformatted` (Q:/A:, Question:/
  Answer:, chat turns as synthgate renders `messages`, ChatML, Alpaca "### Instruction:",
  then upper/lower/title case, punctuation dropped or doubled, whitespace changed);
  `edited` (max(1, round(5% of the words)) words substituted, deleted or inserted);
  `reworded` (paraphrase without a language model, see `reword`: the question rewritten by
  one of six templates, half of the answer's content words replaced by a WordNet synonym of
  their most frequent sense, function phrases rewritten, clauses or sentences reordered, no
  run of 7 of the item's words left, one of three frames); `reworded_85` (the same with 85%
  of the content words replaced: a stress case, no target).
- **near misses**: a clean record with one 6-word phrase of an item's answer inserted.

Real records carry items too (a real corpus can be contaminated): 30 carriers per form among
~1,700 real records (the 60 reworded ones, which the n-gram test cannot see, stay among the
real passages the semantic bar is learned from: ~6% of them), 160 per form among the
synthetic.

Printed, in the same run: the share of each form caught (and of near misses / clean records
flagged) by synthgate's stage (n-gram test, semantic test, both) and by a plain word-13-gram
matcher in the style of lm-evaluation-harness / datatrove (lower-case, ASCII punctuation
stripped, a record flagged when it shares any 13-gram with an item).

The embeddings (all-MiniLM-L6-v2, bundled) are cached in benchmarks/generated/, so a rerun
skips the encoder; the first run embeds ~5,000 passages (a few minutes on two busy cores).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import string
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthgate.config import Config  # noqa: E402
from synthgate.decontaminate import (Decontaminate, DecontaminateSettings,  # noqa: E402
                                    NgramIndex, NgramMatches, load_benchmarks, words)
from synthgate.ingest import read_file  # noqa: E402
from synthgate.records import new_table  # noqa: E402
from synthgate.stage import RunContext  # noqa: E402

DATA = ROOT / "benchmarks" / "generated" / "decontamination"
FOLDOC = Path("/usr/share/dictd/foldoc")
FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
FORTUNE_FILES = ("computers", "science", "literature", "people", "education", "wisdom", "work",
                 "platitudes", "politics", "humorists", "miscellaneous", "law", "medicine",
                 "men-women", "food", "fortunes", "love", "sports", "kids", "art", "linux")
FORMS = ("verbatim", "partial", "reformatted", "edited", "reworded", "reworded_85")
TARGETS = {"verbatim": (">=", 0.99), "partial": (">=", 0.99), "reformatted": (">=", 0.99),
           "edited": (">=", 0.95), "reworded": (">=", 0.80), "reworded_85": ("", float("nan")),
           "near_miss": ("<=", 0.02),
           "clean": ("<=", 0.005)}
TEMPLATE = "{question}\n{answer}"


# --------------------------------------------------------------------------- sources

def _need(path: Path, package: str) -> None:
    if not path.exists():
        sys.exit(f"{path} not found: install the source with `apt-get install {package}`")


def foldoc_entries() -> list[tuple[str, str]]:
    """(term, first paragraph of the definition, markup removed), one per entry, in
    dictionary order; only definitions of 15-60 words that are prose."""
    index, dz = FOLDOC.with_suffix(".index"), FOLDOC.with_suffix(".dict.dz")
    _need(dz, "dict-foldoc")
    b64 = {c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase
                                      + string.digits + "+/")}

    def number(s: str) -> int:
        v = 0
        for c in s:
            v = v * 64 + b64[c]
        return v

    data = gzip.open(dz).read()   # offsets count bytes
    seen, out = set(), []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00database"):
            continue
        offset, length = number(parts[1]), number(parts[2])
        if offset in seen:
            continue
        seen.add(offset)
        entry = data[offset:offset + length].decode("utf-8", "replace")
        head, _, body = entry.partition("\n\n")
        term = head.split("\n")[0].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9 .+#'-]{1,40}", term):
            continue
        para = body.strip().split("\n\n")[0]
        para = re.sub(r"\{\(?(?:https?|ftp|mailto|news):[^}]*\}", "", para)
        para = re.sub(r"<[^>]*>", "", para)
        para = re.sub(r"\{([^}]*)\}", r"\1", para)
        para = re.sub(r"^\s*\d+\.\s*", "", para)
        para = re.sub(r"\(\d{4}-\d\d-\d\d\)", "", para)
        para = " ".join(para.split())
        n = len(para.split())
        if not 15 <= n <= 60 or "http" in para or para.lower().startswith(("see ", "compare")):
            continue
        if sum(c.isalpha() or c == " " for c in para) < 0.85 * len(para):
            continue
        out.append((term, para))
    return out


def fortunes() -> list[str]:
    """Fortunes of 8-80 words that are prose (no ASCII art, no tables), in file order."""
    _need(FORTUNES / "science", "fortunes")
    out = []
    for name in FORTUNE_FILES:
        text = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
        for piece in text.split("\n%\n"):
            flat = " ".join(piece.split())
            n = len(flat.split())
            if 8 <= n <= 80 and sum(c.isalpha() or c == " " for c in flat) >= 0.85 * len(flat) \
                    and "  " not in piece.strip().split("\n")[0]:
                out.append(flat)
    return list(dict.fromkeys(out))


class Thesaurus:
    """WordNet (Debian `wordnet-base`): for a word, the other single-word lemmas of its most
    frequent sense, per part of speech; `-s`, `-ed` and `-ing` forms through their stem."""

    def __init__(self):
        _need(WORDNET / "index.noun", "wordnet-base")
        self.first_sense: dict[str, dict[str, list[str]]] = {}
        for pos in ("noun", "verb", "adj", "adv"):
            synsets = {}
            for line in (WORDNET / f"data.{pos}").read_text(errors="replace").splitlines():
                if line.startswith(" "):
                    continue
                f = line.split(" ")
                count = int(f[3], 16)
                synsets[f[0]] = [re.sub(r"\(.*\)$", "", f[4 + 2 * k]).lower()
                                 for k in range(count)]
            senses = self.first_sense[pos] = {}
            for line in (WORDNET / f"index.{pos}").read_text(errors="replace").splitlines():
                if line.startswith(" "):
                    continue
                f = line.split(" ")
                lemma, count = f[0], int(f[2])
                first = f[-count]   # the offsets close the line, most frequent sense first
                alts = [w for w in synsets.get(first, []) if w != lemma and w.isalpha()]
                if alts:
                    senses[lemma] = alts

    def _pick(self, pos: str, stem: str, rng) -> str | None:
        alts = self.first_sense[pos].get(stem)
        return alts[int(rng.integers(len(alts)))] if alts else None

    def synonym(self, word: str, rng: np.random.Generator) -> str | None:
        w = word.lower()
        alt = None
        if w.endswith("ing") and len(w) > 5:
            for stem in (w[:-3], w[:-3] + "e"):
                alt = alt or self._pick("verb", stem, rng)
            alt = alt and (alt[:-1] if alt.endswith("e") else alt) + "ing"
        elif w.endswith("ed") and len(w) > 4:
            for stem in (w[:-1], w[:-2]):
                alt = alt or self._pick("verb", stem, rng)
            alt = alt and alt + ("d" if alt.endswith("e") else "ed")
        elif w.endswith("s") and not w.endswith("ss") and len(w) > 4:
            alt = self._pick("noun", w[:-1], rng) or self._pick("verb", w[:-1], rng)
            alt = alt and alt + ("es" if alt.endswith(("s", "x", "ch", "sh")) else "s")
        if alt is None:
            for pos in ("noun", "adj", "verb", "adv"):
                alt = alt or self._pick(pos, w, rng)
        if not alt:
            return None
        return alt.capitalize() if word[:1].isupper() else alt


# --------------------------------------------------------------------------- forms

STOP = set("""a an the of to in on for by with and or but is are was were be been being it its
this that these those as at from which who whom whose what when where why how not no
can may might must will would should could do does did has have had i you he she we they
""".split())
QUESTION_TEMPLATES = ("Could you explain what {t} is?", "Define {t}.", "What does {t} mean?",
                      "Explain the term {t}.", "I'd like to know what {t} refers to.",
                      "What is meant by {t}?")


# Phrase-level rewrites a paraphrase makes (function words a thesaurus does not touch).
PHRASES = (("a set of", "a collection of"), ("a kind of", "a sort of"), ("a type of", "a kind of"),
           ("such as", "like"), ("in order to", "so as to"), ("used to", "employed to"),
           ("used in", "employed in"), ("used by", "employed by"), ("used for", "employed for"),
           ("based on", "built on"), ("which allows", "that lets"), ("that allows", "which lets"),
           ("allows", "lets"), ("is a", "is one"), ("is an", "is one"), ("can be", "may be"),
           ("part of", "a component of"), ("made by", "produced by"), ("consists of",
           "is made up of"), ("for example", "for instance"), ("e.g.", "for instance"),
           ("i.e.", "that is,"), ("also", "additionally"), ("which is", "that is"),
           ("which are", "that are"), ("known as", "called"), ("designed to", "meant to"),
           ("developed by", "created by"), ("written in", "implemented in"),
           ("between", "among"), ("often", "frequently"), ("usually", "typically"),
           ("provides", "offers"), ("provide", "offer"), ("each", "every"), ("many", "numerous"),
           ("some", "certain"), ("other", "different"), ("most", "the majority of"),
           ("and", "as well as"), ("with", "along with"), ("the", "this"))
FILLERS = ("essentially", "in effect", "basically", "notably", "in practice", "generally")


def reword(term: str, answer: str, thesaurus: Thesaurus, rng: np.random.Generator,
           synonym_share: float = 0.5) -> str:
    """A paraphrase of "What is TERM? ANSWER" without a language model, in four steps: (1)
    `synonym_share` of the answer's content words (4+ letters, not the term) that WordNet
    knows are swapped for a lemma of their most frequent sense (the form `reworded_85` swaps
    85%: WordNet's senses then garble much of the meaning, "housing large numbers" ->
    "caparison orotund turns", a stress case beyond a paraphrase); (2) about 60% of the
    function phrases of `PHRASES` are rewritten ("a set of" -> "a collection of", "which
    allows" -> "that lets"); (3) the answer's sentences are rotated, or in one sentence the
    clauses around its first comma or semicolon are swapped; (4) a run of 7 words left
    unchanged gets an adverb ("essentially", ...) inside it, as a rewrite would rarely keep
    7 words in a row. The question is rewritten by one of six templates and the whole put in
    one of three frames."""
    term_words = {w.lower() for w in term.split()}
    tokens, changed = [], []
    words_in = answer.split()
    k = 0
    while k < len(words_in):
        tok = words_in[k]
        for old, new in PHRASES:
            n = len(old.split())
            if " ".join(words_in[k:k + n]).lower() == old and rng.random() < 0.6:
                tokens += new.split()
                changed += [True] * len(new.split())
                k += n
                break
        else:
            m = re.fullmatch(r"([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)", tok)
            alt = None
            if m and len(m.group(2)) >= 4 and m.group(2).lower() not in STOP \
                    and m.group(2).lower() not in term_words and rng.random() < synonym_share:
                alt = thesaurus.synonym(m.group(2), rng)
            tokens.append(m.group(1) + alt + m.group(3) if alt else tok)
            changed.append(alt is not None)
            k += 1
    out, run = [], 0
    for tok, was_changed in zip(tokens, changed):
        run = 0 if was_changed else run + 1
        if run == 7:
            out.append(FILLERS[int(rng.integers(len(FILLERS)))])
            run = 3
        out.append(tok)
    body = " ".join(out)
    parts = [p for p in re.split(r"(?<=[.!?])\s+", body) if p]
    if len(parts) > 1:
        body = " ".join(parts[1:] + parts[:1])
    else:
        m = re.search(r"[,;]\s+", body)
        if m and 3 <= len(body[:m.start()].split()) and 3 <= len(body[m.end():].split()):
            first, rest = body[:m.start()], body[m.end():].rstrip(".")
            body = f"{rest[:1].upper()}{rest[1:]}; {first[:1].lower()}{first[1:]}."
    question = QUESTION_TEMPLATES[int(rng.integers(len(QUESTION_TEMPLATES)))].format(t=term)
    frame = int(rng.integers(3))
    if frame == 0:
        return f"{question} {body}"
    if frame == 1:
        return f"{question}\n\n{body} That is what {term} refers to."
    return f"Here is a short explanation of {term}. {body}"


def reformat(question: str, answer: str, rng: np.random.Generator) -> str:
    frames = (f"Q: {question}\nA: {answer}",
              f"Question: {question}\nAnswer: {answer}",
              f"user: {question}\n\nassistant: {answer}",
              f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>",
              f"### Instruction:\n{question}\n\n### Response:\n{answer}",
              f"**Question:** {question}  **Answer:** {answer}")
    text = frames[int(rng.integers(len(frames)))]
    change = int(rng.integers(5))
    if change == 0:
        text = text.upper()
    elif change == 1:
        text = text.lower()
    elif change == 2:
        text = re.sub(r"[,.;:!?()\"']", "", text.replace(": ", ":: ", 1)) if rng.random() < .5 \
            else re.sub(r"([,.;!?])", r"\1\1", text)
    elif change == 3:
        text = re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n", " \t "]), text)
    else:
        text = " ".join(w.capitalize() for w in text.split(" "))
    return text


def edit(text: str, vocab: list[str], rng: np.random.Generator, share: float = 0.05) -> str:
    tokens = text.split()
    for _ in range(max(1, round(share * len(tokens)))):
        at = int(rng.integers(len(tokens)))
        op = int(rng.integers(3))
        if op == 0:
            tokens[at] = vocab[int(rng.integers(len(vocab)))]
        elif op == 1 and len(tokens) > 2:
            del tokens[at]
        else:
            tokens.insert(at, vocab[int(rng.integers(len(vocab)))])
    return " ".join(tokens)


def build(items_n: int, per_form_real: int, per_form_synth: int, clean_real: int,
          clean_synth: int, near_misses: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, records): records have text, source, form, item (index or -1)."""
    rng = np.random.default_rng(seed)
    entries = foldoc_entries()
    order = rng.permutation(len(entries))
    chosen = [entries[i] for i in order[:items_n]]
    # FOLDOC repeats sentences between sister entries ("The other three official guides are
    # ..."): a held-out entry that shares a run of 10 words with an item is not clean text,
    # so it is left out of the clean pool (a plain set test, independent of the stage).
    baseline = ThirteenGram(10).fit([f"What is {t}? {a}" for t, a in chosen])
    held_out = [entries[i] for i in order[items_n:]
                if not baseline.flagged([f"What is {entries[i][0]}? {entries[i][1]}"])[0]]
    items = pd.DataFrame({"id": [f"foldoc-{k}" for k in range(len(chosen))],
                          "question": [f"What is {t}?" for t, _ in chosen],
                          "answer": [a for _, a in chosen], "term": [t for t, _ in chosen]})
    quips = fortunes()
    rng.shuffle(quips)
    vocab = sorted({w for q in quips for w in q.split() if w.isalpha()})
    thesaurus = Thesaurus()

    def clean_text(k: int) -> str:
        if k % 3 == 2:   # a fortune
            return quips[(k // 3) % len(quips)]
        term, definition = held_out[(k // 3 * 2 + k % 3) % len(held_out)]
        style = int(rng.integers(4))
        if style == 0:
            return f"What is {term}?\n{definition}"
        if style == 1:
            return f"{term}: {definition}"
        if style == 2:
            return f"user: Tell me about {term}.\n\nassistant: {definition}"
        return definition

    host_k = iter(range(10**9))

    def host() -> str:
        return clean_text(next(host_k) + 7 * 10**5)

    records = []
    clean_k = iter(range(10**9))
    for source, n in (("real", clean_real), ("synthetic", clean_synth)):
        for _ in range(n):
            records.append((clean_text(next(clean_k)), source, "clean", -1))
    for source, per in (("real", per_form_real), ("synthetic", per_form_synth)):
        for form in FORMS:
            for _ in range(per):
                i = int(rng.integers(len(items)))
                q, a, term = items.at[i, "question"], items.at[i, "answer"], items.at[i, "term"]
                whole = f"{q}\n{a}"
                if form == "verbatim":
                    text = whole if rng.random() < 0.5 else f"{host()}\n\n{whole}\n\n{host()}"
                elif form == "partial":
                    if rng.random() < 0.5:
                        part = a
                    else:
                        w = whole.split()
                        size = int(np.ceil(rng.uniform(0.5, 0.9) * len(w)))
                        start = int(rng.integers(len(w) - size + 1))
                        part = " ".join(w[start:start + size])
                    text = f"{host()} {part} {host()}"
                elif form == "reformatted":
                    text = reformat(q, a, rng)
                elif form == "edited":
                    text = edit(whole, vocab, rng)
                    if rng.random() < 0.5:
                        text = f"{host()}\n\n{text}"
                else:
                    text = reword(term, a, thesaurus, rng, 0.85 if form == "reworded_85" else 0.5)
                    if rng.random() < 0.5:
                        text = f"{host()}\n\n{text}"
                records.append((text, source, form, i))
    for k in range(near_misses):
        i = int(rng.integers(len(items)))
        w = items.at[i, "answer"].split()
        start = int(rng.integers(max(1, len(w) - 5)))
        phrase = " ".join(w[start:start + 6]).strip(",.;:")
        base = clean_text(next(clean_k)).split(" ")
        at = int(rng.integers(1, max(2, len(base))))
        text = " ".join(base[:at] + [phrase] + base[at:])
        records.append((text, "real" if k % 2 else "synthetic", "near_miss", i))
    frame = pd.DataFrame(records, columns=["text", "source", "form", "item"])
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame.insert(0, "id", [f"r{k}" for k in range(len(frame))])
    return items, frame


def write_corpus(items: pd.DataFrame, records: pd.DataFrame) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    items[["id", "question", "answer"]].to_json(DATA / "benchmark.jsonl", orient="records",
                                                lines=True, force_ascii=False)
    for source in ("real", "synthetic"):
        records[records.source == source].to_json(DATA / f"{source}.jsonl", orient="records",
                                                  lines=True, force_ascii=False)
    return DATA / "benchmark.jsonl"


# --------------------------------------------------------------------------- baseline

class ThirteenGram:
    """lm-evaluation-harness / datatrove style: lower-case, ASCII punctuation stripped,
    whitespace split; a record is contaminated when it shares any word 13-gram with an item
    (items shorter than 13 words never match)."""

    def __init__(self, n: int = 13):
        self.n = n
        self.table = str.maketrans({c: " " for c in string.punctuation})

    def grams(self, text: str) -> set:
        w = text.lower().translate(self.table).split()
        return {" ".join(w[i:i + self.n]) for i in range(len(w) - self.n + 1)}

    def fit(self, item_texts: list[str]) -> "ThirteenGram":
        self.owner = {}
        for k, t in enumerate(item_texts):
            for g in self.grams(t):
                self.owner.setdefault(g, k)
        return self

    def flagged(self, texts: list[str]) -> np.ndarray:
        return np.array([any(g in self.owner for g in self.grams(t)) for t in texts], bool)


# --------------------------------------------------------------------------- evaluation

def rates(records: pd.DataFrame, flagged: np.ndarray, matched_item: np.ndarray | None = None
          ) -> dict[str, float]:
    """Share flagged per form; a carrier counts as caught only when the right item is named
    (when the method names one)."""
    out = {}
    for form in FORMS + ("near_miss", "clean"):
        rows = (records.form == form).to_numpy()
        hit = flagged[rows]
        if matched_item is not None and form in FORMS:
            hit = hit & (matched_item[rows] == records.item.to_numpy()[rows])
        out[form] = float(hit.mean()) if rows.any() else float("nan")
    return out


def table_line(name: str, r: dict[str, float]) -> str:
    return f"{name:<28}" + "".join(f"{r[f]:>12.3f}" for f in FORMS + ("near_miss", "clean"))


def header() -> str:
    return f"{'':<28}" + "".join(f"{f:>12}" for f in FORMS + ("near_miss", "clean"))


def targets_line() -> str:
    return f"{'target':<28}" + "".join(
        f"{TARGETS[f][0] + format(TARGETS[f][1], 'g') if TARGETS[f][0] else '-':>12}"
        for f in FORMS + ("near_miss", "clean"))


def choose_ngram(items: pd.DataFrame, records: pd.DataFrame, seed: int = 1) -> None:
    """The n-gram test alone at several n (coverage rule), and the 'any n-gram' rule; then
    the margins: items with 10% and 20% of their words edited (smaller n survives more
    edits), near misses sharing 7 or 8 words of the item, and near misses sharing a 6-word
    phrase with an 11-word item (only n > 6 keeps a 6-word phrase from counting whatever the
    item's length). n = 8 is the smallest n with no near miss of either kind, and of those the
    one that survives the most edits (n = 7 flags a near miss where a word beside the phrase
    also matches, and survives 10%-edits only a little better)."""
    item_texts = [f"{q}\n{a}" for q, a in zip(items.question, items.answer)]
    texts = records.text.tolist()
    print("n-gram test alone, per n: share caught / flagged (right item required)")
    print(header())
    for n in (5, 6, 7, 8, 9, 10, 13):
        index = NgramIndex(n).fit(item_texts)
        t = time.perf_counter()
        m = index.match(texts)
        secs = time.perf_counter() - t
        print(table_line(f"n={n} coverage>=0.5|span>=25", rates(records, m.flagged, m.item))
              + f"   {len(texts) / secs:,.0f} rec/s")
    for n in (8, 13):
        index = NgramIndex(n).fit(item_texts)
        m = index.match(texts)
        print(table_line(f"n={n} any n-gram", rates(records, m.matched > 0)))
    print(targets_line())

    rng = np.random.default_rng(seed)
    vocab = sorted({w for t in texts for w in t.split() if w.isalpha()})
    hosts = records[records.form == "clean"].text.tolist()
    picks = rng.integers(len(items), size=400)
    stress: dict[str, list[str]] = defaultdict(list)
    for k, i in enumerate(picks):
        stress["edited 10%"].append(edit(item_texts[i], vocab, rng, 0.10))
        stress["edited 20%"].append(edit(item_texts[i], vocab, rng, 0.20))
        w = items.answer[i].split()
        for extra in (1, 2):
            start = int(rng.integers(max(1, len(w) - 5 - extra)))
            base = hosts[k % len(hosts)].split(" ")
            at = int(rng.integers(1, max(2, len(base))))
            stress[f"near miss {6 + extra} words"].append(
                " ".join(base[:at] + w[start:start + 6 + extra] + base[at:]))
    # Short items (11 words, a trivia question's length): a 6-word phrase is more than half
    # of one, so only an n above 6 keeps it from counting.
    short = [" ".join(words(t).split()[:11]) for t in item_texts]
    near_short = []
    for k, i in enumerate(picks):
        start = int(rng.integers(0, 6))
        # after the host, not inside it: a host opening "What is" before the phrase "TERM
        # is a ..." would rebuild 8 words of the item
        near_short.append(f"{hosts[(k + 7) % len(hosts)]} {' '.join(short[i].split()[start:start + 6])}")
    print()
    print("margins, n-gram test alone: " + ", ".join(stress) + ", near miss of an 11-word item")
    for n in (5, 6, 7, 8, 9, 10, 13):
        index = NgramIndex(n).fit(item_texts)
        cells = []
        for name, batch in stress.items():
            m = index.match(batch)
            hit = m.flagged & (m.item == picks) if name.startswith("edited") else m.flagged
            cells.append(f"{name} {hit.mean():.3f}")
        m = NgramIndex(n).fit(short).match(near_short)
        cells.append(f"11-word items {m.flagged.mean():.3f}")
        print(f"n={n:<3} " + "   ".join(cells))


def run_stage(loaded, records: pd.DataFrame, embedder, semantic: bool):
    """The stage on these records: (stage, outcome, flagged, matched item, by n-gram test,
    table, seconds)."""
    stage = Decontaminate(loaded, embedder=embedder,
                          settings=DecontaminateSettings(semantic=semantic))
    table = new_table(records.id.tolist(), records.source.tolist(), records.text.tolist())
    ctx = RunContext(config=Config())
    t = time.perf_counter()
    stage.setup(ctx)
    outcome = stage.run(table, ctx)
    secs = time.perf_counter() - t
    label_to_item = {loaded.label(k): k for k in range(len(loaded))}
    matched = np.array([label_to_item.get(m, -1) if m else -1
                        for m in table.benchmark_match], np.int64)
    by_ngram = np.array([e.startswith("carries") for e in table.explanation], bool)
    return stage, outcome, ~table.kept.to_numpy(), matched, by_ngram, table, secs


def accuracy(items: pd.DataFrame, records: pd.DataFrame, bench_path: Path,
             semantic: bool) -> None:
    from synthgate.embed import ModelEmbedder

    loaded = load_benchmarks([bench_path], text_template=TEMPLATE)
    embedder = ModelEmbedder(cache_dir=DATA / "embeddings")
    stage, outcome, flagged, matched, by_ngram, table, secs = run_stage(
        loaded, records, embedder, semantic)
    baseline = ThirteenGram().fit(loaded.text).flagged(records.text.tolist())

    d = outcome.details
    print(f"stage: {secs:.1f}s for {len(records)} records against {len(loaded)} items "
          f"(encoded {embedder.encoded}, from cache {embedder.cached})")
    print(f"n-gram index: {d['ngram']['index_grams']:,} grams, {d['ngram']['index_bytes']:,} B")
    if "semantic" in d:
        s = d["semantic"]
        print("semantic: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    print()
    print("share of records caught (carriers: right item named) / flagged (near miss, clean)")
    print(header())
    print(table_line("synthgate (both tests)", rates(records, flagged, matched)))
    print(table_line("  n-gram test", rates(records, flagged & by_ngram, matched)))
    if semantic:
        print(table_line("  semantic test", rates(records, flagged & ~by_ngram, matched)))
        # the same test with the plain quantile of the (contaminated) real passages as bar
        plain = d["semantic"]["plain_quantile"]
        print(table_line(f"  semantic, plain bar {plain:.3f}",
                         rates(records, ~by_ngram & (stage.similarity_ > plain), matched)))
    print(table_line("13-gram baseline", rates(records, baseline)))
    print(targets_line())
    for source in ("real", "synthetic"):
        rows = (records.source == source).to_numpy()
        sub = records[rows].reset_index(drop=True)
        print(table_line(f"synthgate, {source} only", rates(sub, flagged[rows], matched[rows])))
    if semantic:
        # the bar learned from clean real records: the same corpus without the real carriers
        clean_real = ~((records.source == "real") & records.form.isin(FORMS)).to_numpy()
        sub = records[clean_real].reset_index(drop=True)
        _, out2, flagged2, matched2, _, _, _ = run_stage(loaded, sub, embedder, semantic)
        print(table_line("synthgate, real set clean", rates(sub, flagged2, matched2))
              + f"   bar {out2.details['semantic']['threshold']}, plain "
                f"{out2.details['semantic']['plain_quantile']}")
    print()
    missed = records[(records.form.isin(FORMS)).to_numpy() & ~flagged]
    if len(missed):
        print(f"missed carriers, by form: {missed.form.value_counts().to_dict()}")
    fp = records[records.form.isin(["near_miss", "clean"]).to_numpy() & flagged]
    for _, r in fp.head(6).iterrows():
        k = int(np.flatnonzero(records.id == r.id)[0])
        print(f"false positive ({r.form}): {table.explanation.iat[k][:200]!r}\n"
              f"   text: {r.text[:160]!r}")


def speed(records_n: int, items_n: int, seed: int = 0) -> None:
    """Records/s of reading + normalizing a JSONL file, against reading + normalizing +
    the n-gram test, with an index of `items_n` items (pseudo-text from the fortunes'
    vocabulary: speed does not depend on meaning)."""
    rng = np.random.default_rng(seed)
    quips = fortunes()
    vocab = np.array(sorted({w.strip(string.punctuation).lower() for q in quips
                             for w in q.split()} - {""}))
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()

    def pseudo_texts(count: int, lo: int, hi: int) -> list[str]:
        lengths = rng.integers(lo, hi, count)
        drawn = vocab[rng.choice(len(vocab), int(lengths.sum()), p=weights)].tolist()
        bounds = np.r_[0, np.cumsum(lengths)]
        return [" ".join(drawn[a:b]).capitalize() + "." for a, b in zip(bounds[:-1], bounds[1:])]

    t = time.perf_counter()
    item_texts = pseudo_texts(items_n, 20, 80)
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"speed-{records_n}.jsonl"
    if not path.exists():
        with open(path, "w") as fh:
            for start in range(0, records_n, 50_000):
                for x in pseudo_texts(min(50_000, records_n - start), 50, 250):
                    fh.write(json.dumps({"text": x}) + "\n")
    print(f"built {items_n:,} items and {records_n:,} records in {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    index = NgramIndex(8).fit(item_texts)
    print(f"index: {index.grams:,} item 8-grams, {index.nbytes / 2**20:.1f} MiB, built in "
          f"{time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    frame, _, _ = read_file(path)
    texts = frame["text"].tolist()
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    normalized = [words(x) for x in texts]
    norm_s = time.perf_counter() - t
    out = NgramMatches(*(np.zeros(len(texts), d) for d in (np.int64,) * 5 + (bool,)))
    t = time.perf_counter()
    for start in range(0, len(texts), 2048):
        index.match_normalized(normalized[start:start + 2048], out, start)
    check_s = time.perf_counter() - t
    t = time.perf_counter()
    baseline = ThirteenGram().fit(item_texts[:10000])
    sample = texts[:20000]
    baseline.flagged(sample)
    base_rate = len(sample) / (time.perf_counter() - t)
    n = len(texts)
    print(f"read JSONL:               {n / read_s:>10,.0f} rec/s")
    print(f"read + normalize:         {n / (read_s + norm_s):>10,.0f} rec/s")
    print(f"read + normalize + check: {n / (read_s + norm_s + check_s):>10,.0f} rec/s "
          f"(the check alone {n / check_s:,.0f} rec/s; flagged {int(out.flagged.sum())})")
    print(f"13-gram baseline (Python sets, 10k items): {base_rate:,.0f} rec/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--choose-ngram", action="store_true")
    parser.add_argument("--no-semantic", action="store_true")
    parser.add_argument("--speed", type=int, metavar="RECORDS", default=0)
    parser.add_argument("--speed-items", type=int, default=100_000)
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, args.speed_items)
        return
    t = time.perf_counter()
    items, records = build(args.items, per_form_real=30, per_form_synth=160, clean_real=1300,
                           clean_synth=600, near_misses=400)
    path = write_corpus(items, records)
    print(f"corpus: {len(items)} items, {len(records)} records "
          f"({records.form.value_counts().to_dict()}) in {time.perf_counter() - t:.1f}s; "
          f"written to {DATA}")
    if args.choose_ngram:
        choose_ngram(items, records)
        return
    accuracy(items, records, path, semantic=not args.no_semantic)


if __name__ == "__main__":
    main()
