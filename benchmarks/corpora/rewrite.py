"""Rewrites of a record: word-level edits (near-duplicates) and paraphrases (no LLM).

Paraphrase method (`Paraphraser.paraphrase`), applied to each sentence:
1. clause reordering: a leading subordinate clause moves behind its main clause
   ("When X, Y." -> "Y when X.") and a trailing one moves to the front; "X, and Y" becomes
   "Y, and X"; a record of several sentences may swap two of them (an attribution line such
   as "-- Mark Twain" stays last);
2. light rewording from a fixed table of equivalent phrasings (contractions both ways,
   "a lot of"/"many", "in order to"/"to", "because"/"since", ...);
3. synonym substitution from WordNet 3.0 (Debian `wordnet-base`): about half of the content
   words (not stop words, not capitalised mid-sentence, four letters or more) are replaced by
   another one-word lemma of their most frequent synset (the first two synsets of the word's
   most frequent part of speech), preferring lemmas that are common in the English pool, and
   re-inflected with the suffix they carried (-s, -es, -ed, -ing, -er, -est).
The result keeps the meaning and most of the content but shares few word 2-grams with the
original, as a generator's rewording does.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

from sources import STOPWORDS, WORDNET, require

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# WordNet's own detachment rules (morphy), per part of speech: (suffix, replacement).
MORPHY_RULES = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
          ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
          ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}
STOP = STOPWORDS["en"] | set(
    "also very just more most much many some such only other into than then these those "
    "been being does done would could should shall might must upon about over under after "
    "before where there here what which while whom whose your yours ours their theirs".split())

# Equivalent phrasings, applied left to right at most once each (case kept on the first letter).
REWORDINGS = [
    (r"\bdo not\b", "don't"), (r"\bdon't\b", "do not"), (r"\bcannot\b", "can't"),
    (r"\bcan't\b", "cannot"), (r"\bit is\b", "it's"), (r"\bit's\b", "it is"),
    (r"\bis not\b", "isn't"), (r"\bisn't\b", "is not"), (r"\bwill not\b", "won't"),
    (r"\bwon't\b", "will not"), (r"\bdoes not\b", "doesn't"), (r"\bI am\b", "I'm"),
    (r"\bI'm\b", "I am"), (r"\byou are\b", "you're"), (r"\byou're\b", "you are"),
    (r"\ba lot of\b", "many"), (r"\bmany\b", "a great many"), (r"\bin order to\b", "to"),
    (r"\bbecause\b", "since"), (r"\bhowever\b", "yet"), (r"\balways\b", "at all times"),
    (r"\bnever\b", "not ever"), (r"\bvery\b", "really"), (r"\boften\b", "frequently"),
    (r"\bperhaps\b", "maybe"), (r"\bmaybe\b", "perhaps"), (r"\bbut\b", "yet"),
    (r"\bwhich is\b", "that is"), (r"\bthat is\b", "which is"), (r"\bsomething\b", "a thing"),
    (r"\beveryone\b", "everybody"), (r"\beverybody\b", "everyone"), (r"\bquite\b", "rather"),
]
SUBORDINATORS = ("when", "if", "although", "because", "while", "since", "unless", "after",
                 "before", "though", "as soon as", "whenever")


class WordNet:
    """Synonym lookup on the WordNet 3.0 database files (index.* and data.*)."""

    def __init__(self, root: Path = WORDNET):
        self.root = root

    def load(self) -> "WordNet":
        require(self.root / "index.noun", "wordnet-base")
        self.index_: dict[str, dict[str, tuple[int, list[str]]]] = {}
        self.synsets_: dict[tuple[str, str], list[str]] = {}
        self.exceptions_: dict[str, dict[str, str]] = {}
        for pos, name in POS_FILES.items():
            for line in (self.root / f"index.{name}").read_text(encoding="latin-1").splitlines():
                if line.startswith(" "):
                    continue
                f = line.split()
                n_syn, n_ptr = int(f[2]), int(f[3])
                tagged = int(f[5 + n_ptr])
                offsets = f[6 + n_ptr:6 + n_ptr + n_syn]
                self.index_.setdefault(f[0], {})[pos] = (tagged, offsets)
            for line in (self.root / f"data.{name}").read_text(encoding="latin-1").splitlines():
                if line.startswith(" "):
                    continue
                f = line.split()
                count = int(f[3], 16)
                lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]) for i in range(count)]
                self.synsets_[(pos, f[0])] = lemmas
            exc = self.root / f"{name}.exc"
            self.exceptions_[pos] = dict(line.split()[:2] for line in
                                         exc.read_text(encoding="latin-1").splitlines()
                                         if len(line.split()) >= 2)
        return self

    def lemma(self, word: str) -> list[tuple[str, str, str]]:
        """(pos, lemma, suffix-rule) readings of a lower-case word form."""
        out = []
        for pos in POS_FILES:
            if word in self.index_ and pos in self.index_[word]:
                out.append((pos, word, ""))
            for suffix, repl in MORPHY_RULES[pos]:
                if word.endswith(suffix) and len(word) > len(suffix) + 2:
                    base = word[: -len(suffix)] + repl
                    if base in self.index_ and pos in self.index_[base]:
                        out.append((pos, base, suffix))
        return out

    def synonyms(self, word: str) -> list[tuple[str, str]]:
        """(synonym lemma, suffix to re-apply), from the most frequent reading's top synsets."""
        readings = [r for r in self.lemma(word) if word not in self.exceptions_[r[0]]]
        if not readings:
            return []
        pos, base, suffix = max(readings, key=lambda r: self.index_[r[1]][r[0]][0])
        out = []
        for offset in self.index_[base][pos][1][:2]:
            for lemma in self.synsets_.get((pos, offset), []):
                lemma_l = lemma.lower()
                if lemma_l != base and lemma_l.isalpha() and "_" not in lemma_l:
                    out.append((lemma_l, suffix))
        return out


