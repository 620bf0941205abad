"""Builds the labelled detection corpus and the model-collapse generation series.

    python benchmarks/corpora/build_detection.py [--out benchmarks/.corpora/detection]
                                                 [--seed 0] [--force]

Writes (git-ignored, rebuilt by this script; about 1 to 5 minutes, most of it the GRU series):

    OUT/manifest.json              what was built: counts per class and kind, sources, seed
    OUT/{small,full}/real.jsonl    real English records: id, text, origin
    OUT/{small,full}/synthetic.jsonl
                                   id, text, defect, kind, expect, variant_of
    OUT/series/{ngram,topic,rephrase,gru}/gen{k}.jsonl
                                   id, text, series, generation (k = 1..6)

Real text (never sample_data/): English quotations and verse from the fortune cookie files,
and dictionary entries of the Jargon File, FOLDOC and Webster's 1913 (GCIDE). Records of 10
to 80 words, exact and near duplicates (word 2-gram Jaccard >= 0.5) removed from the pool,
which is split into the gate's real records, two held-out parts (clean synthetic records, as
they are and recombined) and a generator-training part (the n-gram model of the clean
records and the first generation of every series).

Needs these Debian packages (apt-get install -y ...): fortunes-min fortunes fortunes-de
fortunes-es fortunes-it fortunes-ru fortunes-zh debian-reference-fr dict-jargon dict-foldoc
dict-gcide wordnet-base; apt (its Arabic message catalogue); the running Python's standard
library (source code records); numpy, scikit-learn and torch (synthgate's own dependencies).
A missing source stops the build with a message naming the package.

Synthetic records: `defect` is the class, `kind` the recipe, `expect` the reason code a
correct gate gives (none: the record must be kept), `variant_of` the id of the record it was
made from.

- clean (expect none): heldout (real text of a held-out part, labelled synthetic); ngram (a
  word 3-gram model of the generator-training part, temperature 1); recombined (the first
  sentence of one held-out record and the rest of another of the same source).
- exact_duplicate (exact_duplicate): verbatim or case_space (case or spacing changed) copies
  of a clean record.
- near_duplicate (near_duplicate): edit05, edit10, edit15, a clean record with 5/10/15% of
  its words substituted, inserted, deleted or swapped; reworded, a clean record paraphrased
  as below.
- copy_of_real (copies_real): exact, case_space, edit05, edit10, edit15 copies of a real
  record.
- paraphrase_of_real (copies_real): reworded, a real record paraphrased (rewrite.py: clause
  reordering, phrase rewording, WordNet synonyms; no LLM).
- formulaic (formulaic): stock_phrase (an assistant opener or closer around a sentence),
  listicle ("Here are 5 tips for ..."), slot_template (templates with slots filled from the
  pool's nouns, verbs and adjectives).
- off_distribution (off_distribution): gibberish, keyboard_mash, hex, base64, code (Python
  standard library), log, spanish, german, italian, french, cyrillic, cjk, arabic.
- invalid (invalid): empty, whitespace, too_short (one or two words).

Variants follow their source record in the file (a gate keeps the first of a group). Record
ids do not reveal the class. Generation numbers follow synthgate's `generation` column:
generation 1 is sampled from a model fitted on real text (the issue's "generation 0"), each
later one from a model refitted on the previous generation's samples.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generators  # noqa: E402
import junk  # noqa: E402
import sources  # noqa: E402
from rewrite import STOP, Paraphraser, WordNet, bigrams, edit_words, jaccard  # noqa: E402

BUILDER_VERSION = 4
DEFAULT_OUT = HERE.parent / ".corpora" / "detection"
MIN_WORDS, MAX_WORDS = 10, 80
NEAR_POOL_JACCARD = 0.5
EDIT_RATES = (0.05, 0.10, 0.15)

# Shares of the English pool by origin: quotations and verse, then dictionary entries.
ORIGIN_SHARES = {"fortunes": 0.5, "dict/foldoc": 0.2, "dict/gcide": 0.15, "dict/jargon": 0.15}
SPLITS = {"real": 3000, "heldout": 500, "recombine": 2500, "gen_train": 1500}

SIZES = {
    "small": dict(real=800, heldout=130, ngram=140, recombined=130, exact_duplicate=40,
                  near_duplicate=40, copy_exact=24, copy_near=16, paraphrase=60, formulaic=20,
                  off_distribution=8, invalid=7, series_records=150, series_generations=4),
    "full": dict(real=3000, heldout=500, ngram=500, recombined=500, exact_duplicate=150,
                 near_duplicate=150, copy_exact=100, copy_near=50, paraphrase=200, formulaic=70,
                 off_distribution=25, invalid=20, series_records=400, series_generations=6),
}
SERIES_GENERATIONS = 6
SERIES_RECORDS = 400
OFF_KINDS = ["gibberish", "keyboard_mash", "hex", "base64", "code", "log", "spanish", "german",
             "italian", "french", "cyrillic", "cjk", "arabic"]
PACKAGES = ["fortunes-min", "fortunes", "fortunes-de", "fortunes-es", "fortunes-it",
            "fortunes-ru", "fortunes-zh", "debian-reference-fr", "dict-jargon", "dict-foldoc",
            "dict-gcide", "wordnet-base", "apt"]


def normalize(text: str) -> str:
    """synthgate's exact-duplicate key: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def n_words(text: str) -> int:
    return len(sources.words(text))


