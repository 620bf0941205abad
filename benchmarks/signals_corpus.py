"""Labelled development corpora for the off-distribution, near-duplicate and paraphrase
signals (issue 10), built from text other than sample_data/.

    python benchmarks/signals_corpus.py [--out benchmarks/.data] [--corpus fortunes,pydocs,wordnet]

Three real corpora of different make-up, so that a bar tuned to one would show on another:

- fortunes: English fortune cookies (Debian `fortunes`: quotations, jokes, verse);
- pydocs:   sentences of the Python language reference that every Python ships (prose *with*
            code, operators and markup: a real set whose own make-up is symbol-heavy);
- wordnet:  WordNet glosses with their example sentences (Debian `wordnet-base`): short,
            dictionary-shaped records.

Each corpus gives one JSON-lines file of records {id, source, text, defect, variant_of}:

    real           the real records
    clean          synthetic records that are other records of the same real text (never in
                   the real set): exchangeable with the real ones, so any rejection is false
    off_<kind>     off-distribution: gibberish, keyboard mash, hex and base64 blobs, source
                   code, log lines, German/Spanish/Italian fortunes (Debian fortunes-de/-es/-it)
    near_edit      a clean record repeated with 5-15% of its words substituted, inserted,
                   deleted or swapped (variant_of = the clean record)
    near_reworded  a clean record reworded (synonyms, clause order): variant_of = the clean one
    paraphrase     a real record reworded the same way (variant_of = the real record)

`apt-get install fortunes fortunes-de fortunes-es fortunes-it wordnet-base` first. Everything
is seeded: the same packages give the same files.
"""

from __future__ import annotations

import argparse
import base64
import inspect
import json
import random
import re
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
ENGLISH_FORTUNES = ("fortunes", "literature", "people", "wisdom", "humorists", "law",
                    "education", "science", "work", "politics", "love", "miscellaneous",
                    "men-women", "food", "pets", "sports", "platitudes", "medicine", "news",
                    "art", "songs-poems", "kids", "magic", "ethnic", "drugs", "goedel")
SEED = 10
SIZES = {"real": 900, "clean": 400}
PER_OFF_KIND = 30
NEAR_EDITS = 150
REWORDED = 60
PARAPHRASES = 150
STOP = set("a an the of and or but to in on at by for with from as is are was were be been "
           "it its this that these those he she they we you i his her their our your not no "
           "so if then than there here what which who whom when where why how all any some "
           "do does did has have had will would can could shall should may might must".split())


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _fortune_entries(path: Path) -> list[str]:
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return []
    return [e for e in (x.strip("\n") for x in raw.split("\n%\n")) if e.strip()]


def _prose(text: str, min_words: int = 8, max_words: int = 70) -> bool:
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return False
    letters = sum(c.isalpha() for c in text)
    return letters >= 0.6 * len(text)


def fortunes_corpus() -> list[str]:
    out, seen = [], set()
    for name in ENGLISH_FORTUNES:
        for entry in _fortune_entries(FORTUNES / name):
            # drop ascii-art-like entries (many lines of symbols) but keep verse
            text = _clean(entry)
            if _prose(text) and text.lower() not in seen:
                seen.add(text.lower())
                out.append(text)
    return out


def pydocs_corpus() -> list[str]:
    import pydoc_data.topics as topics
    out, seen = [], set()
    for topic in sorted(topics.topics):
        text = _clean(topics.topics[topic])
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if 8 <= len(sentence.split()) <= 60 and sentence.lower() not in seen:
                seen.add(sentence.lower())
                out.append(sentence)
    return out


def wordnet_corpus() -> list[str]:
    """Glosses of WordNet synsets with their quoted examples: 'lemma: definition; "example"'."""
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            lemma = fields[4].replace("_", " ")
            text = f"{lemma}: {gloss.strip()}"
            if 8 <= len(text.split()) <= 60:
                out.append(text)
    return out


# ----------------------------------------------------------------------------- defects