def inflect(base: str, suffix: str) -> str:
    """Re-applies a detached suffix to another lemma (regular English spelling)."""
    if not suffix:
        return base
    if suffix in ("s", "es", "ses", "xes", "zes", "ches", "shes", "ies"):
        if base.endswith("y") and base[-2:-1] not in "aeiou":
            return base[:-1] + "ies"
        return base + ("es" if base.endswith(("s", "x", "z", "ch", "sh")) else "s")
    if suffix in ("ed", "er", "est"):
        if base.endswith("e"):
            return base + suffix[1:]
        if base.endswith("y") and base[-2:-1] not in "aeiou":
            return base[:-1] + "i" + suffix
        return base + suffix
    if suffix == "ing":
        return (base[:-1] if base.endswith("e") and not base.endswith("ee") else base) + "ing"
    return base + suffix


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def _lower(s: str) -> str:
    """Lower-cases a clause's first letter unless the first word is "I" or an acronym."""
    first = s.split(" ", 1)[0]
    return s if first == "I" or first.isupper() else s[:1].lower() + s[1:]


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """Edits round(rate x words) words (at least one): substitution, insertion, deletion or a
    swap of two neighbours, each equally likely; new words come from `vocabulary`."""
    toks = text.split(" ")
    n_edits = max(1, round(rate * len(text.split())))
    for _ in range(n_edits):
        op = rng.choice(("substitute", "insert", "delete", "swap"))
        i = rng.randrange(len(toks))
        if op == "substitute":
            toks[i] = rng.choice(vocabulary)
        elif op == "insert":
            toks.insert(i, rng.choice(vocabulary))
        elif op == "delete" and len(toks) > 3:
            del toks[i]
        elif i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        else:
            toks[i] = rng.choice(vocabulary)
    return " ".join(toks)


def bigrams(text: str) -> set[tuple[str, str]]:
    """Lower-cased word 2-grams (the shingles synthgate's dedup uses by default)."""
    w = [x.lower() for x in re.findall(r"\w+(?:['’]\w+)*", text)]
    return set(zip(w, w[1:])) if len(w) > 1 else {tuple(w)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# A sentence ends at . ! or ? before a capital, except after a title or a one-letter initial.
SENTENCE = re.compile(r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\b[A-Z]\.)"
                      r"(?<=[.!?])\s+(?=[A-Z\"'“])")
HEADWORD = re.compile(r"^[^\s,:]+(?: [^\s,:]+){0,3}[,:] ")
ATTRIBUTION = re.compile(r"\n\s*--")