def rng_for(seed: int, purpose: str) -> random.Random:
    # One generator per purpose: changing one recipe does not reshuffle the others.
    return random.Random(f"{seed}:{purpose}")


# --- the English pool --------------------------------------------------------------------------

def english_pool(seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(origin, text) records drawn by ORIGIN_SHARES, deduplicated; and all candidates."""
    by_origin: dict[str, list[tuple[str, str]]] = defaultdict(list)
    readers = [sources.english_fortunes, sources.jargon_records, sources.foldoc_records,
               sources.gcide_records]
    everything = [rec for read in readers for rec in read()]
    for origin, text in everything:
        if MIN_WORDS <= n_words(text) <= MAX_WORDS:
            key = "fortunes" if origin.startswith("fortunes") else origin
            by_origin[key].append((origin, text))
    rng = rng_for(seed, "pool")
    total = sum(SPLITS.values())
    drawn = []
    for key, share in ORIGIN_SHARES.items():
        items = by_origin[key]
        # 15% more than needed: duplicates are removed below.
        drawn += rng.sample(items, min(len(items), int(total * share * 1.15)))
    rng.shuffle(drawn)
    return dedup_pool(drawn), everything


def dedup_pool(records: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drops exact duplicates and records whose word 2-gram Jaccard with an earlier kept
    record is >= NEAR_POOL_JACCARD: a real pair that close would be a true duplicate, and the
    labels must not call it distinct."""
    seen, kept, kept_sets = set(), [], []
    postings: dict[tuple, list[int]] = defaultdict(list)
    for origin, text in records:
        key = normalize(text)
        if key in seen:
            continue
        grams = bigrams(text)
        counts = Counter(j for g in grams for j in postings.get(g, ()))
        if any(jaccard(grams, kept_sets[j]) >= NEAR_POOL_JACCARD
               for j, c in counts.items() if c >= 0.3 * len(grams)):
            continue
        seen.add(key)
        for g in grams:
            postings[g].append(len(kept))
        kept.append((origin, text))
        kept_sets.append(grams)
    return kept


def split_pool(pool: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    need = sum(SPLITS.values())
    if len(pool) < need:
        raise SystemExit(f"the English pool has {len(pool)} distinct records; {need} needed")
    out, start = {}, 0
    for name, n in SPLITS.items():
        out[name] = pool[start:start + n]
        start += n
    return out


# --- word lists ------------------------------------------------------------------------------

def slot_words(wordnet: WordNet, counts: Counter) -> dict[str, list[str]]:
    """Common content words by part of speech (their most frequent WordNet reading)."""
    slots: dict[str, list[str]] = {"noun": [], "verb": [], "adj": []}
    names = {"n": "noun", "v": "verb", "a": "adj"}
    for word, c in counts.most_common():
        if c < 5 or not word.isalpha() or not word.islower() or len(word) < 4 or word in STOP:
            continue
        readings = wordnet.index_.get(word, {})
        if not readings:
            continue
        pos = max(readings, key=lambda p: readings[p][0])
        if pos in names and len(slots[names[pos]]) < 400:
            slots[names[pos]].append(word)
    return slots


# --- assembling one size -----------------------------------------------------------------------

class Builder:
    def __init__(self, seed: int, splits: dict[str, list[tuple[str, str]]]):
        self.seed, self.splits = seed, splits
        texts = [t for part in splits.values() for _, t in part]
        self.word_counts = Counter(w for t in texts for w in sources.words(t))
        lower = Counter(w.lower() for t in texts for w in sources.words(t))
        self.vocabulary = [w for t in texts for w in t.split()]           # frequency-weighted
        self.wordnet = WordNet().load()
        self.paraphraser = Paraphraser(self.wordnet, self.word_counts)
        self.slots = slot_words(self.wordnet, lower)
        gen_train = [t for _, t in splits["gen_train"]]
        self.ngram = generators.NgramLM(order=3, temperature=1.0).fit(gen_train)
        self.code = junk.CodeSnippets()
        self.foreign = {
            "spanish": sources.foreign_fortunes("es"), "german": sources.foreign_fortunes("de"),
            "italian": sources.foreign_fortunes("it"), "french": sources.french_paragraphs(),
            "cyrillic": sources.foreign_fortunes("ru"), "cjk": sources.chinese_fortunes(),
        }
        self.arabic = sources.arabic_messages()

    def build(self, size: str) -> tuple[list[dict], list[dict]]:
        spec = SIZES[size]
        rng = rng_for(self.seed, f"corpus:{size}")
        real = [{"id": None, "text": t, "origin": o} for o, t in self.splits["real"][:spec["real"]]]
        rng.shuffle(real)
        for i, r in enumerate(real):
            r["id"] = f"r{i:05d}"

        clean = self._clean(spec, rng, real)
        synth = [dict(c) for c in clean]
        variants: list[dict] = []
        n_dup = spec["exact_duplicate"] + 3 * spec["near_duplicate"]
        for n, i in enumerate(rng.sample(range(len(clean)), n_dup + spec["near_duplicate"])):
            if n < n_dup:
                variants.append(self._copy(clean[i], n, spec["exact_duplicate"], "verbatim", rng,
                                           exact=("exact_duplicate", "exact_duplicate"),
                                           near=("near_duplicate", "near_duplicate")))
            else:                          # the same record in other words (issue 10, point 2)
                variants.append(record(self.paraphraser.paraphrase(clean[i]["text"], rng),
                                       "near_duplicate", "reworded", "near_duplicate", clean[i]))
        n_copy = spec["copy_exact"] + 3 * spec["copy_near"]
        for n, i in enumerate(rng.sample(range(len(real)), n_copy + spec["paraphrase"])):
            if n < n_copy:
                variants.append(self._copy(real[i], n, spec["copy_exact"], "exact", rng,
                                           exact=("copy_of_real", "copies_real"),
                                           near=("copy_of_real", "copies_real")))
            else:
                variants.append(record(self.paraphraser.paraphrase(real[i]["text"], rng),
                                       "paraphrase_of_real", "reworded", "copies_real", real[i]))
        others = self._formulaic(spec, rng) + self._off(spec, rng) + self._invalid(spec, rng)

        # Order: shuffle the independent records, then put each variant at a random place
        # after its source (the gate keeps the first record of a duplicate group).
        keyed = [(rng.random(), r) for r in synth + others]
        pos = {id(r): k for k, r in keyed}
        by_id = {r["_key"]: r for r in synth if "_key" in r}
        for v in variants:
            within = v["expect"] in ("exact_duplicate", "near_duplicate")
            src = by_id.get(v["variant_of"]) if within else None
            lo = pos[id(src)] if src is not None else 0.0
            keyed.append((lo + (1 - lo) * rng.random(), v))
        keyed.sort(key=lambda kr: kr[0])
        out = [r for _, r in keyed]
        ids = {}
        for i, r in enumerate(out):
            ids[r.get("_key")] = f"s{i:05d}"
        for i, r in enumerate(out):
            if r["expect"] in ("exact_duplicate", "near_duplicate"):
                r["variant_of"] = ids[r["variant_of"]]
            r["id"] = f"s{i:05d}"
            r.pop("_key", None)
        return real, [{k: r[k] for k in ("id", "text", "defect", "kind", "expect", "variant_of")}
                      for r in out]

    def _copy(self, src: dict, n: int, n_exact: int, exact_kind: str, rng: random.Random, *,
              exact: tuple[str, str], near: tuple[str, str]) -> dict:
        """The n-th copy of a group: the first n_exact are exact (every third with its case
        or spacing changed), then edits of 5, 10 and 15% of the words in turn.
        `exact` and `near` are (defect, expected reason) of the two halves."""
        if n < n_exact:
            kind = exact_kind if n % 3 else "case_space"
            text = src["text"] if n % 3 else case_space(src["text"], rng)
            return record(text, exact[0], kind, exact[1], src)
        rate = EDIT_RATES[(n - n_exact) % 3]
        return record(edit_words(src["text"], rate, rng, self.vocabulary), near[0],
                      f"edit{round(rate * 100):02d}", near[1], src)

    def _clean(self, spec: dict, rng: random.Random, real: list[dict]) -> list[dict]:
        heldout = [t for _, t in self.splits["heldout"][:spec["heldout"]]]
        ngram = self.ngram.sample(spec["ngram"] * 2, rng)            # spares for the audit
        ngram = [t for t in ngram if MIN_WORDS <= n_words(t) <= MAX_WORDS]
        part = self.splits["recombine"]
        recombined = recombine([t for _, t in part], [o for o, _ in part],
                               int(spec["recombined"] * 1.5), rng)
        candidates = ([("heldout", t) for t in heldout] + [("ngram", t) for t in ngram]
                      + [("recombined", t) for t in recombined])
        wanted = {k: spec[k] for k in ("heldout", "ngram", "recombined")}
        kept = audit_clean(candidates, [r["text"] for r in real], wanted)
        out = []
        for n, (kind, text) in enumerate(kept):
            out.append({"text": text, "defect": "clean", "kind": kind, "expect": None,
                        "variant_of": None, "_key": f"c{n}"})
        return out

    def _formulaic(self, spec: dict, rng: random.Random) -> list[dict]:
        out = []
        contents = self.ngram.sample(spec["formulaic"], rng)
        for i in range(spec["formulaic"]):
            for kind, text in (("stock_phrase", junk.stock_phrase(rng, contents[i])),
                               ("listicle", junk.listicle(rng, self.slots)),
                               ("slot_template", junk.slot_template(rng, self.slots))):
                out.append(record(text, "formulaic", kind, "formulaic"))
        return out

    def _off(self, spec: dict, rng: random.Random) -> list[dict]:
        out = []
        for kind in OFF_KINDS:
            seen: set[str] = set()
            while len(seen) < spec["off_distribution"]:
                text = self._off_one(kind, rng)
                if normalize(text) not in seen:
                    seen.add(normalize(text))
                    out.append(record(text, "off_distribution", kind, "off_distribution"))
        return out

    def _off_one(self, kind: str, rng: random.Random) -> str:
        if kind in self.foreign:
            pool = self.foreign[kind]
            while True:
                text = rng.choice(pool)
                size = len(re.findall(r"[\u4e00-\u9fff]", text)) if kind == "cjk" else n_words(text)
                if (15 <= size <= 200) if kind == "cjk" else (MIN_WORDS <= size <= MAX_WORDS):
                    return text
        if kind == "arabic":
            return " ".join(rng.sample(self.arabic, rng.randint(2, 4)))
        if kind == "code":
            return self.code.sample(rng)
        return {"gibberish": junk.gibberish, "keyboard_mash": junk.keyboard_mash,
                "hex": junk.hex_blob, "base64": junk.base64_blob, "log": junk.log_lines}[kind](rng)

    def _invalid(self, spec: dict, rng: random.Random) -> list[dict]:
        return [record(junk.invalid(kind, rng, self.vocabulary), "invalid", kind, "invalid")
                for kind in ("empty", "whitespace", "too_short") for _ in range(spec["invalid"])]


def record(text: str, defect: str, kind: str, expect: str | None, src: dict | None = None) -> dict:
    return {"text": text, "defect": defect, "kind": kind, "expect": expect,
            "variant_of": (src.get("_key") or src["id"]) if src else None}


def case_space(text: str, rng: random.Random) -> str:
    """The same normalized text: case changed and spacing doubled or padded."""
    style = rng.randrange(3)
    if style == 0:
        return text.upper()
    if style == 1:
        return "  " + text.replace(" ", "  ", 3) + " \n"
    return text.lower() + " "


def recombine(texts: list[str], origins: list[str], n: int, rng: random.Random) -> list[str]:
    """Records of two or more sentences are paired within their source; a pair (A, B) gives
    A's first sentence + B's other sentences and B's first + A's others. No sentence is used
    twice, so no two recombined records overlap."""
    split = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
    by_origin: dict[str, list[list[str]]] = defaultdict(list)
    for text, origin in zip(texts, origins):
        parts = split.split(" ".join(text.split()))
        if len(parts) >= 2:
            by_origin[origin].append(parts)
    out = []
    for origin in sorted(by_origin):
        group = by_origin[origin]
        rng.shuffle(group)
        for a, b in zip(group[0::2], group[1::2]):
            for first, rest in ((a, b), (b, a)):
                text = " ".join([first[0]] + rest[1:])
                if MIN_WORDS <= n_words(text) <= MAX_WORDS:
                    out.append(text)
    rng.shuffle(out)
    if len(out) < n:
        raise SystemExit(f"only {len(out)} recombined records; {n} needed")
    return out[:n]


def audit_clean(candidates: list[tuple[str, str]], real: list[str], wanted: dict[str, int]
                ) -> list[tuple[str, str]]:
    """Keeps clean candidates that are neither exact nor near (word 2-gram Jaccard >= 0.5)
    duplicates of a real record or of a kept clean one, up to `wanted` per kind: a clean
    record must be one a correct gate keeps."""
    postings: dict[tuple, list[int]] = defaultdict(list)
    sets: list[set] = []
    seen: set[str] = set()

    def clashes(text: str) -> bool:
        grams = bigrams(text)
        counts = Counter(j for g in grams for j in postings.get(g, ()))
        return normalize(text) in seen or any(
            jaccard(grams, sets[j]) >= NEAR_POOL_JACCARD
            for j, c in counts.items() if c >= 0.3 * len(grams))

    def add(text: str) -> None:
        seen.add(normalize(text))
        for g in bigrams(text):
            postings[g].append(len(sets))
        sets.append(bigrams(text))

    for text in real:
        add(text)
    taken: Counter = Counter()
    kept = []
    for kind, text in candidates:
        if taken[kind] < wanted[kind] and not clashes(text):
            add(text)
            kept.append((kind, text))
            taken[kind] += 1
    short = {k: wanted[k] - taken[k] for k in wanted if taken[k] < wanted[k]}
    if short:
        raise SystemExit(f"not enough clean synthetic records after the audit: short by {short}")
    return kept


# --- output ------------------------------------------------------------------------------------

def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                                      capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            out[pkg] = "unknown"
    return out


def overlap_quantiles(synthetic: list[dict], by_id: dict[str, str]) -> dict[str, list[float]]:
    """Word 2-gram Jaccard of each variant with its source: how hard each kind is lexically."""
    per_kind: dict[str, list[float]] = defaultdict(list)
    for r in synthetic:
        if r["variant_of"] and r["variant_of"] in by_id:
            per_kind[f"{r['defect']}/{r['kind']}"].append(
                jaccard(bigrams(r["text"]), bigrams(by_id[r["variant_of"]])))
    out = {}
    for key, values in sorted(per_kind.items()):
        values.sort()
        out[key] = [round(values[int(q * (len(values) - 1))], 3) for q in (0.1, 0.5, 0.9)]
    return out


def build(out: Path = DEFAULT_OUT, seed: int = 0, log=print) -> dict:
    """Builds everything into `out`; returns the manifest."""
    start = time.perf_counter()
    pool, _ = english_pool(seed)
    splits = split_pool(pool)
    log(f"English pool: {len(pool)} distinct records; splits "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    builder = Builder(seed, splits)
    manifest: dict = {"builder_version": BUILDER_VERSION, "seed": seed,
                      "python": sys.version.split()[0], "packages": package_versions(),
                      "sizes": {}, "series": {}}
    for size in SIZES:
        real, synthetic = builder.build(size)
        write_jsonl(out / size / "real.jsonl", real)
        write_jsonl(out / size / "synthetic.jsonl", synthetic)
        by_id = {r["id"]: r["text"] for r in real + synthetic}
        counts = Counter(f"{r['defect']}/{r['kind']}" for r in synthetic)
        manifest["sizes"][size] = {
            "real": len(real), "synthetic": len(synthetic),
            "by_kind": dict(sorted(counts.items())),
            "variant_jaccard_q10_q50_q90": overlap_quantiles(synthetic, by_id),
            "series_records": SIZES[size]["series_records"],
            "series_generations": SIZES[size]["series_generations"]}
        log(f"{size}: {len(real)} real, {len(synthetic)} synthetic records")
    train = [t for _, t in splits["gen_train"]]
    for name, (_, description, role) in generators.SERIES.items():
        t0 = time.perf_counter()
        gens = generators.series(name, train, SERIES_GENERATIONS, SERIES_RECORDS, seed)
        for k, texts in enumerate(gens, start=1):
            write_jsonl(out / "series" / name / f"gen{k}.jsonl",
                        [{"id": f"{name}-g{k}-{i:04d}", "text": t, "series": name, "generation": k}
                         for i, t in enumerate(texts)])
        manifest["series"][name] = {"description": description, "role": role,
                                    "generations": len(gens),
                                    "records": SERIES_RECORDS, "fit_records": len(train)}
        log(f"series {name}: {len(gens)} generations in {time.perf_counter() - t0:.0f} s")
    manifest["seconds"] = round(time.perf_counter() - start, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rebuild even if the manifest matches")
    args = ap.parse_args(argv)
    manifest = args.out / "manifest.json"
    if manifest.exists() and not args.force:
        old = json.loads(manifest.read_text())
        if old.get("builder_version") == BUILDER_VERSION and old.get("seed") == args.seed:
            print(f"{args.out} is up to date (--force rebuilds)")
            return 0
    try:
        build(args.out, args.seed)
    except sources.SourceMissing as exc:
        print(f"build_detection: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