def gibberish(rng: random.Random) -> str:
    """Word-shaped strings of random letters."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10)))
             for _ in range(rng.randint(8, 40))]
    return " ".join(words).capitalize() + "."


def keyboard_mash(rng: random.Random) -> str:
    rows = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", ";lkjhgf", "jkjkjk"]
    parts = []
    for _ in range(rng.randint(3, 12)):
        row = rng.choice(rows)
        start = rng.randrange(len(row))
        run = "".join(row[(start + rng.choice((0, 1, 1, 2))) % len(row)]
                      for _ in range(rng.randint(3, 14)))
        parts.append(run.upper() if rng.random() < 0.15 else run)
    return " ".join(parts) + rng.choice(["", "!!", "??", " lol"])


def hex_blob(rng: random.Random) -> str:
    data = rng.randbytes(rng.randint(16, 96))
    text = data.hex()
    if rng.random() < 0.5:
        text = " ".join(text[i:i + 8] for i in range(0, len(text), 8))
    return rng.choice(["", "sha256: ", "0x", "key=", "digest "]) + text


def base64_blob(rng: random.Random) -> str:
    data = rng.randbytes(rng.randint(24, 160))
    return rng.choice(["", "data:application/octet-stream;base64,", "token: "]) + \
        base64.b64encode(data).decode()


def source_code(rng: random.Random, pool: list[str]) -> str:
    return rng.choice(pool)


def _code_pool() -> list[str]:
    import collections
    import json as json_module
    import textwrap
    pool = []
    for module in (collections, json_module, textwrap, random, argparse, inspect):
        lines = inspect.getsource(module).splitlines()
        for start in range(0, len(lines) - 10, 7):
            chunk = [line for line in lines[start:start + 8] if line.strip()]
            body = "\n".join(chunk)
            if len(chunk) >= 4 and '"""' not in body and sum(c.isalpha() for c in body) > 40:
                pool.append(body)
    return pool


def log_line(rng: random.Random) -> str:
    hosts = ["web-01", "db-3", "worker-7", "edge-fra-2"]
    services = ["nginx", "sshd", "kernel", "systemd", "postgres", "app.api"]
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    lines = []
    for _ in range(rng.randint(1, 4)):
        ts = (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
              f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
              f"{rng.randint(0, 999):03d}Z")
        kind = rng.randrange(4)
        if kind == 0:
            lines.append(f'{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.'
                         f'{rng.randint(1, 254)} - - [{ts}] "GET /api/v{rng.randint(1, 3)}/'
                         f'items/{rng.randint(1, 99999)}?page={rng.randint(1, 50)} HTTP/1.1" '
                         f'{rng.choice([200, 301, 404, 500])} {rng.randint(100, 99999)}')
        elif kind == 1:
            lines.append(f"{ts} {rng.choice(hosts)} {rng.choice(services)}"
                         f"[{rng.randint(100, 65000)}]: {rng.choice(levels)} "
                         f"connection from 10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
                         f"port {rng.randint(1024, 65535)} closed (timeout={rng.randint(1, 90)}s)")
        elif kind == 2:
            lines.append(f"[{ts}] {rng.choice(levels)} pid={rng.randint(100, 65000)} "
                         f"req_id={rng.randbytes(6).hex()} latency_ms={rng.randint(1, 5000)} "
                         f"status={rng.choice(['ok', 'fail', 'retry'])}")
        else:
            lines.append(f"{ts} {rng.choice(levels)} Traceback (most recent call last): "
                         f'File "/srv/app/handlers.py", line {rng.randint(10, 900)}, in handle '
                         f"KeyError: 'user_{rng.randint(1, 9999)}'")
    return "\n".join(lines)


def _foreign_pool(lang: str) -> list[str]:
    out = []
    for path in sorted((FORTUNES / lang).glob("*")):
        if path.suffix in (".dat", ".u8") or path.is_dir():
            continue
        out += [t for t in (_clean(e) for e in _fortune_entries(path)) if _prose(t, 8, 60)]
    return out


def word_edits(text: str, rng: random.Random, vocab: list[str]) -> str:
    """5-15% of the words substituted, inserted, deleted or swapped (at least one edit)."""
    words = text.split()
    edits = max(1, round(rng.uniform(0.05, 0.15) * len(words)))
    for _ in range(edits):
        op = rng.choice(("substitute", "insert", "delete", "swap"))
        i = rng.randrange(len(words))
        if op == "substitute":
            words[i] = rng.choice(vocab)
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        elif op == "delete" and len(words) > 3:
            del words[i]
        elif op == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            words[i] = rng.choice(vocab)
    return " ".join(words)