class Paraphraser:
    """Rule-based rewording; see the module docstring for the method."""

    def __init__(self, wordnet: WordNet, word_counts: Counter, substitute: float = 0.5):
        """`word_counts`: case-sensitive word counts of the English pool (which synonyms are
        common; whether a capitalised word is a name)."""
        self.wordnet, self.word_counts, self.substitute = wordnet, word_counts, substitute

    def paraphrase(self, text: str, rng: random.Random, max_overlap: float = 0.5) -> str:
        """A rewording; retried with more synonyms while it shares more than `max_overlap`
        of its word 2-grams (Jaccard) with the original, so that it is a rewording rather
        than a lightly edited copy (kept as is after the last try)."""
        original = bigrams(text)
        for rate in (self.substitute, 0.7, 0.9, 1.0):
            out = self.reword(text, rng, rate)
            if jaccard(bigrams(out), original) <= max_overlap:
                break
        return out

    def reword(self, text: str, rng: random.Random, rate: float) -> str:
        """One rewording pass; `rate` is the share of content words offered a synonym."""
        body, attribution = text, ""
        m = ATTRIBUTION.search(text)
        if m:
            body, attribution = text[: m.start()], text[m.start():]
        sentences = SENTENCE.split(" ".join(body.split()))
        sentences = [self._synonyms(self._reword(self._reorder(s, rng), rng), rng, rate)
                     for s in sentences]
        # A dictionary entry's first sentence carries its headword ("Word, n. ..."): it stays.
        first = 1 if HEADWORD.match(sentences[0]) else 0
        if len(sentences) - first >= 2 and rng.random() < 0.3:
            i = rng.randrange(first, len(sentences) - 1)
            sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        return " ".join(sentences) + attribution

    @staticmethod
    def _reorder(s: str, rng: random.Random) -> str:
        end = s[-1] if s and s[-1] in ".!?" else ""
        core = s[:-1] if end else s
        low = core.lower()
        for sub in SUBORDINATORS:
            if low.startswith(sub + " ") and ", " in core:          # "When X, Y." -> "Y when X."
                clause, main = core.split(", ", 1)
                if len(main.split()) >= 3 and rng.random() < 0.8:
                    return _capital(main) + " " + _lower(clause) + end
            idx = low.find(" " + sub + " ")                          # "Y when X." -> "When X, Y."
            if idx > 0 and "," not in core[idx:] and rng.random() < 0.6:
                main, clause = core[:idx].rstrip(","), core[idx + 1:]
                if len(main.split()) >= 3 and len(clause.split()) >= 3:
                    return _capital(clause) + ", " + _lower(main) + end
        if ", and " in core and rng.random() < 0.5:                 # "X, and Y" -> "Y, and X"
            left, right = core.split(", and ", 1)
            if len(left.split()) >= 3 and len(right.split()) >= 3:
                return _capital(right) + ", and " + _lower(left) + end
        return s

    @staticmethod
    def _reword(s: str, rng: random.Random) -> str:
        for pattern, repl in REWORDINGS:
            m = re.search(pattern, s, flags=re.I)
            if m and rng.random() < 0.7:
                s = s[: m.start()] + _match_case(repl, m.group(0)) + s[m.end():]
        return s

    def _synonyms(self, s: str, rng: random.Random, rate: float) -> str:
        parts = re.split(r"(\w+)", s)
        for i in range(1, len(parts), 2):
            w = parts[i]
            lw = w.lower()
            # A capitalised word is a name unless it is more often written in lower case.
            name = w[:1].isupper() and (i > 1 or self.word_counts.get(lw, 0) <
                                        self.word_counts.get(w, 0))
            if len(lw) < 4 or lw in STOP or name or not lw.isalpha():
                continue
            if rng.random() >= rate:
                continue
            options = self.wordnet.synonyms(lw)
            if not options:
                continue
            best = max(self.word_counts.get(o[0], 0) for o in options)
            common = [o for o in options if self.word_counts.get(o[0], 0) >= best / 4]
            lemma, suffix = rng.choice(common)
            parts[i] = _match_case(inflect(lemma, suffix), w)
        return "".join(parts)