class Thesaurus:
    """Single-word synonyms from WordNet's first senses."""

    def __init__(self):
        self.synonyms: dict[str, list[str]] = {}
        for pos in ("noun", "verb", "adj", "adv"):
            data = {}
            for line in (WORDNET / f"data.{pos}").read_text(encoding="latin-1").splitlines():
                if line.startswith("  "):
                    continue
                fields = line.split()
                count = int(fields[3], 16)
                data[fields[0]] = [fields[4 + 2 * j] for j in range(count)]
            for line in (WORDNET / f"index.{pos}").read_text(encoding="latin-1").splitlines():
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma, n_senses = fields[0], int(fields[2])
                offsets = fields[-n_senses:]
                if lemma in self.synonyms or "_" in lemma:
                    continue
                words = [w.split("(")[0] for w in data.get(offsets[0], [])]
                alt = [w for w in words if w.lower() != lemma and "_" not in w and w.isalpha()]
                if alt:
                    self.synonyms[lemma] = alt

    def reword(self, text: str, rng: random.Random, share: float = 0.6) -> str:
        """Synonyms for about `share` of the content words, a clause moved, 'and' lists
        reordered: the meaning mostly kept, the wording changed."""
        words = text.split()
        out = []
        for w in words:
            core = re.sub(r"^\W+|\W+$", "", w)
            low = core.lower()
            if low not in STOP and low in self.synonyms and rng.random() < share:
                new = rng.choice(self.synonyms[low])
                if core[:1].isupper():
                    new = new.capitalize()
                w = w.replace(core, new, 1)
            out.append(w)
        text = " ".join(out)
        clauses = re.split(r"(?<=[,;])\s+", text)
        if len(clauses) >= 2 and rng.random() < 0.6:
            i = rng.randrange(len(clauses) - 1)
            a, b = clauses[i].rstrip(",;"), clauses[i + 1].rstrip(".,;")
            clauses[i], clauses[i + 1] = b[:1].upper() + b[1:] + ",", a[:1].lower() + a[1:]
            text = " ".join(clauses)
            if not text.endswith((".", "!", "?")):
                text += "."
        return text


def build(name: str, texts: list[str], rng: random.Random, thesaurus: Thesaurus,
          pools: dict[str, list[str]]) -> list[dict]:
    rng.shuffle(texts)
    need = SIZES["real"] + SIZES["clean"]
    if len(texts) < need:
        raise SystemExit(f"{name}: only {len(texts)} records, need {need}")
    real, clean = texts[:SIZES["real"]], texts[SIZES["real"]:need]
    records = [{"id": f"{name}-r{i}", "source": "real", "text": t, "defect": "real",
                "variant_of": None} for i, t in enumerate(real)]
    records += [{"id": f"{name}-c{i}", "source": "synthetic", "text": t, "defect": "clean",
                 "variant_of": None} for i, t in enumerate(clean)]
    makers = {"gibberish": gibberish, "keyboard_mash": keyboard_mash, "hex": hex_blob,
              "base64": base64_blob, "log": log_line,
              "code": lambda r: r.choice(pools["code"]),
              "german": lambda r: r.choice(pools["de"]),
              "spanish": lambda r: r.choice(pools["es"]),
              "italian": lambda r: r.choice(pools["it"])}
    for kind, make in makers.items():
        for j in range(PER_OFF_KIND):
            records.append({"id": f"{name}-off-{kind}{j}", "source": "synthetic",
                            "text": make(rng), "defect": f"off_{kind}", "variant_of": None})
    vocab = sorted({w for t in real for w in t.split()})
    for j in range(NEAR_EDITS):
        i = rng.randrange(len(clean))
        records.append({"id": f"{name}-ne{j}", "source": "synthetic",
                        "text": word_edits(clean[i], rng, vocab), "defect": "near_edit",
                        "variant_of": f"{name}-c{i}"})
    for j in range(REWORDED):
        i = rng.randrange(len(clean))
        records.append({"id": f"{name}-nr{j}", "source": "synthetic",
                        "text": thesaurus.reword(clean[i], rng), "defect": "near_reworded",
                        "variant_of": f"{name}-c{i}"})
    for j in range(PARAPHRASES):
        i = rng.randrange(len(real))
        records.append({"id": f"{name}-p{j}", "source": "synthetic",
                        "text": thesaurus.reword(real[i], rng), "defect": "paraphrase",
                        "variant_of": f"{name}-r{i}"})
    # drop planted records that came out identical to their origin (nothing to detect)
    by_id = {r["id"]: r["text"] for r in records}
    records = [r for r in records if r["variant_of"] is None
               or r["text"].strip() != by_id[r["variant_of"]].strip()]
    order = rng.sample(range(len(records)), len(records))
    return [records[i] for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / ".data"))
    parser.add_argument("--corpus", default="fortunes,pydocs,wordnet")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    thesaurus = Thesaurus()
    pools = {"code": _code_pool(), "de": _foreign_pool("de"), "es": _foreign_pool("es"),
             "it": _foreign_pool("it")}
    sources = {"fortunes": fortunes_corpus, "pydocs": pydocs_corpus, "wordnet": wordnet_corpus}
    for name in args.corpus.split(","):
        rng = random.Random(f"{SEED}-{name}")
        records = build(name, sources[name](), rng, thesaurus, pools)
        path = out / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        counts: dict[str, int] = {}
        for r in records:
            counts[r["defect"]] = counts.get(r["defect"], 0) + 1
        print(f"{path}: {len(records)} records {counts}")


if __name__ == "__main__":
    main()
